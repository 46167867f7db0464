"""``echostream-serve``: the live server (WebSocket stream endpoint and the page).

::

    echostream-serve --model-path ckpt/checkpoint_last.pt --data-bin corpus \
        [--vocoder G --vocoder-cfg CONFIG.json --dur-prediction] [--host 127.0.0.1 --port 8000]

The model flags are the SimulEval agents' (``docs/agents.md``). It binds to localhost unless
``--host`` says otherwise; anything reachable from elsewhere should set ``--token``. The address
is printed once the model is loaded and the socket is bound (``--port 0``: any free port).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from echostream_fairseq.streaming.loading import translator_from_args
from echostream_fairseq.streaming.options import add_translator_args

logger = logging.getLogger("echostream.serve")


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
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface, your choice)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free one)")
    p.add_argument("--token", default=None, help="clients must send this token (set it when not on localhost)")
    p.add_argument("--max-streams", type=int, default=64, help="concurrent streams at most")
    p.add_argument("--max-message-bytes", type=int, default=256 * 1024, help="largest WebSocket message taken")
    p.add_argument("--max-stream-seconds", type=float, default=3600.0, help="longest stream, seconds of audio")
    p.add_argument(
        "--max-speed",
        type=float,
        default=1.5,
        help="audio may arrive at most this many times faster than real time (catches a wrong sample rate)",
    )
    return p


def _check(args) -> None:
    for name in ("max_streams", "max_message_bytes"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_stream_seconds <= 0 or args.max_speed <= 0:
        raise ValueError("--max-stream-seconds and --max-speed must be > 0")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0..65535, got {args.port}")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.token:
        logger.warning("binding %s without --token: anyone who can reach it may use the model", args.host)


async def _serve(app, host: str, port: int) -> None:
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"EchoStream server on http://{shown}:{bound} (page: /, stream endpoint: /ws)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        _check(args)
        from echostream_fairseq.server.app import ServerLimits, make_app
        from echostream_fairseq.streaming.api import EchoStream

        speech = (args.output or ("speech" if args.vocoder else "text")) == "speech"
        system = EchoStream(translator_from_args(args, speech_output=speech))
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
            token=args.token,
        )
        app = make_app(system, limits, chunk_sizes)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"echostream-serve: {e}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(app, args.host, args.port))
    except KeyboardInterrupt:
        pass
    except OSError as e:
        print(f"echostream-serve: cannot serve on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
