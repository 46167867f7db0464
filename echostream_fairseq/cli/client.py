"""``echostream-client``: stream a wav file to ``echostream-serve`` and keep what comes back.

::

    echostream-client --url http://127.0.0.1:8000 --wav in.wav [--out out.wav] [--speed 1.0]

The URL is the server's address as ``echostream-serve`` prints it; the client reads the stream
endpoint from ``/api/info``. The file is sent at real-time pace (``--speed 2``: twice as fast;
the server refuses more than its ``--max-speed``) in pieces of ``--piece-ms``; the text is
printed as it arrives and the translated speech is written to ``--out``. Exit status 0 when the
stream finished, 1 when the server reported an error (printed), 2 for a bad invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Dict, List, Optional

import numpy as np


class ClientError(Exception):
    pass


async def stream_file(
    url: str,
    samples: np.ndarray,
    sample_rate: int,
    chunk_ms: Optional[int] = None,
    speed: float = 1.0,
    piece_ms: int = 100,
    token: Optional[str] = None,
    stop_after: Optional[float] = None,
    on_message=None,
    cafile: Optional[str] = None,
) -> Dict:
    """Stream ``samples`` (``[n]`` or ``[n, channels]`` float32) and collect the replies.

    Returns ``{"messages": [...JSON messages...], "speech": float32 samples, "error": message or
    None, "ready": the ready message}``. ``stop_after``: disconnect after this many seconds of
    audio without finishing (a client that leaves mid-sentence). ``cafile``: the certificate(s)
    to trust for an ``https://`` server (default: the system's).
    """
    import ssl

    import aiohttp

    base = url.rstrip("/")
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context) if context else None) as session:
        try:
            async with session.get(base + "/api/info") as response:
                info = await response.json()
        except (aiohttp.ClientError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ClientError(f"cannot reach an EchoStream server at {base}: {e}") from None
        ws_url = base.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + info["stream_endpoint"]
        channels = 1 if samples.ndim == 1 else samples.shape[1]
        start = {"type": "start", "sample_rate": int(sample_rate), "format": "f32le", "channels": channels}
        if chunk_ms is not None:
            start["chunk_ms"] = chunk_ms
        if token is not None:
            start["token"] = token
        result: Dict = {"messages": [], "speech": [], "error": None, "ready": None}
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            await ws.send_json(start)

            async def send() -> None:
                piece = max(1, int(sample_rate * piece_ms / 1000))
                began = time.monotonic()
                for k, at in enumerate(range(0, len(samples), piece)):
                    if stop_after is not None and at / sample_rate >= stop_after:
                        await ws.close()
                        return
                    if speed > 0:  # piece k leaves at k * piece_ms / speed
                        delay = began + k * piece_ms / 1000 / speed - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    if ws.closed:
                        return
                    await ws.send_bytes(np.ascontiguousarray(samples[at : at + piece], dtype="<f4").tobytes())
                if not ws.closed:
                    await ws.send_json({"type": "finish"})

            sender = asyncio.create_task(send())
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    result["speech"].append(np.frombuffer(message.data, dtype="<f4"))
                    continue
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                m = json.loads(message.data)
                result["messages"].append(m)
                if m["type"] == "ready":
                    result["ready"] = m
                if m["type"] == "error":
                    result["error"] = m
                if on_message is not None:
                    on_message(m)
            result["close_code"] = ws.close_code
            sender.cancel()
        result["speech"] = np.concatenate(result["speech"]) if result["speech"] else np.zeros(0, dtype=np.float32)
        return result


def _printer(m: Dict) -> None:
    if m["type"] in ("source_text", "target_text"):
        print(
            f"{m['source_seconds']:7.2f}s {'source' if m['type'] == 'source_text' else 'target'}: {m['text']}",
            flush=True,
        )
    elif m["type"] == "sentence_end":
        print(f"{m['source_seconds']:7.2f}s --- sentence end", flush=True)
    elif m["type"] == "error":
        print(f"error ({m['code']}): {m['message']}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="stream a wav file to echostream-serve")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the server's address, as echostream-serve prints it")
    p.add_argument("--wav", required=True, help="audio file (any rate, mono or multichannel)")
    p.add_argument("--out", default=None, help="write the translated speech here (wav)")
    p.add_argument("--speed", type=float, default=1.0, help="times real time (0: as fast as possible)")
    p.add_argument("--chunk-ms", type=int, default=None, help="the server's chunk for this stream (default: its own)")
    p.add_argument("--piece-ms", type=int, default=100, help="audio per message")
    p.add_argument("--token-file", default=None, help="file holding the server's token")
    p.add_argument("--token", default=None, help="the token itself (visible in the process list: prefer --token-file)")
    p.add_argument("--cafile", default=None, help="certificate to trust for an https:// server (a self-signed one)")
    args = p.parse_args(argv)
    import soundfile as sf

    try:
        samples, rate = sf.read(args.wav, dtype="float32")
    except (OSError, RuntimeError) as e:
        print(f"echostream-client: cannot read {args.wav}: {e}", file=sys.stderr)
        return 2
    if args.speed < 0 or args.piece_ms < 1:
        print("echostream-client: --speed must be >= 0 and --piece-ms >= 1", file=sys.stderr)
        return 2
    token = args.token
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            print(f"echostream-client: cannot read --token-file {args.token_file}: {e.strerror}", file=sys.stderr)
            return 2
    try:
        result = asyncio.run(
            stream_file(
                args.url,
                samples,
                rate,
                args.chunk_ms,
                args.speed,
                args.piece_ms,
                token,
                on_message=_printer,
                cafile=args.cafile,
            )
        )
    except (ClientError, OSError) as e:
        print(f"echostream-client: {e}", file=sys.stderr)
        return 2
    words: List[str] = [m["text"] for m in result["messages"] if m["type"] == "target_text"]
    print("translation:", " ".join(words))
    if args.out and result["ready"] and result["ready"]["output_sample_rate"]:
        sf.write(args.out, result["speech"], result["ready"]["output_sample_rate"])
        print(f"speech: {len(result['speech']) / result['ready']['output_sample_rate']:.2f} s -> {args.out}")
    finished = any(m["type"] == "finished" for m in result["messages"])
    return 1 if result["error"] or not finished else 0


if __name__ == "__main__":
    sys.exit(main())
