"""The incremental vocoder alone, many streams per chunk: one by one (PyTorch's convolution, then
oneDNN) against ``IncrementalVocoder.step_batch`` in sub-batches of up to 8 and 4 (docs/server.md).

    .venv/bin/python examples/vocoder/batched_streams.py GENERATOR.pt CONFIG.json [STREAMS]

Each stream gets 0-6 new de-duplicated units per chunk (seeded), 5 warm-up and 30 timed ticks;
prints ms per stream per chunk, with the machine line of the other benchmarks.
"""

import sys
import time

import torch

from echostream_fairseq.common.cpu import machine_header
from echostream_fairseq.vocoder.code_hifigan import CodeHiFiGANUnitVocoder
from echostream_fairseq.vocoder.incremental import IncrementalVocoder


def per_stream_ms(generator, config, streams, max_batch, onednn, batched, warmup=5, ticks=30):
    vocoder = CodeHiFiGANUnitVocoder.from_files(generator, config).eval()
    inc = IncrementalVocoder(vocoder, dur_prediction=True, max_batch=max_batch)
    inc.warm_up()
    vocoder.onednn = onednn
    inc.max_batch = max_batch  # the size under test, not the one the warm-up would keep
    if not onednn:
        inc.length_bucket = 1  # PyTorch's convolution needs no buckets
    gen = torch.Generator().manual_seed(1)
    states = [inc.initial_state() for _ in range(streams)]
    total = 0.0
    for tick in range(warmup + ticks):
        requests = []
        for state in states:
            n = int(torch.randint(0, 7, (1,), generator=gen))
            requests.append((torch.randint(0, vocoder.num_units, (n,), generator=gen), state, False))
        started = time.perf_counter()
        out = inc.step_batch(requests) if batched else [inc.step(u, s, f) for u, s, f in requests]
        if tick >= warmup:
            total += time.perf_counter() - started
        states = [state for _, state in out]
    return total / ticks / streams * 1e3


def main():
    generator, config = sys.argv[1], sys.argv[2]
    streams = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    print(f"Machine: {machine_header()}\n")
    print("| streams | how | ms per stream per chunk |\n|---|---|---|")
    for how, max_batch, onednn, batched in [
        ("one by one, PyTorch's convolution", 1, False, False),
        ("one by one, oneDNN", 1, True, False),
        ("step_batch, sub-batches up to 8", 8, True, True),
        ("step_batch, sub-batches up to 4", 4, True, True),
    ]:
        ms = per_stream_ms(generator, config, streams, max_batch, onednn, batched)
        print(f"| {streams} | {how} | {ms:.1f} |")


if __name__ == "__main__":
    main()
