"""``echostream-serve``: the live server (WebSocket stream endpoint, the page, health and metrics).

::

    echostream-serve --model-path ckpt/checkpoint_last.pt --data-bin corpus \
        [--vocoder G --vocoder-cfg CONFIG.json --dur-prediction] [--host 127.0.0.1 --port 8000] \
        [--certfile cert.pem --keyfile key.pem] [--token-file FILE] [--allow-origin https://site]

The model flags are the SimulEval agents' (``docs/agents.md``); the server's own are grouped by
concern (network, access, limits, operations). It binds to localhost unless ``--host`` says
otherwise; anything reachable from elsewhere should have a token (``--token-file`` or the
``ECHOSTREAM_TOKEN`` environment variable) and, for microphones on other devices, HTTPS
(``--certfile``/``--keyfile``). On SIGTERM it drains: it stops listening (new connections go
elsewhere), open streams finish for up to ``--drain-seconds``, then it exits 0. The address is printed once the
model is loaded and the socket is bound (``--port 0``: any free port). docs/server.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
from typing import Optional

from echostream_fairseq.streaming.loading import translator_from_args
from echostream_fairseq.streaming.options import add_translator_args

logger = logging.getLogger("echostream.serve")

TOKEN_ENV = "ECHOSTREAM_TOKEN"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="EchoStream live server: many streams, one batched model")
    add_translator_args(p, speech_output=True, source_segment_size=True)
    p.add_argument(
        "--output",
        choices=("speech", "text"),
        default=None,
        help="speech (needs --vocoder) or text; default: speech when --vocoder is given",
    )
    p.add_argument(
        "--chunk-sizes",
        type=int,
        nargs="+",
        default=None,
        help="chunk sizes (ms) a client may choose (default: 160 320 640 with the default chunk)",
    )
    network = p.add_argument_group("network")
    network.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface, your choice)")
    network.add_argument("--port", type=int, default=8000, help="port (0: any free one)")
    network.add_argument(
        "--certfile",
        default=None,
        help="PEM certificate (chain): serve HTTPS and WSS (browsers give microphones "
        "to pages of other hosts only over HTTPS)",
    )
    network.add_argument("--keyfile", default=None, help="PEM private key of --certfile (default: inside it)")
    access = p.add_argument_group("access")
    access.add_argument(
        "--token-file",
        default=None,
        help=f"file holding the token clients must send (or set {TOKEN_ENV}); set one when not on localhost",
    )
    access.add_argument(
        "--token",
        default=None,
        help=f"the token itself (visible to every user of this machine in the process list: prefer --token-file "
        f"or {TOKEN_ENV})",
    )
    access.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a site (https://host[:port]) whose pages may open streams besides the server's own; repeat for "
        "more; * for any",
    )
    limits = p.add_argument_group("limits")
    limits.add_argument("--max-streams", type=int, default=64, help="concurrent streams at most")
    limits.add_argument("--max-message-bytes", type=int, default=256 * 1024, help="largest WebSocket message taken")
    limits.add_argument("--max-stream-seconds", type=float, default=3600.0, help="longest stream, seconds of audio")
    limits.add_argument(
        "--max-speed",
        type=float,
        default=1.5,
        help="audio may arrive at most this many times faster than real time (catches a wrong sample rate)",
    )
    operations = p.add_argument_group("operations")
    operations.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        help="on SIGTERM, how long open streams may go on finishing before the server exits",
    )
    return p


def _token(args) -> Optional[str]:
    """The token from --token-file, --token or the environment (one of them), or None."""
    given = [name for name, value in (("--token-file", args.token_file), ("--token", args.token)) if value]
    if os.environ.get(TOKEN_ENV):
        given.append(TOKEN_ENV)
    if len(given) > 1:
        raise ValueError(f"give the token one way, not {' and '.join(given)}")
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            raise ValueError(f"--token-file {args.token_file}: {e.strerror}") from None
        if not token:
            raise ValueError(f"--token-file {args.token_file} is empty")
        return token
    if args.token:
        logger.warning("--token is visible in the process list; prefer --token-file or %s", TOKEN_ENV)
        return args.token
    return os.environ.get(TOKEN_ENV) or None


def _ssl_context(args) -> Optional[ssl.SSLContext]:
    if args.keyfile and not args.certfile:
        raise ValueError("--keyfile needs --certfile")
    if not args.certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.certfile, args.keyfile)
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"cannot use --certfile {args.certfile} / --keyfile {args.keyfile}: {e}") from None
    return context


def _check(args, token: Optional[str]) -> None:
    for name in ("max_streams", "max_message_bytes"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_stream_seconds <= 0 or args.max_speed <= 0:
        raise ValueError("--max-stream-seconds and --max-speed must be > 0")
    if args.drain_seconds < 0:
        raise ValueError(f"--drain-seconds must be >= 0, got {args.drain_seconds:g}")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0..65535, got {args.port}")
    for origin in args.allow_origin:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"--allow-origin takes http(s)://host[:port] or *, got {origin!r}")
    if args.host not in LOCAL_HOSTS and not token:
        logger.warning("binding %s without a token: anyone who can reach it may use the model", args.host)


async def _serve(app, host: str, port: int, ssl_context, drain_seconds: float) -> None:
    from aiohttp import web

    from echostream_fairseq.server.app import POOL

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if ssl_context else "http"
    print(f"EchoStream server on {scheme}://{shown}:{bound} (page: /, stream endpoint: /ws)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        # stop listening: a balancer's next connection goes to another server (nginx's
        # proxy_next_upstream), while the streams already open here go on
        site._server.close()
        await app[POOL].drain(drain_seconds)
    finally:
        await runner.cleanup()


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        token = _token(args)
        _check(args, token)
        ssl_context = _ssl_context(args)
        from echostream_fairseq.server.app import ServerLimits, make_app
        from echostream_fairseq.streaming.api import EchoStream

        speech = (args.output or ("speech" if args.vocoder else "text")) == "speech"
        # each stage's time goes to /metrics
        system = EchoStream(translator_from_args(args, speech_output=speech).with_config(time_stages=True))
        chunk_sizes = tuple(args.chunk_sizes or sorted({160, 320, 640, args.source_segment_size}))
        if args.source_segment_size not in chunk_sizes:
            raise ValueError(
                f"--source-segment-size {args.source_segment_size} is not one of --chunk-sizes {chunk_sizes}"
            )
        limits = ServerLimits(
            max_streams=args.max_streams,
            max_message_bytes=args.max_message_bytes,
            max_stream_seconds=args.max_stream_seconds,
            max_speed=args.max_speed,
            token=token,
            allowed_origins=tuple(o.rstrip("/") for o in args.allow_origin),
        )
        app = make_app(system, limits, chunk_sizes)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"echostream-serve: {e}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(app, args.host, args.port, ssl_context, args.drain_seconds))
    except OSError as e:
        print(f"echostream-serve: cannot serve on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
