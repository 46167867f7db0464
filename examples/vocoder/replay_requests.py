"""Replay the vocoder requests of many streams to several vocoders, in turn, and time each tick.

    .venv/bin/python examples/vocoder/replay_requests.py STREAMS VOCODER_DIR [VOCODER_DIR ...]

On its first run it records what STREAMS streams of the demo's trained model (``--model``
default below) ask of the vocoder over 60 ticks of 320 ms (the test utterances back to back,
each stream starting at another one): per stream and tick, the units it gives the vocoder,
sentence ends included. It saves them in ``results/vocoder_study/requests_STREAMS.pkl``. Then
it loads each ``VOCODER_DIR/{generator.pt,config.json}`` as the streaming API does. It replays
the recording to them one step_batch call per tick, in turn, three times. It prints the mean
per stream and tick and the median and 95th-percentile tick, ignoring the first 10 ticks.
So the vocoders meet the same load in the same minutes. (docs/server.md,
"A causal vocoder, and the sentence ends in one call".)
"""

import pickle
import statistics
import sys
import time
from pathlib import Path

import torch

from echostream_bench.batch import SAMPLE_RATE, _sources
from echostream_fairseq.streaming.api import EchoStream
from echostream_fairseq.streaming.loading import load_vocoder

MODEL = "results/demo/echostream_emformer_conv_tiny/checkpoint_last.pt"
RECORDED_WITH = "results/demo/vocoder_tiny"
DATA = Path("results/synthetic/corpus")
TICKS = 60


def record(n: int, path: Path) -> None:
    system = EchoStream.load(
        MODEL,
        str(DATA),
        vocoder=f"{RECORDED_WITH}/generator.pt",
        vocoder_cfg=f"{RECORDED_WITH}/config.json",
        dur_prediction=True,
    )
    vocoder = system.translator.vocoder
    sources = _sources(DATA, "test", 64)
    chunk = 320 * SAMPLE_RATE // 1000
    audio = []
    for k in range(n):
        pieces, length, j = [], 0, k
        while length < TICKS * chunk:
            pieces += [sources[j % len(sources)], torch.zeros(SAMPLE_RATE // 2)]
            length += pieces[-2].numel() + pieces[-1].numel()
            j += 1
        audio.append(torch.cat(pieces)[: TICKS * chunk])
    owner, ticks = {}, []
    step_batch = vocoder.step_batch

    def recording(requests):  # the stream of a request is known by its vocoder state
        out = step_batch(requests)
        for (units, state, _), (_, new) in zip(requests, out):
            k = owner[id(state)]
            ticks[-1][k] += [int(u) for u in units]
            owner[id(new)] = k
        return out

    vocoder.step_batch = recording
    streams = [system.open() for _ in range(n)]
    for t in range(TICKS):
        owner = {id(s.state.vocoder): k for k, s in enumerate(streams)}
        ticks.append([[] for _ in range(n)])
        for s, a in zip(streams, audio):
            s.push(a[t * chunk : (t + 1) * chunk])
        system.step(streams)
    path.parent.mkdir(parents=True, exist_ok=True)
    pickle.dump(ticks, open(path, "wb"))


def main() -> None:
    torch.set_num_threads(2)
    n, folders = int(sys.argv[1]), sys.argv[2:]
    path = Path(f"results/vocoder_study/requests_{n}.pkl")
    if not path.exists():
        record(n, path)
    ticks = pickle.load(open(path, "rb"))
    units = sum(len(x) for t in ticks for x in t)
    print(
        f"{n} streams, {len(ticks)} ticks, {units / len(ticks) / n:.2f} units per stream per tick, "
        f"{sum(1 for t in ticks for x in t if x) / len(ticks) / n:.2f} of the streams speak in a tick"
    )
    vocoders = {
        f: load_vocoder(f"{f}/generator.pt", f"{f}/config.json", "code_hifigan", True, max_batch=None, max_padding=16)
        for f in folders
    }
    for _ in range(3):
        for folder, inc in vocoders.items():
            states = [inc.initial_state() for _ in range(n)]
            times = []
            for t in ticks:
                started = time.perf_counter()
                out = inc.step_batch([(torch.tensor(x, dtype=torch.long), s, False) for x, s in zip(t, states)])
                times.append(time.perf_counter() - started)
                states = [s for _, s in out]
            times = times[10:]
            print(
                f"  {folder}: mean {statistics.mean(times) / n * 1e3:.2f} ms/stream/tick, median tick "
                f"{statistics.median(times) * 1e3:.0f} ms, "
                f"p95 tick {sorted(times)[int(0.95 * (len(times) - 1))] * 1e3:.0f} ms"
            )


if __name__ == "__main__":
    main()
