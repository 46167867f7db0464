"""``echostream-bench``: per-chunk encoder cost against stream position, and memory over a long stream.

Three encoders with the same size (StreamSpeech's: 12 layers, d=256, FFN 2048, 4 heads, 320 ms
chunks = 8 frames after 4x subsampling, left context 32, memory 4):

* ours: :class:`~echostream_fairseq.modules.emformer.Emformer` streaming step, fp32, bf16 and
  int8 in torch, and its fixed-shape step exported to ONNX under onnxruntime, fp32 and int8;
* torchaudio: ``torchaudio.models.Emformer.infer`` with the same weights (fp32);
* baseline: the chunk Conformer re-encoding the whole prefix at every chunk, as StreamSpeech does.

The Emformer steps of ours and torchaudio's are interleaved, one after the other, over the same
stream in one process with the same thread count; ratios are taken between medians of that run.
Memory: peak resident set size while streaming synthetic fbank through our whole encoder
(subsampler + Emformer) for ``--memory-minutes`` minutes.

Writes ``bench.md`` (tables), ``bench.json`` and ``bench.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from echostream_bench.common import compile_step, write_report
from echostream_bench.floor import (
    matmul_floor_ms,
    memory_bandwidth_gbs,
    op_profile,
    record_linear_calls,
    weight_bytes,
)
from echostream_fairseq.common.audio import ENCODER_FRAME_MS
from echostream_fairseq.common.cpu import cpu_capabilities, machine_header

SECONDS_PER_FRAME = ENCODER_FRAME_MS / 1000  # one encoder frame after 4x subsampling of 10 ms fbank


def _median_ms(values: List[float]) -> float:
    return statistics.median(values) * 1e3


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _variants(ta, args) -> Tuple[Dict[str, Tuple[Callable, str]], Dict[str, str]]:
    """The Emformer steps to time: name -> (step(chunk, lengths, state), the dtype of its floor),
    and the steps this CPU cannot run: name -> why.

    Each of ours is its own copy of torchaudio's weights, so no variant finds another's in cache.
    """
    from echostream_fairseq.modules.emformer import from_torchaudio
    from echostream_fairseq.modules.packed_linear import linear_backend, set_linear_backend
    from echostream_fairseq.modules.precision import convert_precision

    def ours(dtype: str, backend: Optional[str] = None, compiled: bool = False) -> Callable:
        model = convert_precision(from_torchaudio(ta).eval(), dtype)
        low = torch.bfloat16 if dtype == "bf16" else torch.float32
        infer = model.infer
        if compiled:
            infer = steady_state_compiled(model)

        def step(chunk, lengths, state):
            before = linear_backend()
            if backend:
                set_linear_backend(backend)
            try:
                return infer(chunk.to(low), lengths, state)
            finally:
                set_linear_backend(before)

        step.model = model
        return step

    variants = {
        "torchaudio fp32": (ta.infer, "fp32"),
        "ours fp32": (ours("fp32"), "fp32"),
        "ours fp32, oneDNN packed": (ours("fp32", "onednn"), "fp32"),
        "ours fp32, F.linear": (ours("fp32", "aten"), "fp32"),
        "ours bf16": (ours("bf16"), "bf16"),
    }
    unavailable = {}
    refusal = cpu_capabilities().dtype_refusal("int8")
    if refusal is None:
        variants["ours int8"] = (ours("int8"), "int8")
    else:
        unavailable["ours int8"] = refusal
    if args.compile:
        variants["ours fp32, compiled"] = (ours("fp32", "aten", compiled=True), "fp32")
    if args.onnx:
        from echostream_bench.onnx_graphs import onnx_emformer_step

        variants["ours fp32, onnxruntime"] = (onnx_emformer_step(from_torchaudio(ta), "fp32"), "fp32")
        variants["ours int8, onnxruntime"] = (onnx_emformer_step(from_torchaudio(ta), "int8"), "int8")
    return variants, unavailable


def steady_state_compiled(model) -> Callable:
    """``model.infer`` through ``torch.compile`` once the state has reached its fixed size.

    The first chunks of a stream grow the cache (each a new shape); they run eagerly, so the
    graph is compiled once, for the shape every later chunk has.
    """
    compiled = compile_step(model.infer)

    def infer(chunk, lengths, state):
        full = (
            state is not None
            and state.num_left == model.left_context_length
            and (state.num_memory == model.max_memory_size)
        )
        return (compiled if full else model.infer)(chunk, lengths, state)

    return infer


def emformer_stream(args, right_context: int, positions: List[float]) -> Dict:
    """Stream up to the largest position through torchaudio's Emformer and every variant of ours,
    interleaved; then the floor of the same step and a profile of ours."""
    import torchaudio

    torch.manual_seed(0)
    S, R = args.chunk_length, right_context
    ta = torchaudio.models.Emformer(
        args.dim,
        args.heads,
        args.ffn_dim,
        args.layers,
        S,
        left_context_length=args.left_context_length,
        right_context_length=R,
        max_memory_size=args.max_memory_size,
    ).eval()
    variants, unavailable = _variants(ta, args)
    segment_seconds = S * SECONDS_PER_FRAME
    num_steps = int(round(max(positions) / segment_seconds))
    frames = torch.randn(1, num_steps * S + R, args.dim)
    lengths = torch.tensor([S + R])
    times: Dict[str, List[float]] = {name: [] for name in variants}
    states: Dict[str, object] = {name: None for name in variants}
    err = {name: [0.0, 0.0] for name in variants}
    with torch.inference_mode():
        for i in range(num_steps):
            chunk = frames[:, i * S : i * S + S + R]
            reference = None
            for name, (step, _) in variants.items():
                t0 = time.perf_counter()
                out, _, states[name] = step(chunk, lengths, states[name])
                times[name].append(time.perf_counter() - t0)
                out = out.float()
                if reference is None:
                    reference = out  # torchaudio's
                err[name][0] += float((out - reference).pow(2).sum())
                err[name][1] += float(reference.pow(2).sum())
    warmup = min(10, num_steps // 10)
    overall = {k: _median_ms(v[warmup:]) for k, v in times.items()}
    at_position = {}
    for p in positions:
        i = min(num_steps - 1, max(0, int(round(p / segment_seconds)) - 1))
        window = slice(max(warmup, i - 5), max(warmup, i - 5) + 11)
        at_position[p] = {k: _median_ms(v[window]) for k, v in times.items()}

    # the floor: the products of one steady-state step of ours, alone, per dtype
    default = variants["ours fp32"][0]
    chunk = frames[:, : S + R]
    steady = states["ours fp32"]
    calls = record_linear_calls(default.model, lambda: default(chunk, lengths, steady))
    floor = matmul_floor_ms(calls, onnx=args.onnx)
    bytes_by_dtype = {d: weight_bytes(calls, d) for d in floor}
    profile = op_profile(lambda: default(chunk, lengths, steady))
    ta_ms = overall["torchaudio fp32"]
    rows = {
        name: {
            "median_ms": overall[name],
            "vs_torchaudio": overall[name] / ta_ms,
            "vs_floor": overall[name] / floor[dtype]["floor"],
            "floor_dtype": dtype,
            "relative_l2_vs_torchaudio": (err[name][0] / max(err[name][1], 1e-30)) ** 0.5,
        }
        for name, (_, dtype) in variants.items()
    }
    return {
        "right_context_length": R,
        "segment_seconds": segment_seconds,
        "steps": num_steps,
        "variants": rows,
        "unavailable": unavailable,
        "floor_ms": floor,
        "products_per_step": len(calls),
        "rows_per_product": sorted({c.rows for c in calls}),
        "weight_bytes": bytes_by_dtype,
        "profile": profile,
        "at_position_ms": at_position,
        "trace_ms": {k: [t * 1e3 for t in v] for k, v in times.items()},
    }


def conformer_reencode(args, positions: List[float]) -> Dict[float, float]:
    """Time one baseline chunk step (re-encode the prefix) at each stream position."""
    from echostream_fairseq.modules.conformer import ChunkConformer, ConformerState

    torch.manual_seed(0)
    model = ChunkConformer(args.dim, args.heads, args.ffn_dim, args.layers, args.chunk_length).eval()
    S = args.chunk_length
    out = {}
    with torch.inference_mode():
        for p in positions:
            frames = int(round(p / SECONDS_PER_FRAME))
            prefix = torch.randn(1, frames - S, args.dim)
            state = ConformerState(prefix)
            segment = torch.randn(1, S, args.dim)
            model.step(segment, None, state)  # warm-up (allocations)
            repeats = 5 if frames <= 1500 else 1
            out[p] = statistics.median(_time(lambda: model.step(segment, None, state)) for _ in range(repeats)) * 1e3
    return out


def memory_over_stream(args, minutes: float) -> Dict:
    """Peak RSS while streaming synthetic fbank through our whole encoder for ``minutes``."""
    import psutil

    from echostream_fairseq.models.speech_encoder import EchoStreamSpeechEncoder

    torch.manual_seed(0)
    enc_args = argparse.Namespace(
        encoder_type="emformer",
        encoder_layers=args.layers,
        encoder_embed_dim=args.dim,
        encoder_ffn_embed_dim=args.ffn_dim,
        encoder_attention_heads=args.heads,
        chunk_length=args.chunk_length,
        left_context_length=args.left_context_length,
        right_context_length=0,
        max_memory_size=args.max_memory_size,
    )
    encoder = EchoStreamSpeechEncoder(enc_args).eval()
    process = psutil.Process()
    chunk_frames = args.chunk_length * 4  # fbank frames per chunk (10 ms each)
    chunk_seconds = chunk_frames * 0.01
    num_chunks = int(round(minutes * 60 / chunk_seconds))
    state = encoder.initial_state()
    seconds, rss = [], []
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for i in range(num_chunks):
            features = torch.randn(1, chunk_frames, encoder.input_dim, generator=generator)
            _, state = encoder.step(features, state)
            seconds.append((i + 1) * chunk_seconds)
            rss.append(process.memory_info().rss / 2**20)
    after_first_minute = [r for s, r in zip(seconds, rss) if s >= 60.0] or rss
    return {
        "minutes": minutes,
        "rss_at_1min_mib": after_first_minute[0],
        "peak_rss_after_1min_mib": max(after_first_minute),
        "growth_after_1min_mib": max(after_first_minute) - after_first_minute[0],
        "seconds": seconds,
        "rss_mib": rss,
    }


def _plot(path: Path, streams: List[Dict], conformer: Dict[float, float], memory: Dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in streams:
        R = run["right_context_length"]
        for name, style in (("torchaudio fp32", ":"), ("ours fp32", "-"), ("ours bf16", "--"), ("ours int8", "-.")):
            if name not in run["trace_ms"]:  # a dtype this CPU cannot run
                continue
            trace = run["trace_ms"][name]
            xs = [(i + 1) * run["segment_seconds"] for i in range(len(trace))]
            # running median over 25 steps so the lines are readable
            smooth = [statistics.median(trace[max(0, i - 25) : i + 1]) for i in range(len(trace))]
            ax1.plot(xs, smooth, style, label=f"{name} R={R}")
    if conformer:
        ax1.plot(list(conformer), list(conformer.values()), "o-k", label="Conformer re-encode")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("stream position (s)")
    ax1.set_ylabel("per-chunk step time (ms)")
    ax1.set_title("Encoder cost per 320 ms chunk")
    ax1.legend(fontsize=7)
    ax2.plot([s / 60 for s in memory["seconds"]], memory["rss_mib"])
    ax2.axvline(1.0, color="gray", linestyle=":")
    ax2.set_xlabel("stream position (min)")
    ax2.set_ylabel("resident memory (MiB)")
    ax2.set_title("Our encoder, streaming")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(
    machine: str,
    bandwidth: float,
    streams: List[Dict],
    conformer: Dict[float, float],
    memory: Dict,
    positions: List[float],
) -> str:
    lines = [f"Machine: {machine}; memory read bandwidth {bandwidth:.1f} GB/s", ""]
    for r in streams:
        lines.append(
            f"Emformer step, right context {r['right_context_length']} ({r['steps']} steps of one stream, "
            "every variant's step interleaved; medians):"
        )
        lines.append("")
        lines.append("| step | median (ms) | / torchaudio fp32 | / matmul floor (its dtype) | rel. L2 vs torchaudio |")
        lines.append("|---|---|---|---|---|")
        for name, v in r["variants"].items():
            lines.append(
                f"| {name} | {v['median_ms']:.2f} | {v['vs_torchaudio']:.2f}x | "
                f"{v['vs_floor']:.2f}x ({v['floor_dtype']}) | {v['relative_l2_vs_torchaudio'] * 100:.2f}% |"
            )
        for name, why in r.get("unavailable", {}).items():
            lines.append(f"| {name} | not on this CPU: {why} | | | |")
        lines.append("")
    r = streams[0]
    lines.append(
        f"Matmul floor: the {r['products_per_step']} products of one step (rows {r['rows_per_product']}), "
        "same weights, alone, back to back; the fastest kernel is the floor. Bandwidth floor: the "
        "weights read once at the measured bandwidth."
    )
    lines.append("")
    lines.append("| dtype | weights (MiB) | kernels (ms) | floor (ms) | bandwidth floor (ms) |")
    lines.append("|---|---|---|---|---|")
    for dtype, kernels in r["floor_ms"].items():
        nbytes = r["weight_bytes"][dtype]
        each = ", ".join(f"{k} {v:.2f}" for k, v in kernels.items() if k != "floor") or "none on this CPU"
        lines.append(
            f"| {dtype} | {nbytes / 2**20:.1f} | {each} | {kernels['floor']:.2f} | "
            f"{nbytes / 2**30 / bandwidth * 1e3:.2f} |"
        )
    lines.append("")
    lines.append(
        f"Where the time of `ours fp32` goes (right context {r['right_context_length']}, torch.profiler, "
        "self time per step):"
    )
    lines.append("")
    lines.append("| operator | ms per step | share | calls per step |")
    lines.append("|---|---|---|---|")
    for e in r["profile"]:
        lines.append(f"| `{e['op']}` | {e['ms_per_step']:.3f} | {e['share'] * 100:.1f}% | {e['calls_per_step']:.0f} |")
    lines.append("")
    lines.append(
        "| stream position | ours fp32 (ms) | ours bf16 (ms) | torchaudio (ms) | Conformer re-encode (ms) | "
        "ours / torchaudio | ours / Conformer |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for p in positions:
        a = r["at_position_ms"][p]
        c = conformer.get(p, float("nan"))
        ours, ta = a["ours fp32"], a["torchaudio fp32"]
        lines.append(
            f"| {p:g} s | {ours:.2f} | {a['ours bf16']:.2f} | {ta:.2f} | {c:.1f} | {ours / ta:.2f}x | {ours / c:.4f}x |"
        )
    lines.append("")
    lines.append(
        f"Per-position rows: right context {r['right_context_length']}, median of the 11 steps around the position."
    )
    lines.append("")
    lines.append(
        f"Memory over a {memory['minutes']:g}-minute stream through our encoder (subsampler + Emformer): "
        f"{memory['rss_at_1min_mib']:.1f} MiB resident at 1 min, "
        f"peak {memory['peak_rss_after_1min_mib']:.1f} MiB after it, "
        f"growth {memory['growth_after_1min_mib']:.2f} MiB."
    )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echostream-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/bench", help="output folder (bench.md, bench.json, bench.png)")
    p.add_argument("--positions", default="1,10,60,300", help="stream positions in seconds")
    p.add_argument("--right-context-lengths", default="0,2", help="Emformer look-ahead frames to measure")
    p.add_argument("--memory-minutes", type=float, default=10.0, help="length of the memory stream")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="also time our fp32 step through torch.compile (about a minute of compilation)",
    )
    p.add_argument(
        "--onnx",
        action="store_true",
        help="also time the step exported to ONNX under onnxruntime (fp32, int8), and count "
        "onnxruntime's kernels in the floor",
    )
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--ffn-dim", type=int, default=2048)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--chunk-length", type=int, default=8)
    p.add_argument("--left-context-length", type=int, default=32)
    p.add_argument("--max-memory-size", type=int, default=4)
    return p


def run(args: argparse.Namespace) -> Dict:
    """Run every measurement, print the tables and write bench.md / bench.json / bench.png."""
    for noisy in ("matplotlib", "filelock", "torch._inductor", "torch._dynamo"):  # compile logs every lock at DEBUG
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        positions = sorted(float(x) for x in args.positions.split(","))
        rcs = [int(x) for x in args.right_context_lengths.split(",")]
    except ValueError as e:
        raise SystemExit(f"echostream-bench: bad --positions or --right-context-lengths: {e}")
    if not positions or positions[0] <= 0:
        raise SystemExit("echostream-bench: --positions must be positive seconds")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_header()
    print(f"Machine: {machine}", flush=True)
    # memory first, before the other measurements leave allocations behind in this process
    print(f"measuring memory over a {args.memory_minutes:g}-minute stream ...", flush=True)
    memory = memory_over_stream(args, args.memory_minutes)
    streams = []
    for R in rcs:
        print(f"streaming {max(positions):g} s through ours and torchaudio (right context {R}) ...", flush=True)
        streams.append(emformer_stream(args, R, positions))
    print("timing the re-encoding Conformer baseline ...", flush=True)
    conformer = conformer_reencode(args, positions)
    bandwidth = memory_bandwidth_gbs()
    table = render(machine, bandwidth, streams, conformer, memory, positions)
    print()
    print(table)
    result = {
        "machine": machine,
        "memory_bandwidth_gbs": bandwidth,
        "streams": streams,
        "conformer_ms": conformer,
        "memory": memory,
    }
    write_report(out, "bench", result, table)
    _plot(out / "bench.png", streams, conformer, memory)
    print(f"wrote {out / 'bench.md'}, {out / 'bench.json'}, {out / 'bench.png'}")
    return result


def main(argv=None) -> None:
    run(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
