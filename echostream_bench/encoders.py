"""``echostream-bench-encoders``: the Zipformer against the Emformer, streamed chunk by chunk.

For each size (``tiny``: the ``*_tiny`` architectures; ``full``: the StreamSpeech-sized ones) both
speech encoders are built from their architecture presets (random weights, seed 0), and the same
synthetic fbank stream is fed to each through
:meth:`~echostream_fairseq.models.speech_encoder.EchoStreamSpeechEncoder.step` (subsampler + backbone), one
chunk of ``--chunk-ms`` at a time. The two encoders alternate chunk by chunk in one process, so
both see the same machine load; the ratio is taken between medians of that run.

Per chunk the time is the wall time of one step. At each stream position the table gives the median
over the ``--window`` chunks ending there, the real-time factor (step time / chunk duration) and the
size of the streaming state. The machine's speed drifts over a minutes-long run, which would show
as growth with position; so each encoder also runs a fresh stream, restarted every ``--window``
chunks, in lockstep with the long one, and "vs fresh" is the long stream's median over its fresh
twin's in the same window. With ``--compile-sizes``, each encoder of those sizes is also taken to
a steady state (every cache at its final size) and its step timed eagerly and through
``torch.compile`` (one graph for the steady-state shape), all four interleaved; with
``--onnx-sizes``, its backbone's fixed-shape step as an onnxruntime graph (as ``echostream-export``
writes it; the subsampler in torch) joins them. Writes
``bench_encoders.md`` and ``bench_encoders.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Dict, List

import torch

from echostream_bench.common import compile_step
from echostream_fairseq.common.audio import ENCODER_FRAME_MS
from echostream_fairseq.common.cpu import machine_header
from echostream_fairseq.models import echostream as arch
from echostream_fairseq.models.speech_encoder import EchoStreamSpeechEncoder

ARCHITECTURES = {
    "tiny": {"Emformer": arch.emformer_tiny_architecture, "Zipformer": arch.zipformer_tiny_architecture},
    "full": {"Emformer": arch.base_architecture, "Zipformer": arch.zipformer_architecture},
}
FBANK_MS = 10


def build_encoder(preset, chunk_ms: int) -> EchoStreamSpeechEncoder:
    args = argparse.Namespace(input_feat_per_channel=80, input_channels=1)
    preset(args)
    args.chunk_length = chunk_ms // ENCODER_FRAME_MS  # encoder output frames
    torch.manual_seed(0)
    return EchoStreamSpeechEncoder(args).eval()


def state_bytes(state) -> int:
    """Bytes of every tensor in an encoder stream state (nested dataclasses and tuples)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, (tuple, list)):
        return sum(state_bytes(s) for s in state)
    if hasattr(state, "__dataclass_fields__"):
        return sum(state_bytes(getattr(state, name)) for name in state.__dataclass_fields__)
    return 0


def run_size(size: str, chunk_ms: int, positions: List[float], window: int) -> Dict:
    encoders = {name: build_encoder(preset, chunk_ms) for name, preset in ARCHITECTURES[size].items()}
    chunk = chunk_ms // FBANK_MS
    num_chunks = int(round(max(positions) * 1000 / chunk_ms))
    torch.manual_seed(1)
    states = {name: enc.initial_state() for name, enc in encoders.items()}
    fresh = dict(states)
    times: Dict[str, List[float]] = {name: [] for name in encoders}
    fresh_times: Dict[str, List[float]] = {name: [] for name in encoders}
    names = list(encoders)
    with torch.inference_mode():
        for i in range(num_chunks):
            feats = torch.randn(1, chunk, 80)
            for name in names if i % 2 == 0 else reversed(names):  # alternate who goes first
                t0 = time.perf_counter()
                _, states[name] = encoders[name].step(feats, states[name])
                times[name].append(time.perf_counter() - t0)
                if i % window == 0:
                    fresh[name] = encoders[name].initial_state()
                t0 = time.perf_counter()
                _, fresh[name] = encoders[name].step(feats, fresh[name])
                fresh_times[name].append(time.perf_counter() - t0)
    rows = []
    for name, enc in encoders.items():
        at, vs_fresh = {}, {}
        for p in positions:
            end = max(1, int(round(p * 1000 / chunk_ms)))
            span = slice(max(0, end - window), end)
            at[f"{p:g}"] = statistics.median(times[name][span]) * 1e3
            vs_fresh[f"{p:g}"] = statistics.median(times[name][span]) / statistics.median(fresh_times[name][span])
        first, last = at[f"{positions[0]:g}"], at[f"{positions[-1]:g}"]
        rows.append(
            {
                "size": size,
                "encoder": name,
                "params": sum(p.numel() for p in enc.parameters()),
                "step_ms": at,
                "vs_fresh": vs_fresh,
                "growth": last / first,
                "rtf": last / chunk_ms,
                "state_kib": state_bytes(states[name]) / 1024,
            }
        )
    emformer = next(r for r in rows if r["encoder"] == "Emformer")
    for r in rows:
        r["vs_emformer"] = r["step_ms"][f"{positions[-1]:g}"] / emformer["step_ms"][f"{positions[-1]:g}"]
    return {"size": size, "rows": rows}


def steady_steps(
    size: str, chunk_ms: int, compiled: bool, onnx: bool, warmup: int = 60, repeats: int = 40
) -> Dict[str, float]:
    """Median steady-state step (ms) of each encoder of ``size``: eager, and (``compiled``)
    through ``torch.compile``, (``onnx``) with its backbone on an onnxruntime graph, each checked
    to give the eager output within 1e-3, all interleaved."""
    import logging

    for noisy in ("filelock", "torch._inductor", "torch._dynamo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    encoders = {name: build_encoder(preset, chunk_ms) for name, preset in ARCHITECTURES[size].items()}
    torch.manual_seed(2)
    feats = torch.randn(1, chunk_ms // FBANK_MS, 80)
    steps = {}
    with torch.inference_mode():
        for name, enc in encoders.items():
            state = enc.initial_state()
            for _ in range(warmup):  # past every cache's final size
                _, state = enc.step(feats, state)
            eager, _ = enc.step(feats, state)
            steps[f"{name} eager"] = lambda enc=enc, state=state: enc.step(feats, state)
            if compiled:
                step = compile_step(enc.step)
                out, _ = step(feats, state)  # compiles here (a minute or two on 2 cores)
                _check(name, "compiled", out, eager)
                steps[f"{name} compiled"] = lambda step=step, state=state: step(feats, state)
            if onnx:
                steps[f"{name} onnxruntime"] = _onnx_steady_step(name, enc, feats, warmup, eager)
        times: Dict[str, List[float]] = {name: [] for name in steps}
        for _ in range(repeats):
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) * 1e3 for name, v in times.items()}


def _check(name: str, variant: str, out: torch.Tensor, eager: torch.Tensor) -> None:
    diff = float((out - eager).abs().max())
    if diff > 1e-3:
        raise RuntimeError(f"the {variant} {name} step differs from the eager one by {diff:g}")


def _onnx_steady_step(name: str, enc: EchoStreamSpeechEncoder, feats: torch.Tensor, warmup: int, eager: torch.Tensor):
    """One chunk of ``enc`` in steady state with the backbone on its graph: the subsampler in
    torch, then the graph over the state its own ``warmup`` chunks left."""
    from echostream_bench.onnx_graphs import onnx_backbone_step

    graph_step = onnx_backbone_step(enc.backbone)
    speech = enc.initial_state()
    subsampler, pending, graph_state, out = speech.subsampler, speech.pending, None, None
    for _ in range(warmup + 1):
        frames, subsampler = enc.embed_step(feats, subsampler)
        chunks, pending = enc.backbone_chunks(torch.cat([pending, frames], dim=1), False)
        for chunk, _ in chunks:
            out, graph_state = graph_step(chunk, graph_state)
    _check(name, "onnxruntime", out, eager)
    S = enc.backbone.input_chunk_length

    def step(subsampler=subsampler, pending=pending, graph_state=graph_state):
        frames, _ = enc.embed_step(feats, subsampler)
        return graph_step(torch.cat([pending, frames], dim=1)[:, :S], graph_state)

    return step


def render(
    machine: str,
    results: List[Dict],
    positions: List[float],
    chunk_ms: int,
    window: int,
    compiled: Dict[str, Dict[str, float]],
) -> str:
    head = " | ".join(f"{p:g} s" for p in positions)
    lines = [
        f"Per-chunk step time of the speech encoder (fbank -> subsampler -> backbone), {chunk_ms} ms chunks, "
        f"median of the {window} chunks ending at each stream position.",
        "",
        f"Machine: {machine}",
        "",
        f"| size | encoder | parameters | {head} | last / first | last vs fresh | RTF | state | time vs Emformer |",
        "|" + "---|" * (len(positions) + 8),
    ]
    for res in results:
        for r in res["rows"]:
            cells = " | ".join(f"{r['step_ms'][f'{p:g}']:.2f} ms" for p in positions)
            lines.append(
                f"| {r['size']} | {r['encoder']} | {r['params'] / 1e6:.2f} M | {cells} | {r['growth']:.2f}x "
                f"| {r['vs_fresh'][f'{positions[-1]:g}']:.2f}x | {r['rtf']:.4f} | {r['state_kib']:.0f} KiB "
                f"| {r['vs_emformer']:.2f}x |"
            )
    for size, steps in compiled.items():
        base = steps["Emformer eager"]
        lines += [
            "",
            f"Steady-state step, {size}: eager, compiled (torch.compile, inductor), onnxruntime (the "
            f"backbone's exported step); interleaved medians:",
            "",
            "| step | ms | vs Emformer eager | vs the Emformer's same variant |",
            "|---|---|---|---|",
        ]
        for name, ms in steps.items():
            peer = steps.get("Emformer " + name.split(" ", 1)[1])
            lines.append(f"| {name} | {ms:.2f} | {ms / base:.2f}x | {ms / peer:.2f}x |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echostream-bench-encoders", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="results/bench_encoders", help="output folder")
    p.add_argument("--sizes", default="tiny,full", help="comma-separated: tiny, full")
    p.add_argument("--positions", default="1,10,60,300", help="stream positions in seconds, ascending")
    p.add_argument("--chunk-ms", type=int, default=320, help="chunk size (a multiple of 160 ms)")
    p.add_argument("--window", type=int, default=10, help="chunks per median")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument(
        "--compile-sizes",
        default="",
        help="comma-separated sizes whose steady-state step is also "
        "timed through torch.compile (minutes of compilation)",
    )
    p.add_argument(
        "--onnx-sizes",
        default="",
        help="comma-separated sizes whose steady-state step is also timed with the backbone's "
        "exported graph under onnxruntime (seconds of export)",
    )
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = [s for s in sizes if s not in ARCHITECTURES]
    if unknown or not sizes:
        raise SystemExit(f"--sizes takes {sorted(ARCHITECTURES)}, got {args.sizes!r}")
    try:
        positions = [float(p) for p in args.positions.split(",")]
    except ValueError:
        raise SystemExit(f"--positions must be comma-separated seconds, got {args.positions!r}") from None
    if positions != sorted(positions) or positions[0] <= 0:
        raise SystemExit(f"--positions must be positive and ascending, got {args.positions!r}")
    if args.chunk_ms % 160:
        raise SystemExit(
            f"--chunk-ms must be a multiple of 160 ms (the Zipformer's coarsest frame), got {args.chunk_ms}"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_header()
    compile_sizes = [s for s in args.compile_sizes.split(",") if s]
    if any(s not in ARCHITECTURES for s in compile_sizes):
        raise SystemExit(f"--compile-sizes takes {sorted(ARCHITECTURES)}, got {args.compile_sizes!r}")
    onnx_sizes = [s for s in args.onnx_sizes.split(",") if s]
    if any(s not in ARCHITECTURES for s in onnx_sizes):
        raise SystemExit(f"--onnx-sizes takes {sorted(ARCHITECTURES)}, got {args.onnx_sizes!r}")
    results = [run_size(s, args.chunk_ms, positions, args.window) for s in sizes]
    compiled = {
        s: steady_steps(s, args.chunk_ms, s in compile_sizes, s in onnx_sizes)
        for s in dict.fromkeys(compile_sizes + onnx_sizes)
    }
    table = render(machine, results, positions, args.chunk_ms, args.window, compiled)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_encoders.md").write_text(table)
    (out / "bench_encoders.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "chunk_ms": args.chunk_ms,
                "positions": positions,
                "results": results,
                "steady_state_ms": compiled,
            },
            indent=1,
        )
    )
    print(table)


if __name__ == "__main__":
    main()
