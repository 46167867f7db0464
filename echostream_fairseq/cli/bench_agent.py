"""``echostream-bench-agent``: agent-level evidence: per-chunk compute over a long stream, and the latency-quality curve.

::

    echostream-bench-agent --part long-stream [--minutes 5] [--source-segment-size 320] [--out results/bench_agent]
    echostream-bench-agent --part curve [--chunk-sizes 160 320 640 1000 2000] [--num-utterances 40]

Both parts run the whole agent (:class:`~echostream_fairseq.streaming.translator.SimultaneousTranslator`:
fbank, encoder, CTC heads, READ/WRITE policy, MT decoder, text-to-unit, unit CTC, vocoder), with speech
output, on checkpoints loaded as the SimulEval agent loads them
(:func:`~echostream_fairseq.agents.simuleval_agent.build_translator`).

**long-stream.** The split's utterances, concatenated in order (repeated when needed) with
``--silence`` seconds of silence between them, up to ``--minutes``, fed in ``--source-segment-size``
chunks. Systems:

* ``echostream``: ``--model`` (the Emformer checkpoint) in incremental mode; every chunk of the
  whole stream is timed (wall time of ``translator.step``). Value at a position: the median of the
  chunks within ``--window`` chunks of it.
* ``echostream_forced``: the same, with the MT decoder's end of sentence banned, so the decoder,
  the text-to-unit stack and the vocoder keep working along the stream (the models are trained on
  single sentences: on a concatenated stream their decoder ends its sentence after the first
  few seconds and then writes nothing, so the late chunks of ``echostream`` skip those stages).
  Stepped interleaved with ``echostream``, chunk by chunk, in the same process.
* ``model_reencode``: ``--model`` with ``reencode=True`` (StreamSpeech's agent: re-encode and
  re-decode the whole prefix every chunk): same weights, both modes.
* ``baseline``: ``--baseline-model`` (the chunk Conformer) with ``reencode=True``.

The re-encoding systems' per-chunk cost grows with the position, so running them chunk by chunk to
minute 5 would take hours: at each of ``--positions`` the prefix up to that position is fed as one
chunk (untimed), then ``--timed-chunks`` normal chunks are timed, the two systems interleaved.

Computation-aware lag: real time is simulated from the per-chunk costs (chunk ``k`` arrives at
``(k + 1) * segment``; its processing starts at ``max(arrival, previous finish)``); the lag of a
chunk is ``finish - arrival``. For the sampled systems the per-chunk cost between measured positions
is interpolated linearly (held at the first measurement before it).

Per-stage time (exclusive wall time of the translator's encoder, MT, T2U/unit and vocoder calls) is
recorded along the way, with what each chunk produced (subwords, units, speech).

**curve.** ASR-BLEU against AL over chunk sizes for ``echostream`` and ``baseline`` on the first
``--num-utterances`` utterances of the split: the real ``simuleval`` CLI on
``agents/echostream_s2st_agent.py`` as a subprocess per (system, chunk size), quality metric
``ASR_BLEU_OFFLINE`` (pocketsphinx with a bigram LM from ``--lm-text``), latency metrics AL AP DAL
StartOffset EndOffset ATD, read back from SimulEval's ``scores.tsv``. The agent's text translation
is also scored with BLEU (from ``--extra-output-dir``), and the ASR-BLEU of the split's reference
target speech is given as the recogniser's ceiling.

Writes ``bench_agent.md`` (tables), ``bench_agent.json``, ``bench_agent_long_stream.png`` and
``bench_agent_curve.png`` to ``--out``; running one part keeps the other part's earlier results there.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = ["build_parser", "main", "run", "render", "simulate_lag", "build_stream", "StageTimer"]

REPO = Path(__file__).resolve().parents[2]
SAMPLE_RATE = 16000
STAGES = ("encoder", "mt", "units", "vocoder")
STAGE_LABELS = {"encoder": "fbank+encoder+CTC", "mt": "MT decoder", "units": "T2U + unit CTC", "vocoder": "vocoder",
                "other": "other"}
LATENCY_METRICS = ("AL", "AP", "DAL", "StartOffset", "EndOffset", "ATD")
QUALITY_METRIC = "ASR_BLEU_OFFLINE"
SYSTEM_ORDER = ("echostream", "echostream_forced", "model_reencode", "baseline")


class BenchError(Exception):
    """A missing input or an unusable setting; the message says what to fix."""


# ---------------------------------------------------------------------------------------------
# inputs


def _split_files(data: Path, split: str) -> Tuple[Path, Path]:
    source, target = data / "simuleval" / f"{split}.source", data / "simuleval" / f"{split}.target"
    for path in (source, target):
        if not path.is_file():
            raise BenchError(f"{path} not found: --data must be a corpus folder written by echostream-prep "
                             f"(with simuleval/{split}.source and .target)")
    return source, target


def _read_lines(path: Path) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def _check_file(path: Optional[str], what: str, flag: str) -> Path:
    if not path:
        raise BenchError(f"{what} not given ({flag})")
    p = Path(path)
    if not p.is_file():
        raise BenchError(f"{what} not found: {p} ({flag})")
    return p


def _vocoder_path(args) -> str:
    return args.vocoder or str(Path(args.data) / "units" / "kmeans.pt")


def _check_inputs(args, need_baseline: bool) -> None:
    data = Path(args.data)
    if not data.is_dir():
        raise BenchError(f"corpus folder not found: {data} (--data)")
    _split_files(data, args.split)
    _check_file(args.model, "checkpoint", "--model")
    if need_baseline:
        _check_file(args.baseline_model, "baseline checkpoint", "--baseline-model")
    _check_file(_vocoder_path(args), "vocoder", "--vocoder")
    if args.vocoder_type == "code_hifigan":
        _check_file(args.vocoder_cfg, "vocoder config", "--vocoder-cfg")


def _agent_flags(args, model: str, reencode: bool, segment_ms: int) -> List[str]:
    """The SimulEval agent's flags for ``model`` (also what :func:`_load_translator` parses)."""
    flags = ["--model-path", str(model), "--data-bin", str(args.data), "--vocoder", _vocoder_path(args),
             "--vocoder-type", args.vocoder_type, "--source-segment-size", str(segment_ms)]
    if args.vocoder_cfg:
        flags += ["--vocoder-cfg", args.vocoder_cfg]
    if not args.no_dur_prediction:
        flags.append("--dur-prediction")
    if reencode:
        flags.append("--reencode")
    return flags


def _load_translator(args, model: str, reencode: bool, segment_ms: int):
    from echostream_fairseq.agents.simuleval_agent import add_agent_args, build_translator

    parser = argparse.ArgumentParser(add_help=False)
    add_agent_args(parser, speech_output=True)
    parser.add_argument("--source-segment-size", type=int, default=320)
    agent_args = parser.parse_args(_agent_flags(args, model, reencode, segment_ms))
    try:
        return build_translator(agent_args, speech_output=True)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise BenchError(f"cannot load {model} ({'re-encode' if reencode else 'incremental'} mode): {e}") from None


def _encoder_name(translator) -> str:
    return str(getattr(translator.model.encoder, "encoder_type", "model")).capitalize()


def build_stream(paths: Sequence[str], seconds: float, silence: float) -> Tuple[torch.Tensor, int]:
    """The utterances at ``paths`` in order, repeated as needed, ``silence`` seconds apart, cut at
    ``seconds``. Returns ``(samples [N] at 16 kHz, utterances used)``."""
    from echostream_fairseq.data.audio import read_audio

    if not paths:
        raise BenchError("no utterances to build the stream from")
    total = int(round(seconds * SAMPLE_RATE))
    gap = torch.zeros(int(round(silence * SAMPLE_RATE)))
    pieces, length, used, cache = [], 0, 0, {}
    while length < total:
        path = paths[used % len(paths)]
        if path not in cache:
            if not os.path.isfile(path):
                raise BenchError(f"source audio not found: {path}")
            cache[path] = read_audio(path, SAMPLE_RATE)
        for piece in (cache[path], gap):
            pieces.append(piece)
            length += piece.numel()
        used += 1
        if used >= len(paths) and length == 0:
            raise BenchError("the source audio is empty")
    return torch.cat(pieces)[:total], used


# ---------------------------------------------------------------------------------------------
# timing


class StageTimer:
    """Exclusive wall time of a translator's stages, chunk by chunk.

    Wraps (on the instance only) the translator methods of each stage and its incremental
    vocoder's ``step``; nested calls are not counted twice. ``take()`` returns the seconds spent in
    each stage since the last call.
    """

    METHODS = {"_encode_increment": "encoder", "_encode_prefix": "encoder", "_extend_mt_memory": "mt",
               "_write": "mt", "_units_for": "units", "_reencode_units": "units", "_reencode_speech": "vocoder"}

    def __init__(self, translator) -> None:
        self.totals: Dict[str, float] = defaultdict(float)
        self._stack: List[float] = []
        for name, stage in self.METHODS.items():
            if hasattr(translator, name):
                setattr(translator, name, self._wrap(getattr(translator, name), stage))
        if getattr(translator, "vocoder", None) is not None:
            translator.vocoder.step = self._wrap(translator.vocoder.step, "vocoder")

    @classmethod
    def of(cls, translator) -> "StageTimer":
        """The translator's timer (installed on first use, then shared)."""
        timer = getattr(translator, "_bench_stage_timer", None)
        if timer is None:
            timer = cls(translator)
            translator._bench_stage_timer = timer
        return timer

    def _wrap(self, fn, stage: str):
        def timed(*a, **kw):
            self._stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                elapsed = time.perf_counter() - t0
                children = self._stack.pop()
                self.totals[stage] += elapsed - children
                if self._stack:
                    self._stack[-1] += elapsed
        return timed

    def take(self) -> Dict[str, float]:
        out = {s: self.totals.get(s, 0.0) for s in STAGES}
        self.totals.clear()
        return out


def _force_writing(translator) -> None:
    """Ban the MT decoder's end of sentence and the unit CTC's blank: the decoder then writes
    whatever the policy allows and every written subword becomes units and speech, all along the
    stream (a stress setting for the cost of every stage, not a translation setting)."""
    from echostream_fairseq.modules.ctc import CTC_BLANK

    for name in ("tgt_banned", "unit_banned"):
        if not isinstance(getattr(translator, name, None), list):
            raise BenchError(f"this SimultaneousTranslator has no {name} list: cannot force writing")
    translator.tgt_banned = list(translator.tgt_banned) + [translator.tgt_dict.eos()]
    translator.unit_banned = list(translator.unit_banned) + [CTC_BLANK]


class _Timed:
    """One system's translator, stream state, stage timer and per-chunk records."""

    def __init__(self, translator) -> None:
        self.translator = translator
        self.timer = StageTimer.of(translator)
        self.state = translator.initial_state(SAMPLE_RATE)
        self.chunk_s: List[float] = []
        self.stages: Dict[str, List[float]] = {s: [] for s in STAGES}
        self.subwords: List[int] = []
        self.units: List[int] = []
        self.audio: List[int] = []

    def step(self, samples: torch.Tensor, record: bool = True) -> float:
        self.timer.take()
        t0 = time.perf_counter()
        out, self.state = self.translator.step(self.state, samples)
        elapsed = time.perf_counter() - t0
        stages = self.timer.take()
        if record:
            self.chunk_s.append(elapsed)
            for s in STAGES:
                self.stages[s].append(stages[s])
            self.subwords.append(len(out.target_tokens))
            self.units.append(len(out.units))
            self.audio.append(int(out.audio.numel()))
        return elapsed


def _warm_up(translator, stream: torch.Tensor, segment: int, chunks: int = 8) -> None:
    """A throwaway stream first, so one-off allocations do not land in the measurements."""
    state = translator.initial_state(SAMPLE_RATE)
    for k in range(min(chunks, stream.numel() // segment)):
        _, state = translator.step(state, stream[k * segment:(k + 1) * segment])


def simulate_lag(chunk_cost_s: Sequence[float], segment_s: float) -> List[float]:
    """Real-time simulation: chunk ``k`` arrives at ``(k + 1) * segment_s`` and is processed from
    ``max(arrival, previous finish)`` for its cost; returns each chunk's ``finish - arrival`` (s)."""
    lags, finish = [], 0.0
    for k, cost in enumerate(chunk_cost_s):
        arrival = (k + 1) * segment_s
        finish = max(arrival, finish) + cost
        lags.append(finish - arrival)
    return lags


def _key(p: float) -> str:
    return f"{p:g}"


def _window(k: int, n: int, w: int) -> Tuple[int, int]:
    return max(0, k - w), min(n, k + w + 1)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _summarise_window(sys_: _Timed, lo: int, hi: int) -> Dict[str, Any]:
    ms = [t * 1e3 for t in sys_.chunk_s[lo:hi]]
    stages = {s: _mean(sys_.stages[s][lo:hi]) * 1e3 for s in STAGES}
    stages["other"] = _mean(ms) - sum(stages[s] for s in STAGES)
    return {
        "median_ms": statistics.median(ms),
        "mean_ms": _mean(ms),
        "chunks": [lo, hi],
        "stages_mean_ms": stages,
        "subwords": sum(sys_.subwords[lo:hi]),
        "units": sum(sys_.units[lo:hi]),
        "speech_s": sum(sys_.audio[lo:hi]) / SAMPLE_RATE,
    }


def long_stream(args) -> Dict[str, Any]:
    """The long-stream part (see the module docstring)."""
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    source, _ = _split_files(data, args.split)
    segment_ms = args.source_segment_size
    segment = segment_ms * SAMPLE_RATE // 1000
    segment_s = segment / SAMPLE_RATE
    n = math.ceil(args.minutes * 60.0 / segment_s - 1e-9)  # chunks covering --minutes
    stream, used = build_stream(_read_lines(source), n * segment_s, args.silence)
    n = stream.numel() // segment
    if n < args.timed_chunks + 1:
        raise BenchError(f"--minutes {args.minutes:g} gives fewer than {args.timed_chunks + 1} chunks of {segment_ms} ms")
    positions = [p for p in args.positions if p <= n * segment_s + 1e-9]
    dropped = [p for p in args.positions if p not in positions]
    if dropped:
        logging.warning("positions beyond the %.1f s stream left out: %s", n * segment_s, dropped)
    if not positions:
        raise BenchError(f"no --positions within the {n * segment_s:.1f} s stream")
    started = time.perf_counter()

    print(f"loading {args.model} (incremental{', forced-write copy' if args.forced_write else ''}) ...", flush=True)
    full: Dict[str, _Timed] = {"echostream": _Timed(_load_translator(args, args.model, False, segment_ms))}
    if args.forced_write:
        forced = _load_translator(args, args.model, False, segment_ms)
        _force_writing(forced)
        full["echostream_forced"] = _Timed(forced)
    for s in full.values():
        _warm_up(s.translator, stream, segment)
        s.timer.take()
    names = list(full)
    for k in tqdm(range(n), desc=f"EchoStream, {n} chunks", unit="chunk", dynamic_ncols=True):
        chunk = stream[k * segment:(k + 1) * segment]
        order = names if k % 2 == 0 else names[::-1]  # alternate who goes first
        for name in order:
            full[name].step(chunk)
    echostream_s = time.perf_counter() - started

    systems: Dict[str, Dict[str, Any]] = {}
    for name, s in full.items():
        at = {}
        for p in positions:
            k = min(n - 1, max(0, int(round(p / segment_s)) - 1))
            lo, hi = _window(k, n, args.window)
            at[_key(p)] = _summarise_window(s, lo, hi)
        lag = simulate_lag(s.chunk_s, segment_s)
        for p in positions:
            k = min(n - 1, max(0, int(round(p / segment_s)) - 1))
            at[_key(p)]["lag_s"] = lag[k]
        label = f"EchoStream ({_encoder_name(s.translator)}, incremental)"
        systems[name] = {
            "label": label + (", forced write" if name == "echostream_forced" else ""),
            "model": args.model,
            "measured": "every chunk",
            "at_position": at,
            "trace_ms": [t * 1e3 for t in s.chunk_s],
            "stage_trace_ms": {st: [t * 1e3 for t in v] for st, v in s.stages.items()},
            "subwords_total": sum(s.subwords),
            "units_total": sum(s.units),
            "speech_total_s": sum(s.audio) / SAMPLE_RATE,
            "last_subword_at_s": (max((k for k, v in enumerate(s.subwords) if v), default=-1) + 1) * segment_s,
            "lag_s": lag,
        }
    del full

    # the re-encoding systems, sampled
    sampled_started = time.perf_counter()
    peers = {"model_reencode": args.model}
    if not args.no_baseline:
        peers["baseline"] = args.baseline_model
    loaded: Dict[str, Any] = {}
    for name, path in peers.items():
        print(f"loading {path} (re-encode) ...", flush=True)
        loaded[name] = _load_translator(args, path, True, segment_ms)
        _warm_up(loaded[name], stream, segment)
    records: Dict[str, Dict[str, Any]] = {name: {} for name in peers}
    for p in tqdm(positions, desc="re-encoding systems, sampled positions", unit="position", dynamic_ncols=True):
        start = min(max(1, int(round(p / segment_s))), n - args.timed_chunks)
        runners = {}
        for name, tr in loaded.items():
            r = _Timed(tr)
            t0 = time.perf_counter()
            r.step(stream[:start * segment], record=False)  # the prefix as one chunk, untimed
            runners[name] = (r, time.perf_counter() - t0)
        for j in range(args.timed_chunks):
            k = start + j
            chunk = stream[k * segment:(k + 1) * segment]
            order = list(runners) if j % 2 == 0 else list(runners)[::-1]
            for name in order:
                runners[name][0].step(chunk)
        for name, (r, prefix_s) in runners.items():
            summary = _summarise_window(r, 0, args.timed_chunks)
            summary.update({"chunk_ms": [t * 1e3 for t in r.chunk_s], "prefix_step_s": prefix_s,
                            "first_timed_chunk_ends_s": (start + 1) * segment_s,
                            "subwords_before": len(r.state.target_tokens) - summary["subwords"]})
            records[name][_key(p)] = summary
        del runners
    sampled_s = time.perf_counter() - sampled_started
    ends = [(k + 1) * segment_s for k in range(n)]
    for name, tr in loaded.items():
        xs = [records[name][_key(p)]["first_timed_chunk_ends_s"] for p in positions]
        ys = [records[name][_key(p)]["median_ms"] / 1e3 for p in positions]
        cost = np.interp(ends, xs, ys).tolist()  # linear between measurements, held outside them
        lag = simulate_lag(cost, segment_s)
        for p in positions:
            k = min(n - 1, max(0, int(round(p / segment_s)) - 1))
            records[name][_key(p)]["lag_s"] = lag[k]
        systems[name] = {
            "label": f"{_encoder_name(tr)}, re-encode" + (" (StreamSpeech's agent)" if name == "baseline" else ""),
            "model": peers[name],
            "measured": f"sampled: prefix as one untimed chunk, then {args.timed_chunks} timed chunks",
            "at_position": records[name],
            "lag_s": lag,
            "lag_interpolated": True,
        }

    first, last = _key(positions[0]), _key(positions[-1])
    ref = systems["echostream"]["at_position"][first]["median_ms"]
    for name, s in systems.items():
        for row in s["at_position"].values():
            row["ratio_to_echostream_first"] = row["median_ms"] / ref
    headline = {}
    for name in ("echostream", "echostream_forced"):
        if name in systems:
            a = systems[name]["at_position"][first]["median_ms"]
            b = systems[name]["at_position"][last]["median_ms"]
            headline[name] = {"first_position_s": positions[0], "last_position_s": positions[-1], "first_ms": a,
                              "last_ms": b, "ratio": b / a, "within_20_percent": abs(b / a - 1.0) <= 0.2,
                              "at_most_20_percent_above": b / a <= 1.2}
    return {
        "config": {
            "minutes": args.minutes, "stream_s": n * segment_s, "chunks": n, "source_segment_size_ms": segment_ms,
            "silence_s": args.silence, "utterances_in_stream": used, "split": args.split, "data": str(args.data),
            "positions_s": positions, "window_chunks": args.window, "timed_chunks": args.timed_chunks,
            "vocoder": f"{args.vocoder_type} ({_vocoder_path(args)})", "threads": args.threads,
        },
        "systems": systems,
        "headline": headline,
        "runtime_s": {"echostream_full_stream": echostream_s, "reencode_sampled": sampled_s,
                      "total": time.perf_counter() - started},
    }


# ---------------------------------------------------------------------------------------------
# latency-quality curve


def _lm_text_file(lm_text: str, out: Path) -> Path:
    """A one-sentence-per-line file for the recogniser's LM: ``lm_text`` itself, or the
    ``tgt_text`` column of a TSV (echostream-prep's text/train.tsv)."""
    path = _check_file(lm_text, "ASR LM text", "--lm-text")
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

    return float(BLEU(tokenize="13a").corpus_score([normalize_text(h) for h in hyps],
                                                   [[normalize_text(r) for r in refs]]).score)


def _reference_ceiling(sources: List[str], refs: List[str], data: Path, lm_file: Path) -> Optional[Dict[str, Any]]:
    """ASR-BLEU of the split's reference target speech (``DATA/audio/tgt/<id>.wav``), if there."""
    from echostream_fairseq.evaluation.asr_bleu import asr_bleu, build_transcriber

    wavs = [data / "audio" / "tgt" / Path(s).name for s in sources]
    if not all(w.is_file() for w in wavs):
        return None
    result = asr_bleu([str(w) for w in wavs], refs, build_transcriber("pocketsphinx", lm_file))
    return {"asr_bleu": result["bleu"], "hyp_words": result["hyp_words"], "ref_words": result["ref_words"]}


def curve(args) -> Dict[str, Any]:
    """The latency-quality part (see the module docstring)."""
    from tqdm import tqdm

    started = time.perf_counter()
    data = Path(args.data)
    source, target = _split_files(data, args.split)
    out = Path(args.out) / "curve"
    out.mkdir(parents=True, exist_ok=True)
    sources, refs = _read_lines(source)[:args.num_utterances], _read_lines(target)[:args.num_utterances]
    if len(sources) != len(refs) or not sources:
        raise BenchError(f"{source} and {target} must hold the same number (> 0) of lines")
    src_file, tgt_file = out / f"{args.split}{len(sources)}.source", out / f"{args.split}{len(sources)}.target"
    src_file.write_text("".join(s + "\n" for s in sources), encoding="utf-8")
    tgt_file.write_text("".join(r + "\n" for r in refs), encoding="utf-8")
    simuleval = shutil.which(args.simuleval) or (args.simuleval if os.path.isfile(args.simuleval) else None)
    if simuleval is None:
        raise BenchError(f"simuleval executable not found: {args.simuleval} (--simuleval)")
    agent = _check_file(args.agent, "SimulEval agent", "--agent")
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
        cmd = [simuleval, "--agent", str(agent), "--source", str(src_file), "--target", str(tgt_file),
               "--output", str(run_dir), *_agent_flags(args, model, reencode, chunk_ms),
               "--threads", str(args.threads), "--extra-output-dir", str(run_dir / "extra"),
               "--latency-metrics", *LATENCY_METRICS, "--no-progress-bar"]
        if ok:  # SimulEval must import the scorer before it reads --agent: --user-dir (see asr_bleu.py)
            cmd += ["--user-dir", str(REPO / "echostream_fairseq" / "evaluation" / "asr_bleu"),
                    "--quality-metrics", QUALITY_METRIC, "--asr-bleu-lm-text", str(lm_file)]
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
            raise BenchError(f"simuleval failed for {name} at {chunk_ms} ms (exit {proc.returncode}); "
                             f"see {run_dir / 'simuleval.log'}:\n{(proc.stdout + proc.stderr)[-2000:]}")
        row.update({"asr_bleu": scores.get(QUALITY_METRIC, float("nan")),
                    **{m: scores.get(m, float("nan")) for m in LATENCY_METRICS}})
        translation = run_dir / "extra" / "translation.txt"
        if translation.is_file():
            hyps = translation.read_text(encoding="utf-8").splitlines()
            row["text_bleu"] = _text_bleu(hyps, refs) if len(hyps) == len(refs) else float("nan")
        row["speech_s_per_utt"] = _mean(lengths)
        details = run_dir / "asr_bleu_offline.json"  # the scorer's own output (there even if latency failed)
        if details.is_file():
            d = json.loads(details.read_text(encoding="utf-8"))
            row.update({"hyp_words": d.get("hyp_words"), "ref_words": d.get("ref_words"),
                        "empty_transcripts": d.get("empty_transcripts")})
            if not _finite_number(row["asr_bleu"]) and _finite_number(d.get("bleu")):
                row["asr_bleu"] = float(d["bleu"])
        runs.append(row)
    ceiling = None
    if ok:
        print("ASR-BLEU of the reference target speech (the recogniser's ceiling) ...", flush=True)
        ceiling = _reference_ceiling(sources, refs, data, lm_file)
    labels = {"echostream": f"EchoStream ({Path(args.model).parent.name}, incremental)",
              "baseline": f"re-encode baseline ({Path(args.baseline_model).parent.name})"}
    return {
        "config": {"utterances": len(sources), "split": args.split, "chunk_sizes_ms": list(args.chunk_sizes),
                   "data": str(args.data), "vocoder": f"{args.vocoder_type} ({_vocoder_path(args)})",
                   "lm_text": str(args.lm_text), "threads": args.threads, "agent": str(agent)},
        "asr_bleu_state": state,
        "labels": labels,
        "systems": {name: {"model": m, "reencode": r} for name, (m, r) in systems.items()},
        "runs": runs,
        "reference_speech": ceiling,
        "runtime_s": time.perf_counter() - started,
    }


# ---------------------------------------------------------------------------------------------
# output


def _f(x: Optional[float], fmt: str = ".1f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return format(x, fmt)


def render_long_stream(r: Dict[str, Any]) -> str:
    c, systems = r["config"], r["systems"]
    positions = c["positions_s"]
    seg = c["source_segment_size_ms"]
    names = [n for n in SYSTEM_ORDER if n in systems]
    full = [n for n in names if systems[n]["measured"] == "every chunk"]
    sampled = [n for n in names if n not in full]
    lines = [
        "## Long stream: per-chunk agent compute against stream position", "",
        f"Stream: {c['stream_s'] / 60:.2f} min ({c['chunks']} chunks of {seg} ms) of the {c['split']} split's utterances "
        f"in order ({c['utterances_in_stream']} with repeats), {c['silence_s']:g} s of silence between them. Per chunk: "
        f"wall time of `SimultaneousTranslator.step`, speech output on, vocoder {c['vocoder']}; torch threads "
        f"{c['threads']}.", "",
        f"* Every chunk timed ({', '.join(systems[n]['label'] for n in full)}): value at a position = median of the "
        f"chunks within ±{c['window_chunks']} chunks of it (±{c['window_chunks'] * seg / 1000:g} s).",
    ]
    if sampled:
        lines.append(
            f"* Sampled ({', '.join(systems[n]['label'] for n in sampled)}): too slow to run chunk by chunk to the end; "
            f"at each position the prefix up to it is fed as one chunk (untimed), then {c['timed_chunks']} normal chunks "
            f"are timed (median shown), the re-encoding systems interleaved.")
    if "echostream_forced" in systems:
        lines.append(
            "* Forced write: the MT decoder's end of sentence and the unit CTC's blank are banned, so the MT decoder, "
            "T2U and vocoder keep working along the whole stream (a stress setting for cost, not for quality: the "
            "tiny models are trained on single sentences and, left alone, stop writing a few seconds into a "
            "concatenated stream; see the work columns below).")
    lines.append(f"* Ratios: against EchoStream's value at {positions[0]:g} s (same process).")
    lines += ["", "| position | " + " | ".join(f"{systems[n]['label']} (ms) | ×" for n in names) + " |",
              "|---|" + "---|---|" * len(names)]
    for p in positions:
        cells = []
        for n in names:
            row = systems[n]["at_position"].get(_key(p))
            cells.append("n/a | n/a" if row is None else f"{row['median_ms']:.1f} | {row['ratio_to_echostream_first']:.2f}")
        lines.append(f"| {p:g} s | " + " | ".join(cells) + " |")
    lines.append("")
    for name, h in r["headline"].items():
        yes = lambda ok: "yes" if ok else "NO"  # noqa: E731
        lines.append(f"**Headline ({systems[name]['label']}):** {h['last_ms']:.2f} ms per chunk at "
                     f"{h['last_position_s']:g} s vs {h['first_ms']:.2f} ms at {h['first_position_s']:g} s: ratio "
                     f"{h['ratio']:.2f}; within ±20%: {yes(h['within_20_percent'])}; at most 20% above: "
                     f"{yes(h.get('at_most_20_percent_above', h['ratio'] <= 1.2))}.")
        lines.append("")
    lines += [
        "### Computation-aware lag", "",
        "Real time simulated from the per-chunk costs: chunk k arrives at (k+1)·segment, is processed from "
        "max(arrival, previous finish); lag = finish − arrival at the chunk ending at each position. "
        "Sampled systems: per-chunk cost interpolated linearly between the measured positions (held at the first "
        "measurement before it).", "",
        "| position | " + " | ".join(f"{systems[n]['label']} lag (s)" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for p in positions:
        cells = []
        for n in names:
            row = systems[n]["at_position"].get(_key(p))
            cells.append("n/a" if row is None else _f(row.get("lag_s"), ".3f"))
        lines.append(f"| {p:g} s | " + " | ".join(cells) + " |")
    lines += [
        "", "### Where the time goes", "",
        "Mean ms per chunk by stage (exclusive wall time of the translator's calls; other = resampling, policy, "
        "state bookkeeping), and what the measured chunks produced.", "",
        "| system | position | chunks | total | " + " | ".join(STAGE_LABELS[s] for s in (*STAGES, "other"))
        + " | subwords written | units | speech (s) |",
        "|---|---|---|---|" + "---|" * (len(STAGES) + 1) + "---|---|---|",
    ]
    for n in names:
        for p in positions:
            row = systems[n]["at_position"].get(_key(p))
            if row is None:
                continue
            st = row["stages_mean_ms"]
            count = row["chunks"][1] - row["chunks"][0]
            lines.append(f"| {systems[n]['label']} | {p:g} s | {count} | {row['mean_ms']:.1f} | "
                         + " | ".join(_f(st[s]) for s in (*STAGES, "other"))
                         + f" | {row['subwords']} | {row['units']} | {row['speech_s']:.2f} |")
    lines.append("")
    for n in full:
        s = systems[n]
        lines.append(f"{s['label']}: {s['subwords_total']} subwords, {s['units_total']} units, "
                     f"{s['speech_total_s']:.2f} s of speech over the whole stream; last subword written in the chunk "
                     f"ending at {s['last_subword_at_s']:.1f} s.")
    rt = r["runtime_s"]
    lines += ["", f"Runtime: {rt['echostream_full_stream']:.0f} s for the every-chunk runs, "
                  f"{rt['reencode_sampled']:.0f} s for the sampled re-encoding systems, {rt['total']:.0f} s in all.", ""]
    return "\n".join(lines)


def render_curve(r: Dict[str, Any]) -> str:
    c = r["config"]
    lines = [
        "## Latency-quality curve", "",
        f"`simuleval` (SimulEval's CLI) on `agents/echostream_s2st_agent.py`, the first {c['utterances']} utterances of "
        f"the {c['split']} split, vocoder {c['vocoder']}, torch threads {c['threads']}. Quality: "
        f"{QUALITY_METRIC} (pocketsphinx, bigram LM from {c['lm_text']}; state: {r['asr_bleu_state']}). "
        "Latency: SimulEval's speech-output metrics (ms, non-computation-aware: SimulEval 1.1.4 records no "
        "elapsed time for speech output). Text BLEU: the agent's own text translation (normalised, sacreBLEU).", "",
        "| system | chunk (ms) | ASR-BLEU | AL | AP | DAL | StartOffset | EndOffset | ATD | text BLEU | "
        "speech (s/utt) | run (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(r["runs"], key=lambda x: (x["system"] != "echostream", x["chunk_ms"])):
        lines.append(
            f"| {r['labels'][row['system']]} | {row['chunk_ms']} | {_f(row['asr_bleu'], '.2f')} | {_f(row['AL'], '.0f')} | "
            f"{_f(row['AP'], '.3f')} | {_f(row['DAL'], '.0f')} | {_f(row['StartOffset'], '.0f')} | "
            f"{_f(row['EndOffset'], '.0f')} | {_f(row['ATD'], '.0f')} | {_f(row.get('text_bleu'), '.2f')} | "
            f"{_f(row.get('speech_s_per_utt'), '.2f')} | {row['wall_s']:.0f} |")
    ref = r.get("reference_speech")
    lines.append("")
    for row in r["runs"]:
        if row.get("error"):
            lines.append(f"* {r['labels'][row['system']]} at {row['chunk_ms']} ms: {row['error']}.")
    if ref:
        lines.append(f"ASR-BLEU of the reference target speech (the recogniser's ceiling on these utterances): "
                     f"{ref['asr_bleu']:.2f}.")
    lines += ["", f"Runtime: {r['runtime_s']:.0f} s.", ""]
    return "\n".join(lines)


def render(results: Dict[str, Any]) -> str:
    parts = ["# EchoStream agent benchmark", "", f"Machine: {results.get('machine', 'unknown')}", ""]
    if isinstance(results.get("long_stream"), dict) and "systems" in results["long_stream"]:
        parts.append(render_long_stream(results["long_stream"]))
    if isinstance(results.get("curve"), dict) and "runs" in results["curve"]:
        parts.append(render_curve(results["curve"]))
    return "\n".join(parts)


def _plot_long_stream(path: Path, r: Dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seg = r["config"]["source_segment_size_ms"] / 1000
    systems = r["systems"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    colors = {"echostream": "tab:blue", "echostream_forced": "tab:cyan", "model_reencode": "tab:orange",
              "baseline": "tab:red"}
    for name in SYSTEM_ORDER:
        if name not in systems:
            continue
        s = systems[name]
        if "trace_ms" in s:
            trace = s["trace_ms"]
            xs = [(k + 1) * seg for k in range(len(trace))]
            ax1.plot(xs, trace, ".", color=colors[name], alpha=0.15, markersize=2)
            w = r["config"]["window_chunks"]
            smooth = [statistics.median(trace[max(0, k - w):k + w + 1]) for k in range(len(trace))]
            ax1.plot(xs, smooth, "-", color=colors[name], label=f"{s['label']} (running median)")
        else:
            pts = sorted((row["first_timed_chunk_ends_s"], row["median_ms"]) for row in s["at_position"].values())
            ax1.plot([p for p, _ in pts], [m for _, m in pts], "o-", color=colors[name], label=f"{s['label']} (sampled)")
        lag = s["lag_s"]
        xs = [(k + 1) * seg for k in range(len(lag))]
        style = "--" if s.get("lag_interpolated") else "-"
        ax2.plot(xs, [max(v, 1e-4) for v in lag], style, color=colors[name], linewidth=1,
                 zorder=3 if name == "echostream" else 2, alpha=0.7 if name == "echostream_forced" else 1.0,
                 label=s["label"] + (" (interpolated cost)" if s.get("lag_interpolated") else ""))
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


def _plot_curve(path: Path, r: Dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, title in ((axes[0], "asr_bleu", "ASR-BLEU (speech output)"), (axes[1], "text_bleu", "text BLEU (agent's translation)")):
        for name, marker in (("echostream", "o-"), ("baseline", "s--")):
            rows = sorted((x for x in r["runs"] if x["system"] == name), key=lambda x: x["chunk_ms"])
            if not rows:
                continue
            xs, ys = [x["AL"] for x in rows], [x.get(key, float("nan")) for x in rows]
            ax.plot(xs, ys, marker, label=r["labels"][name])
            for x, y, row in zip(xs, ys, rows):
                ax.annotate(f"{row['chunk_ms']}", (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7)
        if key == "asr_bleu" and r.get("reference_speech"):
            ax.axhline(r["reference_speech"]["asr_bleu"], color="gray", linestyle=":", label="reference speech (ASR ceiling)")
        ax.set_xlabel("AL (ms)")
        ax.set_ylabel(title)
        ax.set_title(f"{title} vs AL; labels: chunk ms")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


# ---------------------------------------------------------------------------------------------
# CLI


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    tiny = "results/synthetic_tiny"
    p = argparse.ArgumentParser(prog="echostream-bench-agent", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--part", choices=("long-stream", "curve", "all"), default="all", help="what to measure")
    p.add_argument("--out", default="results/bench_agent", help="output folder")
    p.add_argument("--model", default=f"{tiny}/echostream_emformer_tiny/checkpoint_last.pt",
                   help="EchoStream checkpoint (Emformer: incremental, and re-encode as the same-model peer)")
    p.add_argument("--baseline-model", default=f"{tiny}/echostream_conformer_tiny/checkpoint_last.pt",
                   help="re-encoding baseline checkpoint (run with reencode=True)")
    p.add_argument("--data", default=f"{tiny}/corpus", help="corpus folder (echostream-prep output)")
    p.add_argument("--split", default="test", help="split under DATA/simuleval/")
    p.add_argument("--vocoder", default=None, help="vocoder checkpoint (default: DATA/units/kmeans.pt for Griffin-Lim)")
    p.add_argument("--vocoder-type", choices=("griffin_lim", "code_hifigan"), default="griffin_lim")
    p.add_argument("--vocoder-cfg", default=None, help="CodeHiFiGAN config.json")
    p.add_argument("--no-dur-prediction", action="store_true", help="do not pass --dur-prediction to the agent")
    p.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads")
    g = p.add_argument_group("long-stream")
    g.add_argument("--minutes", type=_positive_float, default=5.0, help="stream length")
    g.add_argument("--source-segment-size", type=int, default=320, help="chunk size (ms)")
    g.add_argument("--silence", type=float, default=0.3, help="seconds of silence between utterances")
    g.add_argument("--positions", type=_positive_float, nargs="+", default=[5, 30, 60, 120, 180, 300],
                   help="stream positions (s) for the table and the sampled re-encoding systems")
    g.add_argument("--window", type=int, default=10, help="EchoStream: chunks either side of a position in its median")
    g.add_argument("--timed-chunks", type=int, default=3, help="re-encoding systems: chunks timed at each position")
    g.add_argument("--no-forced-write", dest="forced_write", action="store_false",
                   help="leave out the forced-write EchoStream run")
    g.add_argument("--no-baseline", action="store_true", help="long-stream: leave out --baseline-model")
    g = p.add_argument_group("curve")
    g.add_argument("--chunk-sizes", type=int, nargs="+", default=[160, 320, 640, 1000, 2000], help="ms")
    g.add_argument("--num-utterances", type=int, default=40, help="first N utterances of the split")
    g.add_argument("--lm-text", default=None,
                   help="English sentences for the ASR LM: a text file, or a TSV with a tgt_text column "
                        "(default: DATA/text/train.tsv)")
    g.add_argument("--simuleval", default=str(Path(sys.executable).parent / "simuleval"), help="SimulEval's CLI")
    g.add_argument("--agent", default=str(REPO / "agents" / "echostream_s2st_agent.py"), help="SimulEval agent file")
    return p


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the selected parts, print their tables, write bench_agent.{md,json} and the plots."""
    from echostream_fairseq.cli.bench import _machine

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    for name in ("fairseq", "echostream_fairseq", "echostream.asr_bleu"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.threads < 1:
        raise BenchError("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    if args.source_segment_size < 40 or any(c < 40 for c in args.chunk_sizes):
        raise BenchError("chunk sizes must be at least 40 ms (one encoder frame)")
    if args.window < 0 or args.timed_chunks < 1 or args.num_utterances < 1:
        raise BenchError("--window must be >= 0, --timed-chunks and --num-utterances >= 1")
    args.positions = sorted(set(args.positions))
    if args.lm_text is None:
        args.lm_text = str(Path(args.data) / "text" / "train.tsv")
    parts = ("long-stream", "curve") if args.part == "all" else (args.part,)
    _check_inputs(args, need_baseline="curve" in parts or not args.no_baseline)
    if "curve" in parts:
        _check_file(args.lm_text, "ASR LM text", "--lm-text")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "bench_agent.json"
    results: Dict[str, Any] = {}
    if json_path.is_file():  # keep the other part's earlier results
        try:
            results = json.loads(json_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            results = {}
    machine = _machine()
    results["machine"] = machine
    print(f"Machine: {machine}", flush=True)
    if "long-stream" in parts:
        results["long_stream"] = long_stream(args)
        print()
        print(render_long_stream(results["long_stream"]), flush=True)
        _plot_long_stream(out / "bench_agent_long_stream.png", results["long_stream"])
    if "curve" in parts:
        results["curve"] = curve(args)
        print()
        print(render_curve(results["curve"]), flush=True)
        _plot_curve(out / "bench_agent_curve.png", results["curve"])
    results = _json_safe(results)
    _write_atomic(json_path, json.dumps(results))
    _write_atomic(out / "bench_agent.md", render(results))
    print(f"wrote {out / 'bench_agent.md'} and {json_path} (plots: bench_agent_long_stream.png, bench_agent_curve.png)")
    return results


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    warnings.filterwarnings("ignore")
    try:
        run(args)
    except BenchError as e:
        print(f"echostream-bench-agent: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
