"""The live server: an aiohttp application with a WebSocket stream endpoint, the page, and one
:class:`StreamPool` that steps every connected stream.

aiohttp serves HTTP, WebSockets and static files from one asyncio loop and is also the client
library of ``echostream-client`` (one dependency, no ASGI server, no framework). The model runs in
one worker thread: on every tick the pool takes every stream with a whole chunk waiting and steps
them as one batch (:meth:`~echostream_fairseq.streaming.api.EchoStream.step`), while the event
loop goes on receiving audio and sending results. A stream's faults (bad messages, limits) close
that stream only; the pool and every other stream go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Dict, List, Optional, Set, Tuple

import torch
from aiohttp import WSMsgType, web

from echostream_fairseq.modules.precision import precision_of
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

__all__ = ["ServerLimits", "StreamPool", "make_app", "POOL", "STREAM_PATH", "INFO_PATH"]

STREAM_PATH = "/ws"
INFO_PATH = "/api/info"
STATIC_FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "worklet.js": "text/javascript",
    "style.css": "text/css",
}


@dataclass(frozen=True)
class ServerLimits:
    """What one client may do (each an ``echostream-serve`` flag)."""

    max_streams: int = 64
    max_message_bytes: int = 256 * 1024
    max_stream_seconds: float = 3600.0
    # audio may arrive at most this many times faster than real time at the declared rate
    # (after ``speed_allowance_seconds`` of slack for network bursts): a wrong declared rate shows
    # up as audio arriving too fast, and no client can take more than its share of the model
    max_speed: float = 1.5
    speed_allowance_seconds: float = 2.0
    start_timeout_seconds: float = 10.0
    token: Optional[str] = None


class StreamPool:
    """Every open stream of the server, stepped one tick at a time in one worker thread."""

    def __init__(self, system: EchoStream, limits: ServerLimits, chunk_sizes: Tuple[int, ...]) -> None:
        self.system, self.limits, self.chunk_sizes = system, limits, tuple(chunk_sizes)
        self.connections: Dict[Stream, "Connection"] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="echostream-model")
        self._wake = asyncio.Event()
        self._stepping: Set[Stream] = set()
        self._to_close: List[Stream] = []
        self.ticks = 0

    def open(self, start: StartMessage, connection: "Connection") -> Stream:
        if len(self.connections) >= self.limits.max_streams:
            raise ProtocolError(
                "busy",
                f"the server is serving its limit of {self.limits.max_streams} streams "
                "(--max-streams); try again later",
            )
        stream = self.system.open(start.sample_rate, start.chunk_ms)
        self.connections[stream] = connection
        return stream

    def wake(self) -> None:
        self._wake.set()

    def release(self, stream: Optional[Stream]) -> None:
        """Forget a stream; its state is freed now, or after the step it is part of."""
        if stream is None or stream not in self.connections:
            return
        del self.connections[stream]
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
                compute_ms = (time.perf_counter() - started) * 1e3
                self.ticks += 1
                self._stepping = set()
                for stream, stream_events in events.items():
                    connection = self.connections.get(stream)
                    if connection is not None:
                        connection.deliver(stream_events, compute_ms, len(ready))
                for stream in self._to_close:
                    stream.close()
                self._to_close = []

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


POOL = web.AppKey("pool", StreamPool)
POOL_TASK = web.AppKey("pool_task", asyncio.Task)


class Connection:
    """One WebSocket: reads the client's messages, queues the stream's events for sending."""

    def __init__(self, ws: web.WebSocketResponse, pool: StreamPool, query_token: Optional[str]) -> None:
        self.ws, self.pool, self.query_token = ws, pool, query_token
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
        if limits.token is not None and limits.token not in (start.token, self.query_token):
            raise ProtocolError(
                "unauthorized",
                'this server needs its token (--token): send it as "token" in '
                "the start message or as ?token= in the URL",
            )
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

    async def start_pool(app: web.Application) -> None:
        pool = StreamPool(system, limits, chunk_sizes)
        app[POOL] = pool
        app[POOL_TASK] = asyncio.create_task(pool.run())

    async def stop_pool(app: web.Application) -> None:
        app[POOL_TASK].cancel()
        app[POOL].shutdown()

    async def stream_endpoint(request: web.Request) -> web.WebSocketResponse:
        # aiohttp's own limit is a backstop; messages over ours get a clear error first
        ws = web.WebSocketResponse(max_msg_size=4 * limits.max_message_bytes + 4096, heartbeat=30.0)
        await ws.prepare(request)
        await Connection(ws, request.app[POOL], request.query.get("token")).serve()
        return ws

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
                "limits": {k: v for k, v in asdict(limits).items() if k != "token"},
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
    app.router.add_get(STREAM_PATH, stream_endpoint)
    return app
