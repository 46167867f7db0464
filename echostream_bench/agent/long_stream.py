"""The long-stream experiment: per-chunk compute and computation-aware lag along a long stream, for
the incremental agent (every chunk) and the re-encoding systems (sampled positions)."""

from __future__ import annotations

import logging
import math
import statistics
import time
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np
import torch

from echostream_bench.agent.inputs import (
    BenchError,
    build_stream,
    load_translator,
    read_lines,
    split_files,
    vocoder_path,
)
from echostream_bench.agent.stats import mean
from echostream_bench.agent.timing import STAGES, Timed, simulate_lag, warm_up
from echostream_fairseq.common.audio import SAMPLE_RATE

__all__ = ["SYSTEM_ORDER", "position_key", "long_stream"]

SYSTEM_ORDER = ("echostream", "echostream_forced", "model_reencode", "baseline")


def _encoder_name(translator) -> str:
    return str(getattr(translator.model.encoder, "encoder_type", "model")).capitalize()


def position_key(p: float) -> str:
    return f"{p:g}"


def _window(k: int, n: int, w: int) -> Tuple[int, int]:
    return max(0, k - w), min(n, k + w + 1)


def _summarise_window(sys_: Timed, lo: int, hi: int) -> Dict[str, Any]:
    ms = [t * 1e3 for t in sys_.chunk_s[lo:hi]]
    stages = {s: mean(sys_.stages[s][lo:hi]) * 1e3 for s in STAGES}
    stages["other"] = mean(ms) - sum(stages[s] for s in STAGES)
    return {
        "median_ms": statistics.median(ms),
        "mean_ms": mean(ms),
        "chunks": [lo, hi],
        "stages_mean_ms": stages,
        "subwords": sum(sys_.subwords[lo:hi]),
        "units": sum(sys_.units[lo:hi]),
        "speech_s": sum(sys_.audio[lo:hi]) / SAMPLE_RATE,
    }


def long_stream(args) -> Dict[str, Any]:
    """The long-stream part (see :mod:`echostream_bench.agent`)."""
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    source, _ = split_files(data, args.split)
    chunk_ms = args.source_segment_size
    segment = chunk_ms * SAMPLE_RATE // 1000
    segment_s = segment / SAMPLE_RATE
    n = math.ceil(args.minutes * 60.0 / segment_s - 1e-9)  # chunks covering --minutes
    stream, used = build_stream(read_lines(source), n * segment_s, args.silence)
    n = stream.numel() // segment
    if n < args.timed_chunks + 1:
        raise BenchError(f"--minutes {args.minutes:g} gives fewer than {args.timed_chunks + 1} chunks of {chunk_ms} ms")
    positions = [p for p in args.positions if p <= n * segment_s + 1e-9]
    dropped = [p for p in args.positions if p not in positions]
    if dropped:
        logging.warning("positions beyond the %.1f s stream left out: %s", n * segment_s, dropped)
    if not positions:
        raise BenchError(f"no --positions within the {n * segment_s:.1f} s stream")
    started = time.perf_counter()

    print(f"loading {args.model} (incremental{', forced-write copy' if args.forced_write else ''}) ...", flush=True)
    translator = load_translator(args, args.model, False, chunk_ms)
    full: Dict[str, Timed] = {"echostream": Timed(translator)}
    if args.forced_write:  # the same model, the end of sentence and the unit blank banned
        full["echostream_forced"] = Timed(translator.with_config(force_writing=True))
    for s in full.values():
        warm_up(s.translator, stream, segment)
    names = list(full)
    for k in tqdm(range(n), desc=f"EchoStream, {n} chunks", unit="chunk", dynamic_ncols=True):
        chunk = stream[k * segment : (k + 1) * segment]
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
            at[position_key(p)] = _summarise_window(s, lo, hi)
        lag = simulate_lag(s.chunk_s, segment_s)
        for p in positions:
            k = min(n - 1, max(0, int(round(p / segment_s)) - 1))
            at[position_key(p)]["lag_s"] = lag[k]
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
        loaded[name] = load_translator(args, path, True, chunk_ms)
        warm_up(loaded[name], stream, segment)
    records: Dict[str, Dict[str, Any]] = {name: {} for name in peers}
    for p in tqdm(positions, desc="re-encoding systems, sampled positions", unit="position", dynamic_ncols=True):
        start = min(max(1, int(round(p / segment_s))), n - args.timed_chunks)
        runners = {}
        for name, tr in loaded.items():
            r = Timed(tr)
            t0 = time.perf_counter()
            r.step(stream[: start * segment], record=False)  # the prefix as one chunk, untimed
            runners[name] = (r, time.perf_counter() - t0)
        for j in range(args.timed_chunks):
            k = start + j
            chunk = stream[k * segment : (k + 1) * segment]
            order = list(runners) if j % 2 == 0 else list(runners)[::-1]
            for name in order:
                runners[name][0].step(chunk)
        for name, (r, prefix_s) in runners.items():
            summary = _summarise_window(r, 0, args.timed_chunks)
            summary.update(
                {
                    "chunk_ms": [t * 1e3 for t in r.chunk_s],
                    "prefix_step_s": prefix_s,
                    "first_timed_chunk_ends_s": (start + 1) * segment_s,
                    "subwords_before": len(r.state.target_tokens) - summary["subwords"],
                }
            )
            records[name][position_key(p)] = summary
        del runners
    sampled_s = time.perf_counter() - sampled_started
    ends = [(k + 1) * segment_s for k in range(n)]
    for name, tr in loaded.items():
        xs = [records[name][position_key(p)]["first_timed_chunk_ends_s"] for p in positions]
        ys = [records[name][position_key(p)]["median_ms"] / 1e3 for p in positions]
        cost = np.interp(ends, xs, ys).tolist()  # linear between measurements, held outside them
        lag = simulate_lag(cost, segment_s)
        for p in positions:
            k = min(n - 1, max(0, int(round(p / segment_s)) - 1))
            records[name][position_key(p)]["lag_s"] = lag[k]
        systems[name] = {
            "label": f"{_encoder_name(tr)}, re-encode" + (" (StreamSpeech's agent)" if name == "baseline" else ""),
            "model": peers[name],
            "measured": f"sampled: prefix as one untimed chunk, then {args.timed_chunks} timed chunks",
            "at_position": records[name],
            "lag_s": lag,
            "lag_interpolated": True,
        }

    first, last = position_key(positions[0]), position_key(positions[-1])
    ref = systems["echostream"]["at_position"][first]["median_ms"]
    for name, s in systems.items():
        for row in s["at_position"].values():
            row["ratio_to_echostream_first"] = row["median_ms"] / ref
    headline = {}
    for name in ("echostream", "echostream_forced"):
        if name in systems:
            a = systems[name]["at_position"][first]["median_ms"]
            b = systems[name]["at_position"][last]["median_ms"]
            headline[name] = {
                "first_position_s": positions[0],
                "last_position_s": positions[-1],
                "first_ms": a,
                "last_ms": b,
                "ratio": b / a,
                "within_20_percent": abs(b / a - 1.0) <= 0.2,
                "at_most_20_percent_above": b / a <= 1.2,
            }
    return {
        "config": {
            "minutes": args.minutes,
            "stream_s": n * segment_s,
            "chunks": n,
            "source_segment_size_ms": chunk_ms,
            "silence_s": args.silence,
            "utterances_in_stream": used,
            "split": args.split,
            "data": str(args.data),
            "positions_s": positions,
            "window_chunks": args.window,
            "timed_chunks": args.timed_chunks,
            "vocoder": f"{args.vocoder_type} ({vocoder_path(args)})",
            "threads": args.threads,
        },
        "systems": systems,
        "headline": headline,
        "runtime_s": {
            "echostream_full_stream": echostream_s,
            "reencode_sampled": sampled_s,
            "total": time.perf_counter() - started,
        },
    }
