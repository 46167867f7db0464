"""Lag and per-chunk compute along a long stream, for several echostream-longform runs.

    .venv/bin/python examples/longform/plot.py --streams STREAMS --stream stream_10min \
        --runs EVAL_A EVAL_B --labels "EchoStream" "--reencode" --out docs/longform_10min.png

Each run is an ``--out`` folder of ``echostream-longform``; its ``{stream}.json`` holds the lag of
every sentence's last word behind the sentence's source end and the median compute per chunk of
every minute. Sentences without a translation have no lag and are left out.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from echostream_fairseq.data.longform import read_stream_sentences  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", required=True, help="folder made by echostream-prep longform")
    p.add_argument("--stream", required=True, help="the stream's name, e.g. stream_10min")
    p.add_argument("--runs", nargs="+", required=True, help="echostream-longform --out folders")
    p.add_argument("--labels", nargs="+", help="one per run (default: the folder names)")
    p.add_argument("--out", required=True, help="the PNG to write")
    args = p.parse_args()
    labels = args.labels or [os.path.basename(r.rstrip("/")) for r in args.runs]
    if len(labels) != len(args.runs):
        p.error(f"{len(args.runs)} runs but {len(labels)} labels")
    table = read_stream_sentences(os.path.join(args.streams, f"{args.stream}.tsv"))

    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lag_ax, cost_ax) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for run, label in zip(args.runs, labels):
        path = os.path.join(run, f"{args.stream}.json")
        if not os.path.isfile(path):
            p.error(f"{path}: not found (run echostream-longform --out {run} first)")
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        points = [(s.end / 60, lag) for s, lag in zip(table, record["lags"]) if lag is not None]
        lag_ax.plot([x for x, _ in points], [y for _, y in points], ".", markersize=3, label=label)
        minutes = record["ms_per_chunk_by_minute"]
        cost_ax.plot([m + 0.5 for m in range(len(minutes))], minutes, "o-", label=label)
    lag_ax.set_ylabel("lag behind source end (s)")
    lag_ax.axhline(0, color="grey", linewidth=0.5)
    lag_ax.legend()
    cost_ax.set_ylabel("median compute per chunk (ms)")
    cost_ax.set_xlabel("stream position (minutes)")
    cost_ax.set_yscale("log")
    cost_ax.legend()
    fig.suptitle(f"{args.stream}: {len(table)} sentences, {record['chunk_ms']} ms chunks")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
