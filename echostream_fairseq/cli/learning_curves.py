"""``echostream-learning-curves``: dev metrics against training time, from fairseq's JSON logs.

    echostream-learning-curves RUN.log [RUN.log ...] --labels A B ... [--at 2 4 8] \\
        [--markdown curves.md] [--plot curves.png] [--json curves.json]

Each log is what ``fairseq-train`` printed (``train_inner`` and ``valid`` lines), with
``--log-format json``, ``simple`` or ``tqdm`` (``examples/demo.sh`` logs with tqdm; not on a
terminal, tqdm prints the same lines as simple). A validation point's time is the training wall
clock (``wall``) of the last ``train_inner`` line before it, so it counts the time spent training
and validating up to there.
The table gives, per run, the update rate and the dev metrics (ASR CTC WER, ST CTC WER, greedy MT
BLEU, unit error rate, dev loss) at the validation nearest before each ``--at`` minute and at the
end; the plot draws the four metrics against minutes. ``--train-at N ...`` adds a table of the
training losses (fairseq's smoothed ``train_inner`` values, on augmented batches where the recipe
augments) at those update counts.

A run resumed from a checkpoint of another (``fairseq-train`` again with the same ``--save-dir``,
or another one holding a copy of its checkpoint) is given as ``FIRST.log+RESUMED.log``: the
points of the first log up to the update the second resumed from, then the second's, whose clock
starts where the first's stood at that update. fairseq's ``wall`` reads 0 after a resume, so a
resumed log's time is taken from its lines' timestamps, counted from its "Loaded checkpoint" line.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence

__all__ = ["Curve", "read_log", "read_run", "main"]

METRICS = (
    ("asr_wer", "ASR WER %"),
    ("st_wer", "ST CTC WER %"),
    ("mt_bleu", "MT BLEU"),
    ("unit_er", "unit error %"),
    ("loss", "dev loss"),
)
TRAIN_METRICS = (
    ("asr_ctc_loss", "ASR CTC"),
    ("st_ctc_loss", "ST CTC"),
    ("mt_loss", "MT"),
    ("unit_ctc_loss", "unit CTC"),
)
_LINE = re.compile(r"\|\s*([\w.-]+)\s*\|\s*(\{.*\})\s*$")
# the simple and tqdm formats: "| INFO | TAG | epoch 001 | key value | ..." and, for train_inner,
# "| INFO | train_inner | epoch 001:    500 / 1436 key=value, ..."
_TEXT_LINE = re.compile(r"\| INFO \| ([\w.-]+) \| epoch \d+(.*)$")
_TEXT_INNER = re.compile(r"(\w+)=([-+0-9.eE]+|inf|nan)")
_TEXT_PAIR = re.compile(r"^\s*(\w+) (\S+)\s*$")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")
_RESUMED = re.compile(r"Loaded checkpoint .* @ (\d+) updates\)")


@dataclass
class Curve:
    """One run: validation points ``(minutes, updates, {metric: value})`` in order."""

    label: str
    points: List[tuple] = field(default_factory=list)
    train: Dict[int, Dict[str, float]] = field(default_factory=dict)
    train_minutes: float = 0.0
    updates: int = 0
    resumed_at: Optional[int] = None  # the update a resumed run's checkpoint held
    minutes_at: Dict[int, float] = field(default_factory=dict)  # updates of train_inner and epoch lines -> minutes


def _record(line: str, subset: str) -> Optional[tuple]:
    """``(tag, record)`` of a ``train_inner``, ``train`` or ``subset`` line in any of fairseq's
    formats, its keys as the JSON format has them (``train_inner``'s bare, the others prefixed with
    their tag); None for any other line."""
    m = _LINE.search(line)
    if m:
        return (m.group(1), json.loads(m.group(2))) if m.group(1) in ("train_inner", "train", subset) else None
    m = _TEXT_LINE.search(line)
    if not m or m.group(1) not in ("train_inner", "train", subset):
        return None
    tag, rest = m.groups()
    if tag == "train_inner":
        return tag, {key: value for key, value in _TEXT_INNER.findall(rest)}
    pairs = (_TEXT_PAIR.match(part) for part in rest.split("|"))
    return tag, {f"{tag}_{p.group(1)}": p.group(2) for p in pairs if p}


def read_log(path: Path, label: str, subset: str = "dev") -> Curve:
    """Parse one fairseq log (json, simple or tqdm format; other lines are skipped).

    ``subset`` is the validation subset: fairseq tags its lines and prefixes its keys with it. The
    minutes of a resumed run count from its resume (see the module docstring).
    """
    curve = Curve(label)
    wall = 0.0
    resumed_stamp: Optional[datetime] = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            resumed = _RESUMED.search(line)
            if resumed and int(resumed.group(1)) > 0 and curve.resumed_at is None:
                curve.resumed_at = int(resumed.group(1))
                resumed_stamp = _stamp(line, path)
                continue
            parsed = _record(line, subset)
            if parsed is None:
                continue
            tag, record = parsed
            if tag == "train_inner":
                if resumed_stamp is None:
                    wall = float(record["wall"])
                else:
                    wall = (_stamp(line, path) - resumed_stamp).total_seconds()
                curve.train_minutes = wall / 60
                curve.updates = int(float(record["num_updates"]))
                curve.minutes_at[curve.updates] = curve.train_minutes
                curve.train[curve.updates] = {key: float(record[key]) for key, _ in TRAIN_METRICS if key in record}
            elif tag == "train":  # end of an epoch, or of a run stopped between two log lines
                curve.updates = int(float(record.get("train_num_updates", curve.updates)))
                if "train_wall" in record:  # the clock at that update, so a resume from it can join
                    if resumed_stamp is None:
                        wall = float(record["train_wall"])
                    else:
                        wall = (_stamp(line, path) - resumed_stamp).total_seconds()
                    curve.train_minutes = wall / 60
                    curve.minutes_at[curve.updates] = curve.train_minutes
            elif tag == subset:
                updates = int(float(record[f"{subset}_num_updates"]))
                values = {key: float(record[f"{subset}_{key}"]) for key, _ in METRICS if f"{subset}_{key}" in record}
                curve.points.append((wall / 60, updates, values))
    if not curve.points:
        raise SystemExit(f"error: {path}: no validation lines on {subset!r} (a fairseq-train log?)")
    return curve


def _stamp(line: str, path: Path) -> datetime:
    m = _STAMP.match(line)
    if not m:
        raise SystemExit(f"error: {path}: a resumed run's lines need fairseq's timestamps, found {line[:60]!r}")
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")


def _continued(first: Curve, then: Curve, names: Sequence[str]) -> Curve:
    """``then``, a run resumed from a checkpoint of ``first``, joined after ``first``'s points up to
    the resume; ``then``'s minutes are shifted by ``first``'s at that update."""
    start = then.resumed_at
    if start is None:
        raise SystemExit(
            f"error: {names[1]} is not a resumed run (no 'Loaded checkpoint ... @ N updates' "
            f"line with N > 0), so it cannot continue {names[0]}"
        )
    if start not in first.minutes_at:
        raise SystemExit(
            f"error: {names[1]} resumed from update {start}, but {names[0]} logs no training line "
            f"at that update (its last: {first.updates})"
        )
    offset = first.minutes_at[start]
    joined = Curve(then.label, resumed_at=first.resumed_at)
    joined.points = [p for p in first.points if p[1] <= start] + [(m + offset, u, v) for m, u, v in then.points]
    joined.train = {**{u: v for u, v in first.train.items() if u <= start}, **then.train}
    joined.minutes_at = {
        **{u: m for u, m in first.minutes_at.items() if u <= start},
        **{u: m + offset for u, m in then.minutes_at.items()},
    }
    joined.train_minutes, joined.updates = then.train_minutes + offset, then.updates
    return joined


def read_run(spec: str, label: str, subset: str = "dev") -> Curve:
    """One run from ``LOG`` or ``FIRST.log+RESUMED.log[+...]`` (each resumed from the one before)."""
    names = spec.split("+")
    for name in names:
        if not Path(name).is_file():
            raise SystemExit(f"error: {name}: log not found")
    curve = read_log(Path(names[0]), label, subset)
    for before, name in zip(names, names[1:]):
        curve = _continued(curve, read_log(Path(name), label, subset), (before, name))
    return curve


def _at(curve: Curve, minutes: float) -> Optional[tuple]:
    if minutes > curve.train_minutes + 1e-9:  # the run did not get that far
        return None
    before = [p for p in curve.points if p[0] <= minutes + 1e-9]
    return before[-1] if before else None


def _cell(point: Optional[tuple], key: str) -> str:
    if point is None or key not in point[2]:
        return "-"
    return f"{point[2][key]:.1f}"


def markdown(curves: Sequence[Curve], at: Sequence[float]) -> str:
    lines = []
    for key, title in METRICS:
        head = ["run", "updates/min"] + [f"{m:g} min" for m in at] + ["end (min, updates)"]
        lines.append(f"**{title}**\n")
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for c in curves:
            rate = c.updates / c.train_minutes if c.train_minutes else 0.0
            last = c.points[-1]
            cells = (
                [c.label, f"{rate:.0f}"]
                + [_cell(_at(c, m), key) for m in at]
                + [f"{_cell(last, key)} ({last[0]:.1f}, {last[1]})"]
            )
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def train_markdown(curves: Sequence[Curve], updates: Sequence[int]) -> str:
    """Training losses (bits per token of each term) at the given update counts."""
    head = ["run"] + [f"{title} @ {n}" for n in updates for _, title in TRAIN_METRICS]
    lines = [
        "**training losses (bits per target token) at updates**\n",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for c in curves:
        cells = [c.label]
        for n in updates:
            values = c.train.get(n, {})
            cells += [f"{values[key]:.2f}" if key in values else "-" for key, _ in TRAIN_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(curves: Sequence[Curve], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    for ax, (key, title) in zip(axes, METRICS[:4]):
        for c in curves:
            pts = [(p[0], p[2][key]) for p in c.points if key in p[2]]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker=".", label=c.label)
        ax.set_title(title)
        ax.set_xlabel("training minutes")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echostream-learning-curves", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "logs",
        nargs="+",
        help="fairseq-train logs written with --log-format json; FIRST.log+RESUMED.log for a run "
        "resumed from a checkpoint of another",
    )
    p.add_argument("--labels", nargs="+", help="one label per log (default: the file names)")
    p.add_argument("--subset", default="dev", help="the validation subset (fairseq's --valid-subset; default dev)")
    p.add_argument("--at", nargs="+", type=float, default=[2, 4, 6, 8], help="minutes to tabulate (default 2 4 6 8)")
    p.add_argument(
        "--train-at",
        nargs="*",
        type=int,
        default=[],
        help="also tabulate the training losses at these update counts (multiples of --log-interval)",
    )
    p.add_argument("--markdown", type=Path, help="write the tables here")
    p.add_argument("--plot", type=Path, help="write the plot here (PNG)")
    p.add_argument("--json", type=Path, help="write the points here")
    return p


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    labels = args.labels or [Path(spec.split("+")[-1]).stem for spec in args.logs]
    if len(labels) != len(args.logs):
        raise SystemExit(f"error: {len(args.logs)} logs but {len(labels)} labels")
    curves = [read_run(spec, label, args.subset) for spec, label in zip(args.logs, labels)]
    text = markdown(curves, args.at)
    if args.train_at:
        text += "\n" + train_markdown(curves, args.train_at)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    if args.plot:
        plot(curves, args.plot)
    if args.json:
        data: Dict[str, object] = {
            c.label: {
                "updates": c.updates,
                "train_minutes": round(c.train_minutes, 3),
                "points": [{"minutes": round(m, 3), "updates": u, **v} for m, u, v in c.points],
            }
            for c in curves
        }
        args.json.write_text(json.dumps(data, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
