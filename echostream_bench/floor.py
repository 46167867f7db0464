"""The machine's floor for a streaming step, measured in the benchmark's own run.

A streaming step multiplies a few rows (the chunk, its look-ahead, a summary) by every weight of
the model. Its floor is those matrix products alone: the same weights, the same numbers of rows,
run back to back with nothing else, with the fastest library kernel this CPU has for each dtype
(the paths :func:`~echostream_fairseq.modules.packed_linear.linear_paths` allows here for fp32 and
bf16: ``F.linear`` and, where oneDNN runs the dtype, the oneDNN-packed product; fbgemm's dynamic
int8 product for int8; with ``onnx``, onnxruntime's fp32 and int8 products too: the floor is the
fastest kernel any of our runtimes has). A dtype this CPU has no kernel for has no floor
(:data:`NO_KERNEL`). The memory-bandwidth figure says how far that floor is from streaming the
weights once.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from echostream_fairseq.common.cpu import cpu_capabilities
from echostream_fairseq.modules.packed_linear import linear_paths
from echostream_fairseq.modules.precision import Int8Linear

# the floor of a dtype this CPU has no kernel for (int8 without fbgemm)
NO_KERNEL = float("nan")

__all__ = [
    "NO_KERNEL",
    "LinearCall",
    "matmul_floor_ms",
    "memory_bandwidth_gbs",
    "op_profile",
    "record_linear_calls",
    "weight_bytes",
]


@dataclass(frozen=True)
class LinearCall:
    """One matrix product of a step: the layer's weight and bias and the rows it multiplied."""

    weight: Tensor
    bias: Tensor
    rows: int


def record_linear_calls(model: nn.Module, step: Callable[[], object]) -> List[LinearCall]:
    """Run ``step`` once and record every ``nn.Linear`` call of ``model`` in it, in order (on the
    ``aten`` backend, whose fused product-and-residual goes through the module's call too, so the
    hooks see every product)."""
    from echostream_fairseq.modules.packed_linear import linear_backend, set_linear_backend

    calls: List[LinearCall] = []

    def hook(module, inputs):
        x = inputs[0]
        calls.append(LinearCall(module.weight.detach(), module.bias, x.numel() // x.size(-1)))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.Linear)]
    before = linear_backend()
    set_linear_backend("aten")
    try:
        with torch.inference_mode():
            step()
    finally:
        set_linear_backend(before)
        for h in handles:
            h.remove()
    if not calls:
        raise ValueError("the step made no nn.Linear call to record")
    return calls


def weight_bytes(calls: List[LinearCall], dtype: str) -> int:
    size = {"fp32": 4, "bf16": 2, "int8": 1}[dtype]
    return sum(c.weight.numel() * size for c in calls)


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def matmul_floor_ms(
    calls: List[LinearCall], dtypes=("fp32", "bf16", "int8"), repeats: int = 60, onnx: bool = False
) -> Dict[str, Dict[str, float]]:
    """Median time of the step's products alone, per dtype and kernel, every kernel's sets timed in turn
    (so a slow spell of the machine falls on all of them). Returns ``{dtype: {kernel: ms, "floor": fastest}}``;
    a dtype with no kernel on this CPU has only ``"floor": NO_KERNEL``."""
    kernels = {(d, name): fn for d in dtypes for name, fn in _kernels(calls, d, onnx).items()}
    times: Dict = {key: [] for key in kernels}
    with torch.inference_mode():
        for fn in kernels.values():
            fn()
        for _ in range(repeats):
            for key, fn in kernels.items():
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
    result: Dict[str, Dict[str, float]] = {d: {} for d in dtypes}
    for (d, name), values in times.items():
        result[d][name] = statistics.median(values) * 1e3
    for d in dtypes:
        result[d]["floor"] = min(result[d].values(), default=NO_KERNEL)
    return result


def _kernels(calls: List[LinearCall], dtype: str, onnx: bool = False) -> Dict[str, Callable[[], object]]:
    """The library kernels that can run the products in ``dtype``: name -> one pass over all of them."""
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randn(c.rows, c.weight.size(1), generator=gen) for c in calls]
    kernels: Dict[str, Callable[[], object]] = {}
    if dtype == "int8":
        if cpu_capabilities().dtype_refusal("int8") is not None:
            return kernels
        layers = []
        for c in calls:
            linear = nn.Linear(c.weight.size(1), c.weight.size(0), bias=c.bias is not None)
            with torch.no_grad():
                linear.weight.copy_(c.weight.float())
                if c.bias is not None:
                    linear.bias.copy_(c.bias.float())
            layers.append(Int8Linear(linear))
        kernels["fbgemm int8"] = lambda: [m(x) for m, x in zip(layers, inputs)]
    elif dtype in ("fp32", "bf16"):
        torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        weights = [c.weight.to(torch_dtype) for c in calls]
        biases = [None if c.bias is None else c.bias.to(torch_dtype) for c in calls]
        xs = [x.to(torch_dtype) for x in inputs]
        paths = linear_paths(torch_dtype)
        kernels["F.linear"] = lambda: [F.linear(x, w, b) for x, w, b in zip(xs, weights, biases)]
        if "packed" in paths:
            packed = [torch.ops.mkldnn._reorder_linear_weight(w, 16) for w in weights]
            kernels["oneDNN packed"] = lambda: [
                torch.ops.mkldnn._linear_pointwise(x, p, b, "none", [], "") for x, p, b in zip(xs, packed, biases)
            ]
    elif dtype not in ("fp32", "bf16"):
        raise ValueError(f"unknown dtype {dtype!r}; use fp32, bf16 or int8")
    if onnx and dtype in ("fp32", "int8"):
        from echostream_bench.onnx_graphs import onnx_matmul_kernel

        kernels["onnxruntime"] = onnx_matmul_kernel(calls, dtype)
    return kernels


def memory_bandwidth_gbs(megabytes: int = 256, repeats: int = 10) -> float:
    """Read bandwidth (GB/s, 2**30 bytes) of a sum over a buffer larger than any cache."""
    buffer = torch.ones(megabytes * 2**20 // 4)
    ms = _median_ms(lambda: buffer.sum(), repeats)
    return megabytes / 1024 / (ms / 1e3)


def op_profile(step: Callable[[], object], steps: int = 30, top: int = 12) -> List[Dict]:
    """Where a step's time goes: the ``top`` operators by self CPU time, per step."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [
        {
            "op": e.key,
            "ms_per_step": e.self_cpu_time_total / 1e3 / steps,
            "share": e.self_cpu_time_total / total,
            "calls_per_step": e.count / steps,
        }
        for e in events[:top]
    ]
