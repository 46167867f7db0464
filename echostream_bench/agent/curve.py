"""The latency-quality experiment: the real ``simuleval`` CLI per (system, chunk size), ASR-BLEU and
SimulEval's latency metrics, the agent's text BLEU, and the reference speech's ASR-BLEU."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from echostream_bench.agent.inputs import (
    REPO,
    BenchError,
    agent_flags,
    check_file,
    read_lines,
    split_files,
    vocoder_path,
)
from echostream_bench.agent.stats import mean

__all__ = ["LATENCY_METRICS", "QUALITY_METRIC", "curve"]

LATENCY_METRICS = ("AL", "AP", "DAL", "StartOffset", "EndOffset", "ATD")
QUALITY_METRIC = "ASR_BLEU_OFFLINE"


def _lm_text_file(lm_text: str, out: Path) -> Path:
    """A one-sentence-per-line file for the recogniser's LM: ``lm_text`` itself, or the
    ``tgt_text`` column of a TSV (echostream-prep's text/train.tsv)."""
    path = check_file(lm_text, "ASR LM text", "--lm-text")
    if path.suffix != ".tsv":
        return path
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or "tgt_text" not in rows[0]:
        raise BenchError(f"{path}: a TSV LM text needs a tgt_text column")
    target = out / "lm_text.txt"
    target.write_text("".join(r["tgt_text"].strip() + "\n" for r in rows if r["tgt_text"].strip()), encoding="utf-8")
    return target


def _asr_bleu_state() -> Tuple[bool, str]:
    try:
        from echostream_fairseq.evaluation import asr_bleu as module

        ok = hasattr(module, "OfflineASRBLEUScorer") and getattr(module, "SCORER_NAME", None) == QUALITY_METRIC
        return ok, "ready" if ok else "echostream_fairseq.evaluation.asr_bleu has no ASR_BLEU_OFFLINE scorer"
    except Exception as e:  # noqa: BLE001 - any failure means: run without it
        return False, f"cannot import echostream_fairseq.evaluation.asr_bleu: {type(e).__name__}: {e}"


def _read_scores(path: Path) -> Dict[str, float]:
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        raise BenchError(f"{path}: no scores")
    out = {}
    for k, v in rows[0].items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            out[k] = float("nan")
    return out


def _finite_number(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _text_bleu(hyps: List[str], refs: List[str]) -> float:
    from sacrebleu.metrics import BLEU

    from echostream_fairseq.data.text import normalize_text

    return float(
        BLEU(tokenize="13a").corpus_score([normalize_text(h) for h in hyps], [[normalize_text(r) for r in refs]]).score
    )


def _reference_ceiling(sources: List[str], refs: List[str], data: Path, lm_file: Path) -> Optional[Dict[str, Any]]:
    """ASR-BLEU of the split's reference target speech (``DATA/audio/tgt/<id>.wav``), if there."""
    from echostream_fairseq.evaluation.asr_bleu import asr_bleu, build_transcriber

    wavs = [data / "audio" / "tgt" / Path(s).name for s in sources]
    if not all(w.is_file() for w in wavs):
        return None
    result = asr_bleu([str(w) for w in wavs], refs, build_transcriber("pocketsphinx", lm_file))
    return {"asr_bleu": result["bleu"], "hyp_words": result["hyp_words"], "ref_words": result["ref_words"]}


def curve(args) -> Dict[str, Any]:
    """The latency-quality part (see :mod:`echostream_bench.agent`)."""
    from tqdm import tqdm

    started = time.perf_counter()
    data = Path(args.data)
    source, target = split_files(data, args.split)
    out = Path(args.out) / "curve"
    out.mkdir(parents=True, exist_ok=True)
    sources, refs = read_lines(source)[: args.num_utterances], read_lines(target)[: args.num_utterances]
    if len(sources) != len(refs) or not sources:
        raise BenchError(f"{source} and {target} must hold the same number (> 0) of lines")
    src_file, tgt_file = out / f"{args.split}{len(sources)}.source", out / f"{args.split}{len(sources)}.target"
    src_file.write_text("".join(s + "\n" for s in sources), encoding="utf-8")
    tgt_file.write_text("".join(r + "\n" for r in refs), encoding="utf-8")
    simuleval = shutil.which(args.simuleval) or (args.simuleval if os.path.isfile(args.simuleval) else None)
    if simuleval is None:
        raise BenchError(f"simuleval executable not found: {args.simuleval} (--simuleval)")
    agent = check_file(args.agent, "SimulEval agent", "--agent")
    ok, state = _asr_bleu_state()
    lm_file = _lm_text_file(args.lm_text, out) if ok else None
    if not ok:
        logging.warning("ASR-BLEU unavailable (%s): running latency only", state)
    systems = {"echostream": (args.model, False), "baseline": (args.baseline_model, True)}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONWARNINGS="ignore")
    runs: List[Dict[str, Any]] = []
    jobs = [(c, name) for c in args.chunk_sizes for name in systems]  # interleave the systems
    for chunk_ms, name in tqdm(jobs, desc="simuleval runs", unit="run", dynamic_ncols=True):
        model, reencode = systems[name]
        run_dir = out / f"{name}_{chunk_ms}ms"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        cmd = [
            simuleval,
            "--agent",
            str(agent),
            "--source",
            str(src_file),
            "--target",
            str(tgt_file),
            "--output",
            str(run_dir),
            *agent_flags(args, model, reencode, chunk_ms),
            "--threads",
            str(args.threads),
            "--extra-output-dir",
            str(run_dir / "extra"),
            "--latency-metrics",
            *LATENCY_METRICS,
            "--no-progress-bar",
        ]
        if ok:  # SimulEval must import the scorer before it reads --agent: --user-dir (see asr_bleu.py)
            cmd += [
                "--user-dir",
                str(REPO / "echostream_fairseq" / "evaluation" / "asr_bleu"),
                "--quality-metrics",
                QUALITY_METRIC,
                "--asr-bleu-lm-text",
                str(lm_file),
            ]
        # else text-free: latency only (SimulEval's default BLEU on wav paths is meaningless; not read)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
        wall = time.perf_counter() - t0
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "simuleval.log").write_text(" ".join(cmd) + "\n\n" + proc.stdout + proc.stderr, encoding="utf-8")
        scores_path = run_dir / "scores.tsv"
        lengths = []
        log = run_dir / "instances.log"
        if log.is_file():
            for line in log.read_text(encoding="utf-8").splitlines():
                lengths.append(float(json.loads(line).get("prediction_length", 0.0)))
        row: Dict[str, Any] = {"system": name, "chunk_ms": chunk_ms, "wall_s": wall}
        if proc.returncode == 0 and scores_path.is_file():
            scores = _read_scores(scores_path)
        elif lengths and not any(lengths):
            # SimulEval 1.1.4's latency scorers divide by zero when no instance produced speech
            scores = {}
            row["error"] = "no instance produced speech: SimulEval cannot compute its latency"
            logging.warning("%s at %d ms: %s", name, chunk_ms, row["error"])
        else:
            raise BenchError(
                f"simuleval failed for {name} at {chunk_ms} ms (exit {proc.returncode}); "
                f"see {run_dir / 'simuleval.log'}:\n{(proc.stdout + proc.stderr)[-2000:]}"
            )
        row.update(
            {
                "asr_bleu": scores.get(QUALITY_METRIC, float("nan")),
                **{m: scores.get(m, float("nan")) for m in LATENCY_METRICS},
            }
        )
        translation = run_dir / "extra" / "translation.txt"
        if translation.is_file():
            hyps = translation.read_text(encoding="utf-8").splitlines()
            row["text_bleu"] = _text_bleu(hyps, refs) if len(hyps) == len(refs) else float("nan")
        row["speech_s_per_utt"] = mean(lengths)
        details = run_dir / "asr_bleu_offline.json"  # the scorer's own output (there even if latency failed)
        if details.is_file():
            d = json.loads(details.read_text(encoding="utf-8"))
            row.update(
                {
                    "hyp_words": d.get("hyp_words"),
                    "ref_words": d.get("ref_words"),
                    "empty_transcripts": d.get("empty_transcripts"),
                }
            )
            if not _finite_number(row["asr_bleu"]) and _finite_number(d.get("bleu")):
                row["asr_bleu"] = float(d["bleu"])
        runs.append(row)
    ceiling = None
    if ok:
        print("ASR-BLEU of the reference target speech (the recogniser's ceiling) ...", flush=True)
        ceiling = _reference_ceiling(sources, refs, data, lm_file)
    labels = {
        "echostream": f"EchoStream ({Path(args.model).parent.name}, incremental)",
        "baseline": f"re-encode baseline ({Path(args.baseline_model).parent.name})",
    }
    return {
        "config": {
            "utterances": len(sources),
            "split": args.split,
            "chunk_sizes_ms": list(args.chunk_sizes),
            "data": str(args.data),
            "vocoder": f"{args.vocoder_type} ({vocoder_path(args)})",
            "lm_text": str(args.lm_text),
            "threads": args.threads,
            "agent": str(agent),
        },
        "asr_bleu_state": state,
        "labels": labels,
        "systems": {name: {"model": m, "reencode": r} for name, (m, r) in systems.items()},
        "runs": runs,
        "reference_speech": ceiling,
        "runtime_s": time.perf_counter() - started,
    }
