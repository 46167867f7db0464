"""The live server: an aiohttp application with a WebSocket stream endpoint, the page, health and
metrics endpoints, and one :class:`StreamPool` that steps every connected stream.

aiohttp serves HTTP, WebSockets and static files from one asyncio loop and is also the client
library of ``echostream-client`` (one dependency, no ASGI server, no framework). The model runs in
one worker thread: on every tick the pool takes every stream with a whole chunk waiting and steps
them as one batch (:meth:`~echostream_fairseq.streaming.api.EchoStream.step`), while the event
loop goes on receiving audio and sending results. A stream's faults (bad messages, limits) close
that stream only; the pool and every other stream go on.

Access: a browser's WebSocket from a page of another site is refused (403, before any model work)
unless its ``Origin`` is allowed (``--allow-origin``); with a token (``--token-file``), the start
message must carry it. Operations: ``/healthz`` answers 200 while the server takes streams and
503 once it drains (:meth:`StreamPool.drain`: no new streams, open ones finish), ``/livez`` 200
while it runs, ``/metrics`` the Prometheus text format (:mod:`.metrics`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Dict, List, Optional, Set, Tuple
from urllib.parse import urlsplit

import torch
from aiohttp import WSMsgType, web

from echostream_fairseq.modules.precision import precision_of
from echostream_fairseq.server.metrics import CONTENT_TYPE, ServerMetrics
from echostream_fairseq.server.protocol import (
    ERROR_CODES,
    PROTOCOL_VERSION,
    ProtocolError,
    StartMessage,
    decode_audio,
    encode_speech,
    parse_start,
    parse_text_message,
)
from echostream_fairseq.streaming.api import EchoStream, Event, Stream

logger = logging.getLogger(__name__)

__all__ = [
    "ServerLimits",
    "StreamPool",
    "make_app",
    "origin_allowed",
    "POOL",
    "STREAM_PATH",
    "INFO_PATH",
    "HEALTH_PATH",
    "LIVE_PATH",
    "METRICS_PATH",
]

STREAM_PATH = "/ws"
INFO_PATH = "/api/info"
HEALTH_PATH = "/healthz"
LIVE_PATH = "/livez"
METRICS_PATH = "/metrics"
STATIC_FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "worklet.js": "text/javascript",
    "style.css": "text/css",
}


@dataclass(frozen=True)
class ServerLimits:
    """What one client may do (each an ``echostream-serve`` flag). ``token``: the secret a start
    message must carry (``None``: none); never shown (not in the repr, the logs or ``/api/info``).
    ``allowed_origins``: the ``Origin`` values of other sites whose pages may open streams
    (``*``: any); the server's own origin is always allowed."""

    max_streams: int = 64
    max_message_bytes: int = 256 * 1024
    max_stream_seconds: float = 3600.0
    # audio may arrive at most this many times faster than real time at the declared rate
    # (after ``speed_allowance_seconds`` of slack for network bursts): a wrong declared rate shows
    # up as audio arriving too fast, and no client can take more than its share of the model
    max_speed: float = 1.5
    speed_allowance_seconds: float = 2.0
    start_timeout_seconds: float = 10.0
    token: Optional[str] = field(default=None, repr=False)
    allowed_origins: Tuple[str, ...] = ()


def origin_allowed(origin: Optional[str], host: str, allowed: Tuple[str, ...]) -> bool:
    """Whether a WebSocket with this ``Origin`` header may open a stream on the server reached as
    ``host`` (the request's ``Host``): no header (not a browser), the page's own host (any scheme:
    a proxy in front may end TLS), or one of ``allowed`` (``*``: any)."""
    if origin is None:
        return True
    if "*" in allowed or origin.rstrip("/") in allowed:
        return True
    return urlsplit(origin).netloc.lower() == host.lower()


def token_matches(given: Optional[str], token: str) -> bool:
    """``given == token`` in constant time (no timing tells how much of a guess was right)."""
    return given is not None and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


class StreamPool:
    """Every open stream of the server, stepped one tick at a time in one worker thread."""

    def __init__(
        self, system: EchoStream, limits: ServerLimits, chunk_sizes: Tuple[int, ...], metrics: ServerMetrics
    ) -> None:
        self.system, self.limits, self.chunk_sizes = system, limits, tuple(chunk_sizes)
        self.metrics = metrics
        self.draining = False
        self.connections: Dict[Stream, "Connection"] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="echostream-model")
        self._wake = asyncio.Event()
        self._stepping: Set[Stream] = set()
        self._to_close: List[Stream] = []
        self.ticks = 0

    def open(self, start: StartMessage, connection: "Connection") -> Stream:
        if self.draining:
            raise ProtocolError("draining", "the server is shutting down and takes no new streams; connect again")
        if len(self.connections) >= self.limits.max_streams:
            raise ProtocolError(
                "busy",
                f"the server is serving its limit of {self.limits.max_streams} streams "
                "(--max-streams); try again later",
            )
        stream = self.system.open(start.sample_rate, start.chunk_ms)
        self.connections[stream] = connection
        self.metrics.streams_opened.inc()
        self.metrics.streams_open.set(len(self.connections))
        logger.info("stream %s: opened (%d Hz, %d ms chunks)", stream.id, start.sample_rate, start.chunk_ms)
        return stream

    def wake(self) -> None:
        self._wake.set()

    def release(self, stream: Optional[Stream]) -> None:
        """Forget a stream; its state is freed now, or after the step it is part of."""
        if stream is None or stream not in self.connections:
            return
        del self.connections[stream]
        self.metrics.streams_open.set(len(self.connections))
        logger.info("stream %s: closed after %.1f s of audio", stream.id, stream.source_seconds)
        if stream in self._stepping:
            self._to_close.append(stream)
        else:
            stream.close()

    def _step(self, streams: List[Stream]) -> Dict[Stream, List[Event]]:
        with torch.inference_mode():
            return self.system.step(streams)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                ready = [s for s in self.connections if s.ready]
                if not ready:
                    break
                self._stepping = set(ready)
                started = time.perf_counter()
                try:
                    events = await loop.run_in_executor(self._executor, self._step, ready)
                except Exception as e:  # the model failed on this batch: its streams end, the server goes on
                    logger.exception("step failed")
                    events = {}
                    for stream in ready:
                        connection = self.connections.get(stream)
                        if connection is not None:
                            connection.fail(ProtocolError("server_error", f"the model failed on this stream: {e}"))
                compute = time.perf_counter() - started
                compute_ms = compute * 1e3
                self.ticks += 1
                self._stepping = set()
                chunks = [c.start.chunk_ms for s in ready if (c := self.connections.get(s)) is not None]
                stages: Dict[str, float] = {}
                for stream in events:
                    for stage, seconds in stream.last_step_seconds.items():
                        stages[stage] = stages.get(stage, 0.0) + seconds
                self.metrics.tick(compute, min(chunks, default=0) / 1000, len(ready), stages)
                for stream, stream_events in events.items():
                    connection = self.connections.get(stream)
                    if connection is not None:
                        connection.deliver(stream_events, compute_ms, len(ready))
                for stream in self._to_close:
                    stream.close()
                self._to_close = []

    async def drain(self, seconds: float) -> int:
        """Take no new streams (``/healthz`` says so), let the open ones finish for up to
        ``seconds``, then end those still open with a ``shutting_down`` error. Returns how many
        were ended that way."""
        self.draining = True
        logger.info("draining: %d streams open, up to %g s", len(self.connections), seconds)
        deadline = time.monotonic() + seconds
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        cut = list(self.connections.values())
        for connection in cut:
            connection.fail(ProtocolError("shutting_down", f"the server shut down after --drain-seconds {seconds:g}"))
        if cut:
            await asyncio.sleep(0.2)  # the writers send the errors
        logger.info("drained: %d streams ended by the shutdown", len(cut))
        return len(cut)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


POOL = web.AppKey("pool", StreamPool)
POOL_TASK = web.AppKey("pool_task", asyncio.Task)


class Connection:
    """One WebSocket: reads the client's messages, queues the stream's events for sending."""

    def __init__(self, ws: web.WebSocketResponse, pool: StreamPool) -> None:
        self.ws, self.pool = ws, pool
        self.stream: Optional[Stream] = None
        self.start: Optional[StartMessage] = None
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.received_samples = 0
        self.first_audio_at: Optional[float] = None

    # -- from the pool (event loop thread) ---------------------------------------------------------

    def deliver(self, events: List[Event], compute_ms: float, batch: int) -> None:
        for event in events:
            if event.kind == "target_units":  # the protocol carries text and speech
                continue
            message = {"type": event.kind, "source_seconds": round(event.source_seconds, 3)}
            if event.kind in ("source_text", "target_text"):
                message["text"] = event.text
            if event.kind == "target_speech":
                message["samples"] = int(event.audio.size)
                self.pool.metrics.audio_out.inc(event.audio.size / self.pool.system.output_sample_rate)
                self.outbox.put_nowait(message)
                self.outbox.put_nowait(encode_speech(event.audio))
                continue
            self.outbox.put_nowait(message)
        stream = self.stream
        if stream is not None and not stream.finished:
            self.outbox.put_nowait(
                {
                    "type": "progress",
                    "source_seconds": round(stream.source_seconds, 3),
                    "received_seconds": round(self.received_samples / self.start.sample_rate, 3),
                    "compute_ms": round(compute_ms, 1),
                    "batch": batch,
                }
            )
        if any(e.kind == "finished" for e in events):
            self.outbox.put_nowait(None)  # close after the last message

    def fail(self, error: ProtocolError) -> None:
        self.outbox.put_nowait(error)

    # -- the socket --------------------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            item = await self.outbox.get()
            if item is None:
                await self.ws.close()
                return
            if isinstance(item, ProtocolError):
                await self._send_error(item)
                return
            if isinstance(item, bytes):
                await self.ws.send_bytes(item)
            else:
                await self.ws.send_json(item)

    async def _send_error(self, error: ProtocolError) -> None:
        logger.info("stream %s: %s: %s", getattr(self.stream, "id", "-"), error.code, error.message)
        if not self.ws.closed:
            await self.ws.send_json(error.as_message())
            await self.ws.close(code=ERROR_CODES[error.code], message=error.code.encode())

    async def serve(self) -> None:
        writer = asyncio.create_task(self._writer())
        try:
            await self._read()
        except ProtocolError as error:
            metrics = self.pool.metrics
            if self.stream is None:
                metrics.streams_refused.labels(error.code).inc()
            else:
                metrics.streams_failed.labels(error.code).inc()
            self.fail(error)
        finally:
            self.pool.release(self.stream)
            self.stream = None
        if self.ws.closed and not writer.done():  # the client left: nothing more to send
            writer.cancel()
            return
        try:
            await asyncio.wait_for(writer, timeout=5.0)
        except (asyncio.TimeoutError, ConnectionResetError):
            writer.cancel()

    async def _read(self) -> None:
        limits = self.pool.limits
        try:
            first = await self.ws.receive(timeout=limits.start_timeout_seconds)
        except asyncio.TimeoutError:
            raise ProtocolError("bad_message", f"no start message within {limits.start_timeout_seconds:g} s") from None
        if first.type != WSMsgType.TEXT:
            if first.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            raise ProtocolError("bad_message", 'the first message must be the JSON {"type": "start", ...}')
        self._check_size(first.data)
        system = self.pool.system
        start = parse_start(
            parse_text_message(first.data), self.pool.chunk_sizes, system.translator.config.source_segment_size
        )
        if limits.token is not None and not token_matches(start.token, limits.token):
            raise ProtocolError("unauthorized", 'this server needs its token: send it as "token" in the start message')
        self.start = start
        self.stream = self.pool.open(start, self)
        await self.ws.send_json(
            {
                "type": "ready",
                "protocol": PROTOCOL_VERSION,
                "stream_id": self.stream.id,
                "chunk_ms": start.chunk_ms,
                "sample_rate": start.sample_rate,
                "output_sample_rate": system.output_sample_rate,
                "max_stream_seconds": limits.max_stream_seconds,
            }
        )
        async for message in self.ws:
            if message.type == WSMsgType.BINARY:
                self._check_size(message.data)
                self._audio(message.data)
            elif message.type == WSMsgType.TEXT:
                self._check_size(message.data)
                kind = parse_text_message(message.data)["type"]
                if kind != "finish":
                    raise ProtocolError(
                        "bad_message", f'after start, text messages must be {{"type": "finish"}}; got {kind!r}'
                    )
                self.stream.request_finish()
                self.pool.wake()
            elif message.type == WSMsgType.ERROR:
                return

    def _check_size(self, data) -> None:
        limit = self.pool.limits.max_message_bytes
        if len(data) > limit:
            raise ProtocolError(
                "too_large",
                f"a message of {len(data)} bytes is over the limit of {limit} "
                "(--max-message-bytes): send audio in smaller pieces",
            )

    def _audio(self, data: bytes) -> None:
        if self.stream.finish_requested:
            raise ProtocolError("bad_message", "audio after finish")
        samples = decode_audio(data, self.start)
        limits = self.pool.limits
        now = time.monotonic()
        if self.first_audio_at is None:
            self.first_audio_at = now
        self.received_samples += len(samples)
        self.pool.metrics.audio_in.inc(len(samples) / self.start.sample_rate)
        received = self.received_samples / self.start.sample_rate
        if received > limits.max_stream_seconds:
            raise ProtocolError(
                "too_long", f"the stream is over its limit of {limits.max_stream_seconds:g} s (--max-stream-seconds)"
            )
        allowed = limits.max_speed * (now - self.first_audio_at) + limits.speed_allowance_seconds
        if received > allowed:
            speed = received / max(now - self.first_audio_at, 1e-3)
            raise ProtocolError(
                "rate_mismatch",
                f"audio arrives {speed:.1f}x faster than real time at the declared "
                f"{self.start.sample_rate} Hz (at most {limits.max_speed:g}x, "
                "--max-speed): is the declared sample_rate the real one?",
            )
        self.stream.push(samples)
        if self.stream.ready:
            self.pool.wake()


def _static(name: str) -> bytes:
    return resources.files("echostream_fairseq.server").joinpath("static", name).read_bytes()


def make_app(
    system: EchoStream, limits: ServerLimits = ServerLimits(), chunk_sizes: Tuple[int, ...] = (320,)
) -> web.Application:
    """The aiohttp application serving ``system``; ``chunk_sizes`` are the chunk lengths (ms) a
    client may choose (each is checked against the encoder here)."""
    for chunk_ms in chunk_sizes:  # fail now, not on a client's start message
        system.open(chunk_ms=chunk_ms).close()
    app = web.Application()
    metrics = ServerMetrics()

    async def start_pool(app: web.Application) -> None:
        pool = StreamPool(system, limits, chunk_sizes, metrics)
        app[POOL] = pool
        app[POOL_TASK] = asyncio.create_task(pool.run())

    async def stop_pool(app: web.Application) -> None:
        app[POOL_TASK].cancel()
        app[POOL].shutdown()

    async def stream_endpoint(request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, request.host, limits.allowed_origins):
            # a page of another site in a visitor's browser (cross-site WebSocket hijacking)
            metrics.streams_refused.labels("origin").inc()
            logger.info("refused a WebSocket from origin %s (not this server's; --allow-origin)", origin)
            raise web.HTTPForbidden(
                text=f"origin {origin} may not open streams here (the server allows its own pages; --allow-origin)"
            )
        # aiohttp's own limit is a backstop; messages over ours get a clear error first
        ws = web.WebSocketResponse(max_msg_size=4 * limits.max_message_bytes + 4096, heartbeat=30.0)
        await ws.prepare(request)
        await Connection(ws, request.app[POOL]).serve()
        return ws

    async def health(request: web.Request) -> web.Response:
        pool = request.app[POOL]
        if pool.draining:
            return web.json_response({"status": "draining", "open_streams": len(pool.connections)}, status=503)
        return web.json_response({"status": "ready", "open_streams": len(pool.connections)})

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": "live"})

    async def metrics_page(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def info(request: web.Request) -> web.Response:
        pool = request.app[POOL]
        return web.json_response(
            {
                "protocol": PROTOCOL_VERSION,
                "stream_endpoint": STREAM_PATH,
                "chunk_sizes": list(chunk_sizes),
                "default_chunk_ms": system.translator.config.source_segment_size,
                "output": "speech" if system.output_sample_rate else "text",
                "output_sample_rate": system.output_sample_rate,
                "model_dtype": precision_of(system.translator.model),
                # under bf16 the vocoder stays fp32 where oneDNN has no bf16 convolutions
                "vocoder_dtype": None
                if system.output_sample_rate is None
                else precision_of(system.translator.vocoder.vocoder),
                "token_required": limits.token is not None,
                "open_streams": len(pool.connections),
                "limits": {k: v for k, v in asdict(limits).items() if k not in ("token", "allowed_origins")},
            }
        )

    async def page(request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(body=_static(name), content_type=STATIC_FILES[name])

    app.on_startup.append(start_pool)
    app.on_cleanup.append(stop_pool)
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", page)
    app.router.add_get(INFO_PATH, info)
    app.router.add_get(HEALTH_PATH, health)
    app.router.add_get(LIVE_PATH, live)
    app.router.add_get(METRICS_PATH, metrics_page)
    app.router.add_get(STREAM_PATH, stream_endpoint)
    return app
