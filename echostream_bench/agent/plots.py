"""The agent benchmark's plots (``bench_agent_long_stream.png``, ``bench_agent_curve.png``)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Dict

from echostream_bench.agent.long_stream import SYSTEM_ORDER

__all__ = ["plot_long_stream", "plot_curve"]


def plot_long_stream(path: Path, r: Dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seg = r["config"]["source_segment_size_ms"] / 1000
    systems = r["systems"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    colors = {
        "echostream": "tab:blue",
        "echostream_forced": "tab:cyan",
        "model_reencode": "tab:orange",
        "baseline": "tab:red",
    }
    for name in SYSTEM_ORDER:
        if name not in systems:
            continue
        s = systems[name]
        if "trace_ms" in s:
            trace = s["trace_ms"]
            xs = [(k + 1) * seg for k in range(len(trace))]
            ax1.plot(xs, trace, ".", color=colors[name], alpha=0.15, markersize=2)
            w = r["config"]["window_chunks"]
            smooth = [statistics.median(trace[max(0, k - w) : k + w + 1]) for k in range(len(trace))]
            ax1.plot(xs, smooth, "-", color=colors[name], label=f"{s['label']} (running median)")
        else:
            pts = sorted((row["first_timed_chunk_ends_s"], row["median_ms"]) for row in s["at_position"].values())
            ax1.plot(
                [p for p, _ in pts], [m for _, m in pts], "o-", color=colors[name], label=f"{s['label']} (sampled)"
            )
        lag = s["lag_s"]
        xs = [(k + 1) * seg for k in range(len(lag))]
        style = "--" if s.get("lag_interpolated") else "-"
        ax2.plot(
            xs,
            [max(v, 1e-4) for v in lag],
            style,
            color=colors[name],
            linewidth=1,
            zorder=3 if name == "echostream" else 2,
            alpha=0.7 if name == "echostream_forced" else 1.0,
            label=s["label"] + (" (interpolated cost)" if s.get("lag_interpolated") else ""),
        )
    ax1.set_yscale("log")
    ax1.set_xlabel("stream position (s)")
    ax1.set_ylabel("per-chunk compute (ms)")
    ax1.set_title(f"Agent compute per {r['config']['source_segment_size_ms']} ms chunk")
    ax1.legend(fontsize=7)
    ax2.set_yscale("log")
    ax2.axhline(seg, color="gray", linestyle=":", linewidth=1)
    ax2.set_xlabel("stream position (s)")
    ax2.set_ylabel("computation-aware lag (s)")
    ax2.set_title("Simulated real time: finish − arrival")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curve(path: Path, r: Dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, title in (
        (axes[0], "asr_bleu", "ASR-BLEU (speech output)"),
        (axes[1], "text_bleu", "text BLEU (agent's translation)"),
    ):
        for name, marker in (("echostream", "o-"), ("baseline", "s--")):
            rows = sorted((x for x in r["runs"] if x["system"] == name), key=lambda x: x["chunk_ms"])
            if not rows:
                continue
            xs, ys = [x["AL"] for x in rows], [x.get(key, float("nan")) for x in rows]
            ax.plot(xs, ys, marker, label=r["labels"][name])
            for x, y, row in zip(xs, ys, rows):
                ax.annotate(f"{row['chunk_ms']}", (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7)
        if key == "asr_bleu" and r.get("reference_speech"):
            ax.axhline(
                r["reference_speech"]["asr_bleu"], color="gray", linestyle=":", label="reference speech (ASR ceiling)"
            )
        ax.set_xlabel("AL (ms)")
        ax.set_ylabel(title)
        ax.set_title(f"{title} vs AL; labels: chunk ms")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
