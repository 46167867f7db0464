"""The unit error of simultaneous runs' voiced units, and the unit refiner's cost per chunk.

    .venv/bin/python examples/refiner/units_and_cost.py CKPT DATA REFINER VOCODER_DIR RUN... \
        --labels LABEL... --thresholds T...

Unit error: each run's ``text/units.txt`` (the vocoder's unit numbers per instance) against
``DATA/units/test.tsv``, edit distance over reference units. Cost: the translator's units stage
(``time_stages``) per 320 ms chunk on the first 30 test utterances, without the refiner and with
it at each threshold, interleaved utterance by utterance in one process.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys

import torch

from echostream_fairseq.data.audio import read_audio
from echostream_fairseq.data.text import edit_distance
from echostream_fairseq.streaming.loading import load_translator, load_vocoder
from echostream_fairseq.streaming.options import TranslatorOptions


def unit_error(run: str, references) -> float:
    hyps = [line.split() for line in open(f"{run}/text/units.txt").read().splitlines()]
    errors = sum(edit_distance(h, r) for h, r in zip(hyps, references))
    return 100.0 * errors / sum(len(r) for r in references[: len(hyps)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model_path")
    p.add_argument("data")
    p.add_argument("refiner")
    p.add_argument("vocoder_dir")
    p.add_argument("runs", nargs="+")
    p.add_argument("--labels", nargs="+", required=True)
    p.add_argument("--thresholds", nargs="+", type=float, required=True)
    p.add_argument("--utterances", type=int, default=30)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    rows = open(f"{args.data}/units/test.tsv").read().splitlines()[1:]
    references = [row.split("\t")[1].split() for row in rows]
    print("\n| run | unit error % (voiced units against the reference units) |\n|---|---|")
    for label, run in zip(args.labels, args.runs):
        print(f"| {label} | {unit_error(run, references):.1f} |")
    vocoder = load_vocoder(f"{args.vocoder_dir}/generator.pt", f"{args.vocoder_dir}/config.json", "code_hifigan", True)
    systems = {"without": TranslatorOptions()}
    for t in args.thresholds:
        systems[f"refiner {t}"] = TranslatorOptions(unit_refiner=args.refiner, unit_refiner_threshold=t)
    translators = {
        name: load_translator(args.model_path, args.data, options, vocoder).with_config(time_stages=True)
        for name, options in systems.items()
    }
    sources = open(f"{args.data}/simuleval/test.source").read().split()[: args.utterances]
    costs = {name: [] for name in systems}
    for path in sources:
        wave = read_audio(path)
        for name, translator in translators.items():
            state = translator.initial_state()
            for start in range(0, len(wave), 5120):
                out, state = translator.step(wave[start : start + 5120], state, finish=start + 5120 >= len(wave))
                if out.units:  # the chunks that voice something: where the refiner can work
                    costs[name].append(out.stage_seconds["units"] * 1e3)
    cpu = platform.processor() or open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t")
    print(f"\nThe units stage per 320 ms chunk that voices units ({cpu}; {len(sources)} test utterances, 2 threads):")
    print("\n| system | chunks | median ms | mean ms | mean vs without |\n|---|---|---|---|---|")
    base = statistics.mean(costs["without"])
    for name, values in costs.items():
        mean = statistics.mean(values)
        print(f"| {name} | {len(values)} | {statistics.median(values):.2f} | {mean:.2f} | {mean - base:+.2f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
