"""``echostream-bench-system``: the whole speech-to-speech translator of one stream, per stage, per dtype.

::

    echostream-bench-system --data results/synthetic/corpus [--model CKPT --vocoder G --vocoder-cfg CFG]
                            [--model-dtypes fp32 bf16 int8] [--runtimes torch onnx] [--sizes tiny full]
                            [--out results/bench_system]

Systems: ``tiny`` (``--model``, default ``echostream_emformer_tiny`` with random weights, and
``--vocoder``, default the corpus's Griffin-Lim fallback) and ``full`` (``echostream_emformer`` with
StreamSpeech's sizes and the full-size CodeHiFiGAN, random weights, seed 0). One stream reads the
split's utterances back to back; random weights are forced to write on every chunk (the heaviest
case: the MT decoder, T2U, unit decoder and vocoder all work on every chunk). Every dtype's copy of
a system is stepped on the same chunk, in turn, so all of them meet the same machine. After
``--warmup`` chunks, ``--chunks`` are timed: the whole step and its stages (fbank + encoder + CTC,
MT decoder, T2U + units, vocoder). Real-time factor = median step / chunk duration. Under bf16
the CodeHiFiGAN runs in bf16 too; under int8 it stays fp32. With ``--runtimes onnx``, each fp32 and
int8 system is also run with the stages of ``--graph-stages`` (default all: the encoder stage, the
MT decoder, T2U and the unit decoder, a CodeHiFiGAN vocoder) on its exported graphs under
onnxruntime (the rows ``fp32, onnx`` and ``int8, onnx``), the others as the dtype runs them in torch.
Writes ``bench_system.md`` and ``bench_system.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from echostream_bench.batch import BenchError, _sources, _translator, random_full_size_vocoder, tiny_system
from echostream_bench.common import write_report
from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.common.cpu import cpu_capabilities, machine_header
from echostream_fairseq.modules.precision import DTYPES, convert_precision
from echostream_fairseq.streaming.options import GRAPH_STAGES, RUNTIMES
from echostream_fairseq.streaming.translator import STAGES

logger = logging.getLogger(__name__)


def _systems(args) -> Dict[str, Dict[str, object]]:
    """size -> row -> translator (each row its own copy of the model; bf16 a bf16 copy of a
    CodeHiFiGAN); rows are the dtypes, then ``DTYPE, onnx`` for the graph runtime."""
    from echostream_bench.onnx_graphs import system_graphs, vocoder_on_graph
    from echostream_fairseq.checkpoint import build_random_echostream_model

    systems: Dict[str, Dict[str, object]] = {}
    for size in args.sizes:
        if size == "tiny":
            model, task, vocoder, _ = tiny_system(args)
            trained = bool(args.model)
        else:
            model, task = build_random_echostream_model("echostream_emformer", args.data)
            vocoder = random_full_size_vocoder(Path(args.data) / "units" / "kmeans.pt")
            trained = False
        runnable = [d for d in args.model_dtypes if cpu_capabilities().dtype_refusal(d) is None]
        rows = {}
        for runtime in args.runtimes:
            for dtype in runnable:
                if runtime == "onnx" and dtype == "bf16":
                    continue  # the graphs are fp32 and int8
                fp32 = copy.deepcopy(model).eval()
                graphs = system_graphs(fp32, task, dtype, args.graph_stages) if runtime == "onnx" else None
                voice = _vocoder_in(vocoder, dtype)
                rows[dtype if runtime == "torch" else f"{dtype}, onnx"] = _translator(
                    convert_precision(fp32, dtype),
                    task,
                    vocoder_on_graph(voice) if runtime == "onnx" and "vocoder" in args.graph_stages else voice,
                    args.chunk_ms,
                    trained,
                    graphs=graphs,
                )
        systems[size] = rows
    return systems


def unavailable_dtypes(dtypes: List[str]) -> Dict[str, str]:
    """The dtypes of ``dtypes`` this CPU cannot run: dtype -> why (their rows say so)."""
    return {d: why for d in dtypes if (why := cpu_capabilities().dtype_refusal(d)) is not None}


def _vocoder_in(vocoder, dtype: str):
    """The vocoder as ``--model-dtype`` runs it: a bf16 copy of a CodeHiFiGAN where
    ``CodeHiFiGANUnitVocoder.dtype_for`` says bf16, else the vocoder as it is."""
    from echostream_fairseq.vocoder import CodeHiFiGANUnitVocoder
    from echostream_fairseq.vocoder.incremental import IncrementalVocoder

    if (
        not isinstance(vocoder.vocoder, CodeHiFiGANUnitVocoder)
        or CodeHiFiGANUnitVocoder.dtype_for(dtype) == torch.float32
    ):
        return vocoder
    bf16 = copy.deepcopy(vocoder.vocoder).for_model_dtype(dtype)
    bf16.onednn = True  # its own warm-up times the paths again (bf16 without oneDNN is ten times slower here)
    incremental = IncrementalVocoder(
        bf16, vocoder.left_context, vocoder.crossfade, vocoder.dur_prediction, vocoder.duration_context
    )
    incremental.warm_up()
    return incremental


def _run(translators: Dict[str, object], sources: List[torch.Tensor], warmup: int, chunks: int) -> Dict[str, Dict]:
    """Step one stream per dtype over the same audio, the dtypes in turn on every chunk."""
    from echostream_fairseq.streaming.api import EchoStream

    first = next(iter(translators.values()))
    chunk = first.config.source_segment_size * SAMPLE_RATE // 1000
    need = (warmup + chunks) * chunk
    pieces, length, j = [], 0, 0
    while length < need:
        pieces += [sources[j % len(sources)], torch.zeros(SAMPLE_RATE // 2)]
        length += pieces[-2].numel() + pieces[-1].numel()
        j += 1
    audio = torch.cat(pieces)[:need]
    streams = {dtype: EchoStream(t).open() for dtype, t in translators.items()}
    totals: Dict[str, List[float]] = {d: [] for d in translators}
    stages: Dict[str, Dict[str, List[float]]] = {d: {s: [] for s in STAGES} for d in translators}
    speech = {d: 0 for d in translators}
    for i in range(warmup + chunks):
        piece = audio[i * chunk : (i + 1) * chunk]
        for dtype, stream in streams.items():
            stream.push(piece)
            started = time.perf_counter()
            events = stream.system.step([stream]).get(stream, [])
            elapsed = time.perf_counter() - started
            if i < warmup:
                continue
            totals[dtype].append(elapsed * 1e3)
            for stage in STAGES:
                stages[dtype][stage].append(stream.last_step_seconds.get(stage, 0.0) * 1e3)
            speech[dtype] += sum(e.audio.size for e in events if e.kind == "target_speech")
    for stream in streams.values():
        stream.close()
    chunk_ms = chunk * 1000 / SAMPLE_RATE
    rate = first.vocoder.vocoder.sample_rate
    return {
        dtype: {
            "median_ms": statistics.median(totals[dtype]),
            "mean_ms": statistics.mean(totals[dtype]),
            "p95_ms": sorted(totals[dtype])[int(round(0.95 * (len(totals[dtype]) - 1)))],
            "real_time_factor": statistics.median(totals[dtype]) / chunk_ms,
            "stage_ms": {s: statistics.mean(stages[dtype][s]) for s in STAGES},
            "speech_seconds_per_source_second": speech[dtype] / rate / (chunks * chunk_ms / 1000),
        }
        for dtype in translators
    }


def render(
    machine: str,
    results: Dict[str, Dict[str, Dict]],
    chunk_ms: int,
    chunks: int,
    unavailable: Optional[Dict[str, str]] = None,
) -> str:
    lines = [
        f"Machine: {machine}",
        "",
        f"One stream, {chunk_ms} ms chunks, speech output, {chunks} timed chunks; stage columns are means, "
        "the step column the median.",
        "",
        "| system | dtype, runtime | step (ms) | p95 (ms) | real-time factor | / fp32 | "
        + " | ".join(f"{s} (ms)" for s in STAGES)
        + " | speech s per source s |",
        "|---|---|---|---|---|---|" + "---|" * len(STAGES) + "---|",
    ]
    for size, rows in results.items():
        base = rows.get("fp32", next(iter(rows.values())))["median_ms"]
        for dtype, r in rows.items():
            lines.append(
                f"| {size} | {dtype} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r['real_time_factor']:.3f} | "
                f"{r['median_ms'] / base:.2f}x | "
                + " | ".join(f"{r['stage_ms'][s]:.1f}" for s in STAGES)
                + f" | {r['speech_seconds_per_source_second']:.2f} |"
            )
        for dtype, why in (unavailable or {}).items():
            lines.append(f"| {size} | {dtype} | not on this CPU: {why} |" + " |" * (4 + len(STAGES)))
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echostream-bench-system", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="results/synthetic/corpus", help="corpus folder (dictionaries, test audio)")
    p.add_argument("--split", default="test")
    p.add_argument("--model", default=None, help="tiny checkpoint (default: random echostream_emformer_tiny)")
    p.add_argument("--vocoder", default=None, help="tiny CodeHiFiGAN generator (default: Griffin-Lim)")
    p.add_argument("--vocoder-cfg", default=None)
    p.add_argument("--sizes", nargs="+", choices=("tiny", "full"), default=["tiny", "full"])
    p.add_argument("--model-dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    p.add_argument(
        "--runtimes",
        nargs="+",
        choices=RUNTIMES,
        default=list(RUNTIMES),
        help="what runs the encoder stage, the MT decoder and the units' stage (onnx: their exported graphs "
        "under onnxruntime, fp32 and int8)",
    )
    p.add_argument(
        "--graph-stages",
        nargs="+",
        choices=GRAPH_STAGES,
        default=list(GRAPH_STAGES),
        help="the stages the onnx rows put on their graphs (as the translators' flag)",
    )
    p.add_argument("--chunk-ms", type=int, default=320)
    p.add_argument("--warmup", type=int, default=12, help="chunks before timing (the attention windows fill)")
    p.add_argument("--chunks", type=int, default=40, help="timed chunks")
    p.add_argument("--utterances", type=int, default=20, help="source utterances to read")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="results/bench_system")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.chunks < 1 or args.warmup < 0:
            raise BenchError("--chunks must be >= 1 and --warmup >= 0")
        unavailable = unavailable_dtypes(args.model_dtypes)
        if len(unavailable) == len(set(args.model_dtypes)):
            raise BenchError("this CPU runs none of --model-dtypes: " + "; ".join(unavailable.values()))
        sources = _sources(Path(args.data), args.split, args.utterances)
        machine = machine_header()
        print(f"Machine: {machine}", flush=True)
        results = {}
        with torch.inference_mode():
            for size, translators in _systems(args).items():
                print(f"{size}: {', '.join(translators)} ...", flush=True)
                results[size] = _run(translators, sources, args.warmup, args.chunks)
    except BenchError as e:
        print(f"echostream-bench-system: {e}", file=sys.stderr)
        return 2
    table = render(machine, results, args.chunk_ms, args.chunks, unavailable)
    if "onnx" in args.runtimes:
        table += f"\n`onnx` rows: on their graphs: {', '.join(args.graph_stages)}; the other stages in torch.\n"
    print(table)
    write_report(
        Path(args.out),
        "bench_system",
        {
            "machine": machine,
            "chunk_ms": args.chunk_ms,
            "results": results,
            "unavailable": unavailable,
            "graph_stages": args.graph_stages,
        },
        table,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
