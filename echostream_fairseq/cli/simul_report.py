"""echostream-simul-report: one table of latency and quality for SimulEval output folders.

For each ``--output`` folder of a ``simuleval`` run of an EchoStream agent it reads
``instances.log`` and computes SimulEval's own latency metrics twice: on the delays (source read
before each output) and computation-aware (on the elapsed times, which add the agent's compute).
A single SimulEval run reports only one of the two: with ``--computation-aware`` its plain
columns are computation-aware as well. Quality: ASR-BLEU from ``asr_bleu_offline.json`` (the
``ASR_BLEU_OFFLINE`` scorer) and text BLEU (sacreBLEU) of the agent's ``--extra-output-dir``
``translation.txt`` against ``--reference``.

    echostream-simul-report OUT_320 OUT_2000 --reference DATA/simuleval/test.target --json report.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

from echostream_fairseq.common.files import atomic_open

LATENCY_METRICS = ("AL", "AP", "DAL", "StartOffset", "EndOffset", "ATD")


def _latency(log: Path) -> Dict[str, float]:
    from simuleval.evaluator.instance import LogInstance
    from simuleval.evaluator.scorers import get_scorer_class

    with open(log, encoding="utf-8") as f:
        instances = {i: LogInstance(line) for i, line in enumerate(f) if line.strip()}
    if not instances:
        raise ValueError(f"{log}: no instances")
    out = {}
    for name in LATENCY_METRICS:
        for aware in (False, True):
            scorer = get_scorer_class("latency", name)(computation_aware=aware, use_ref_len=True)
            out[name + ("_CA" if aware else "")] = float(scorer(instances))
    return out


def _text_bleu(hypotheses: Path, reference: Path) -> Optional[float]:
    import sacrebleu

    from echostream_fairseq.data.text import normalize_text

    if not hypotheses.is_file():
        return None
    hyps = hypotheses.read_text(encoding="utf-8").splitlines()
    refs = reference.read_text(encoding="utf-8").splitlines()[: len(hyps)]
    return float(sacrebleu.corpus_bleu([normalize_text(h) for h in hyps], [[normalize_text(r) for r in refs]]).score)


def report(run: Path, reference: Optional[Path]) -> Dict[str, Optional[float]]:
    """The metrics of one SimulEval output folder."""
    log = run / "instances.log"
    if not log.is_file():
        raise ValueError(f"{run}: no instances.log (is it a simuleval --output folder?)")
    row: Dict[str, Optional[float]] = dict(_latency(log))
    asr_bleu = run / "asr_bleu_offline.json"
    row["ASR_BLEU"] = json.loads(asr_bleu.read_text())["bleu"] if asr_bleu.is_file() else None
    text = run / "text" / "translation.txt"
    row["BLEU"] = _text_bleu(text, reference) if reference is not None else None
    return row


def markdown(rows: Dict[str, Dict[str, Optional[float]]]) -> str:
    cols = ["ASR_BLEU", "BLEU", "AL", "AL_CA", "AP", "DAL", "StartOffset", "EndOffset", "ATD"]
    head = "| run | " + " | ".join(c.replace("_CA", " (comp.-aware)") for c in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for name, row in rows.items():
        cells = ["-" if row.get(c) is None else (f"{row[c]:.3f}" if c == "AP" else f"{row[c]:.1f}") for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="echostream-simul-report", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="simuleval --output folders")
    p.add_argument("--labels", nargs="*", default=None, help="row names (default: folder names)")
    p.add_argument("--reference", default=None, help="reference target text, one line per instance")
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    labels = args.labels or [Path(r).name for r in args.runs]
    if len(labels) != len(args.runs):
        print(f"error: {len(labels)} labels for {len(args.runs)} runs", file=sys.stderr)
        return 2
    try:
        rows = {
            label: report(Path(run), Path(args.reference) if args.reference else None)
            for label, run in zip(labels, args.runs)
        }
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown(rows))
    if args.json:
        with atomic_open(args.json) as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
