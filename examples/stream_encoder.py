"""Stream fbank through the EchoStream encoder chunk by chunk and check it against the full forward.

    .venv/bin/python examples/stream_encoder.py [--arch echostream_emformer] [--encoder-type zipformer ...]

The encoder's sizes come from a fairseq architecture preset (StreamSpeech-sized by default), the one
home of every size; any encoder flag of fairseq-train may follow to change one.

Prints the per-chunk step time and the largest difference between the streamed and offline outputs.
"""

import argparse
import time

import torch
from fairseq.models import ARCH_CONFIG_REGISTRY

from echostream_fairseq.models import EchoStreamSpeechEncoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--arch",
        default="echostream_emformer",
        choices=sorted(a for a in ARCH_CONFIG_REGISTRY if a.startswith("echostream")),
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the synthetic utterance")
    parser.add_argument("--chunk-ms", type=int, default=320, help="audio per chunk")
    EchoStreamSpeechEncoder.add_args(parser)
    args = parser.parse_args()
    ARCH_CONFIG_REGISTRY[args.arch](args)  # fills what the command line left unset
    torch.manual_seed(0)
    encoder = EchoStreamSpeechEncoder(args).eval()
    frames = int(args.seconds * 100)  # 10 ms fbank frames
    chunk = args.chunk_ms // 10
    fbank = torch.randn(1, frames, encoder.input_dim)  # stands in for real log-mel features
    with torch.inference_mode():
        offline = encoder(fbank, torch.tensor([frames]))["encoder_out"][0].transpose(0, 1)
        state, outputs, times = encoder.initial_state(), [], []
        for start in range(0, frames, chunk):
            t0 = time.perf_counter()
            out, state = encoder.step(fbank[:, start : start + chunk], state, finish=start + chunk >= frames)
            times.append(time.perf_counter() - t0)
            outputs.append(out)
    streamed = torch.cat(outputs, dim=1)
    times.sort()
    print(f"{len(times)} chunks of {args.chunk_ms} ms; median step {times[len(times) // 2] * 1e3:.2f} ms")
    print(f"encoder frames: {streamed.size(1)}; max |streamed - offline| = {(streamed - offline).abs().max():.2e}")


if __name__ == "__main__":
    main()
