"""``echostream-bench-serving``: our batched server beside simulstream's one-processor-per-connection
server, both serving the same model to N clients on localhost.

::

    echostream-bench-serving --model CKPT --data CORPUS [--clients 1 4 8 16 32] [--seconds 20]

Both servers run in this process with text output (simulstream's protocol carries text):
``echostream-serve``'s application, and simulstream 1.0.0's WebSocket server with a pool of N
:class:`~echostream_fairseq.agents.simulstream_processor.EchoStreamSpeechProcessor` (one per
connection; it runs each connection's chunks in a thread of its own, all sharing the model).
Every client sends the same audio the same way: one 320 ms chunk of 16-bit PCM per message, at
real-time pace, ``--seconds`` of test utterances back to back. The delay of a chunk is the time
from sending it to receiving the server's answer for it (our ``progress`` message; simulstream's
per-chunk JSON). A server keeps up when the 95th percentile of the delay stays under the chunk.
One short untimed client on each server first warms both up.
Writes ``bench_serving.md`` and ``bench_serving.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import numpy as np

from echostream_fairseq.common.audio import SAMPLE_RATE

CHUNK_MS = 320


def _audio(data: Path, seconds: float, offset: int) -> np.ndarray:
    from echostream_fairseq.data.audio import read_audio

    listing = data / "simuleval" / "test.source"
    if not listing.is_file():
        raise ValueError(f"{listing} not found: --data must be a corpus folder written by echostream-prep")
    paths = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    pieces, n, k = [], 0, offset
    while n < seconds * SAMPLE_RATE:
        pieces.append(read_audio(paths[k % len(paths)]).numpy())
        n += pieces[-1].size
        k += 1
    pcm = np.clip(np.concatenate(pieces)[: int(seconds * SAMPLE_RATE)], -1, 1)
    return (pcm * 32767).astype("<i2")


async def _client(url: str, pcm: np.ndarray, protocol: str) -> List[float]:
    """Send ``pcm`` a chunk per message in real time; the delay of each chunk's answer (s)."""
    import aiohttp

    chunk = SAMPLE_RATE * CHUNK_MS // 1000
    starts = list(range(0, pcm.size - chunk + 1, chunk))
    sent: List[float] = []
    answered: List[float] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            if protocol == "echostream":
                await ws.send_json({"type": "start", "sample_rate": SAMPLE_RATE, "format": "s16le"})
            else:
                await ws.send_str(json.dumps({"sample_rate": SAMPLE_RATE}))

            async def send() -> None:
                began = time.monotonic()
                for k, at in enumerate(starts):
                    delay = began + k * CHUNK_MS / 1000 - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    sent.append(time.monotonic())
                    await ws.send_bytes(pcm[at : at + chunk].tobytes())
                if protocol == "echostream":
                    await ws.send_json({"type": "finish"})
                else:
                    await ws.send_str(json.dumps({"end_of_stream": True}))

            sender = asyncio.create_task(send())
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                m = json.loads(message.data)
                if protocol == "echostream":
                    if m["type"] == "progress":
                        answered.append(time.monotonic())
                    elif m["type"] in ("finished", "error"):
                        if m["type"] == "finished" and len(answered) < len(starts):
                            answered.append(time.monotonic())  # the last chunk, stepped with the finish
                        break
                elif "end_of_processing" in m:
                    break
                elif len(answered) < len(starts):
                    answered.append(time.monotonic())
            await sender
    return [a - s for s, a in zip(sent, answered)]


async def _ours(system, clients: List[np.ndarray]) -> List[float]:
    from aiohttp import web

    from echostream_fairseq.server.app import ServerLimits, make_app

    runner = web.AppRunner(make_app(system, ServerLimits(max_streams=len(clients) + 1), (CHUNK_MS,)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        delays = await asyncio.gather(*[_client(f"ws://127.0.0.1:{port}/ws", pcm, "echostream") for pcm in clients])
    finally:
        await runner.cleanup()
    return [d for ds in delays for d in ds]


async def _simulstream(config: SimpleNamespace, clients: List[np.ndarray]) -> List[float]:
    from simulstream.metrics.logger import METRICS_LOGGER
    from simulstream.server.websocket_server import SpeechProcessorPool, connection_handler_factory
    from websockets.asyncio.server import serve

    METRICS_LOGGER.disabled = True
    pool = SpeechProcessorPool(config, len(clients), 60)
    async with serve(connection_handler_factory(pool), "127.0.0.1", 0, ping_timeout=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        delays = await asyncio.gather(*[_client(f"ws://127.0.0.1:{port}", pcm, "simulstream") for pcm in clients])
    return [d for ds in delays for d in ds]


def _stats(delays: List[float]) -> Dict[str, float]:
    ordered = sorted(delays)
    return {
        "chunks": len(ordered),
        "median_ms": statistics.median(ordered) * 1e3,
        "p95_ms": ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] * 1e3,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="echostream checkpoint")
    p.add_argument("--data", required=True, help="its corpus folder (dictionaries, test audio)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    p.add_argument("--seconds", type=float, default=20.0, help="audio each client streams")
    p.add_argument("--out", default="results/bench_serving")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("simulstream").setLevel(logging.WARNING)
    from echostream_bench.common import write_report
    from echostream_fairseq.common.cpu import machine_header
    from echostream_fairseq.streaming.api import EchoStream

    try:
        import simulstream  # noqa: F401
    except ImportError:
        print("echostream-bench-serving: simulstream is not installed (pip install -e .[simulstream])", file=sys.stderr)
        return 2
    try:
        if not Path(args.model).is_file():
            raise ValueError(f"checkpoint not found: {args.model} (--model)")
        if any(n < 1 for n in args.clients) or args.seconds < 1:
            raise ValueError("--clients must be >= 1 and --seconds >= 1")
        system = EchoStream.load(args.model, args.data, output="text", chunk_ms=CHUNK_MS)
        audio = {n: [_audio(Path(args.data), args.seconds, k) for k in range(n)] for n in args.clients}
    except (OSError, ValueError) as e:
        print(f"echostream-bench-serving: {e}", file=sys.stderr)
        return 2
    config = SimpleNamespace(
        type="echostream_fairseq.agents.simulstream_processor.EchoStreamSpeechProcessor",
        model_path=args.model,
        data_bin=args.data,
        speech_chunk_size=CHUNK_MS / 1000,
        output="text",
    )
    # one short untimed client on each server first: both start warm (oneDNN's primitives are
    # made on first use, for the whole process)
    warm = [_audio(Path(args.data), 3.0, 0)]
    asyncio.run(_ours(system, warm))
    asyncio.run(_simulstream(config, warm))
    rows = []
    for n in sorted(set(args.clients)):
        ours = _stats(asyncio.run(_ours(system, audio[n])))
        theirs = _stats(asyncio.run(_simulstream(config, audio[n])))
        rows.append({"clients": n, "echostream": ours, "simulstream": theirs})
        print(f"{n} clients: echostream {ours}, simulstream {theirs}", flush=True)
    held = lambda key: max([r["clients"] for r in rows if r[key]["p95_ms"] < CHUNK_MS], default=0)  # noqa: E731
    lines = [
        "# Serving N clients: our batched server beside simulstream's",
        "",
        f"Machine: {machine_header()}",
        f"Text output, {CHUNK_MS} ms chunks, {args.seconds:g} s of audio per client at real-time pace, "
        "one chunk per message; delay = answer received - chunk sent.",
        "",
        "| clients | echostream median ms | echostream p95 ms | simulstream median ms | simulstream p95 ms |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        e, s = r["echostream"], r["simulstream"]
        lines.append(
            f"| {r['clients']} | {e['median_ms']:.0f} | {e['p95_ms']:.0f} | {s['median_ms']:.0f} | {s['p95_ms']:.0f} |"
        )
    lines += [
        "",
        f"Most clients kept up with (p95 delay under {CHUNK_MS} ms, of the counts tried): "
        f"echostream {held('echostream')}, simulstream {held('simulstream')}",
    ]
    write_report(
        Path(args.out),
        "bench_serving",
        {"machine": machine_header(), "seconds": args.seconds, "rows": rows},
        "\n".join(lines) + "\n",
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
