"""Stream fbank through the EchoStream encoder chunk by chunk and check it against the full forward.

    .venv/bin/python examples/stream_encoder.py [--config configs/encoder_streamspeech_size.yaml]

Prints the per-chunk step time and the largest difference between the streamed and offline outputs.
"""

import argparse
import time

import torch
import yaml

from echostream_fairseq.models import EchoStreamSpeechEncoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/encoder_streamspeech_size.yaml")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the synthetic utterance")
    parser.add_argument("--chunk-ms", type=int, default=320, help="audio per chunk")
    args = parser.parse_args()
    with open(args.config) as f:
        config = yaml.safe_load(f)
    torch.manual_seed(0)
    encoder = EchoStreamSpeechEncoder(argparse.Namespace(**config)).eval()
    frames = int(args.seconds * 100)  # 10 ms fbank frames
    chunk = args.chunk_ms // 10
    fbank = torch.randn(1, frames, encoder.input_dim)  # stands in for real log-mel features
    with torch.inference_mode():
        offline = encoder(fbank, torch.tensor([frames]))["encoder_out"][0].transpose(0, 1)
        state, outputs, times = encoder.initial_state(), [], []
        for start in range(0, frames, chunk):
            t0 = time.perf_counter()
            out, state = encoder.step(fbank[:, start : start + chunk], state,
                                             finish=start + chunk >= frames)
            times.append(time.perf_counter() - t0)
            outputs.append(out)
    streamed = torch.cat(outputs, dim=1)
    times.sort()
    print(f"{len(times)} chunks of {args.chunk_ms} ms; median step {times[len(times) // 2] * 1e3:.2f} ms")
    print(f"encoder frames: {streamed.size(1)}; max |streamed - offline| = {(streamed - offline).abs().max():.2e}")


if __name__ == "__main__":
    main()
