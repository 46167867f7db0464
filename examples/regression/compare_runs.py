"""Compare two simuleval output folders of the EchoStream agents: the same instances, the same text,
units and speech.

    python examples/regression/compare_runs.py BEFORE AFTER [--atol 0]

Each folder is what ``simuleval --output OUT --extra-output-dir OUT/text`` wrote: the instances'
predictions (``instances.log``), ``text/{asr,translation,units}.txt`` and ``wavs/*.wav``. Texts and
units must be equal; waveforms equal within ``--atol`` (0: bit for bit). Delays, which depend on
the machine's speed, are not compared. Exit status 0 when everything matches, 1 otherwise (each
difference printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List

import numpy as np
import soundfile as sf


def _predictions(folder: Path) -> List[str]:
    """Each instance's prediction: its text, or for speech the name of its wav (the folder differs)."""
    with open(folder / "instances.log", encoding="utf-8") as f:
        predictions = [json.loads(line)["prediction"] for line in f if line.strip()]
    return [Path(p).name if str(p).endswith(".wav") else p for p in predictions]


def compare(before: Path, after: Path, atol: float) -> List[str]:
    """The differences between two run folders (empty: identical outputs)."""
    problems = []
    for folder in (before, after):
        if not (folder / "instances.log").is_file():
            return [f"{folder}: no instances.log (not a simuleval output folder)"]
    a, b = _predictions(before), _predictions(after)
    if len(a) != len(b):
        problems.append(f"instances: {len(a)} against {len(b)}")
    problems += [f"instance {i}: prediction differs" for i, (x, y) in enumerate(zip(a, b)) if x != y]
    for name in ("asr.txt", "translation.txt", "units.txt"):
        x, y = before / "text" / name, after / "text" / name
        if x.is_file() != y.is_file():
            problems.append(f"text/{name}: present in only one run")
        elif x.is_file() and x.read_text(encoding="utf-8") != y.read_text(encoding="utf-8"):
            lines = zip(x.read_text(encoding="utf-8").splitlines(), y.read_text(encoding="utf-8").splitlines())
            problems += [f"text/{name} line {i + 1} differs" for i, (p, q) in enumerate(lines) if p != q] or [
                f"text/{name}: differs"
            ]
    wavs_a = sorted(p.name for p in (before / "wavs").glob("*.wav")) if (before / "wavs").is_dir() else []
    wavs_b = sorted(p.name for p in (after / "wavs").glob("*.wav")) if (after / "wavs").is_dir() else []
    if wavs_a != wavs_b:
        problems.append(f"wavs: {len(wavs_a)} files against {len(wavs_b)}, or other names")
    for name in sorted(set(wavs_a) & set(wavs_b)):
        x, rate_x = sf.read(before / "wavs" / name, dtype="float32")
        y, rate_y = sf.read(after / "wavs" / name, dtype="float32")
        if rate_x != rate_y or x.shape != y.shape:
            problems.append(f"wavs/{name}: {x.shape} at {rate_x} Hz against {y.shape} at {rate_y} Hz")
        elif not np.allclose(x, y, rtol=0, atol=atol):
            problems.append(f"wavs/{name}: max difference {float(np.abs(x - y).max()):.3g} > {atol}")
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--atol", type=float, default=0.0, help="largest sample difference allowed (0: bit for bit)")
    args = p.parse_args(argv)
    problems = compare(args.before, args.after, args.atol)
    for line in problems:
        print(line)
    wavs = len(list((args.before / "wavs").glob("*.wav"))) if (args.before / "wavs").is_dir() else 0
    print(
        f"{args.before} vs {args.after}: {'identical' if not problems else f'{len(problems)} differences'} "
        f"({len(_predictions(args.before)) if (args.before / 'instances.log').is_file() else 0} instances, {wavs} wavs)"
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
