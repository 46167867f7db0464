"""A drop-in ``nn.Linear`` that picks, per CPU, dtype and product shape, the fastest way to multiply at inference.

Why: a streaming step multiplies ~10 rows by every weight of the model, so its time is spent
reading weights, and which kernel reads them fastest depends on the CPU. Two paths
(:data:`LINEAR_PATHS`):

* ``packed``: a copy of the weight packed once for oneDNN (faster on some CPUs, slower on others:
  docs/decisions.md). fp32 always; bf16 only where oneDNN has bf16 kernels
  (:attr:`~echostream_fairseq.common.cpu.CpuCapabilities.onednn_bf16`: AVX512-BW/VL/DQ or
  AVX-NE-CONVERT), since oneDNN refuses to pack a bf16 weight elsewhere;
* ``aten``: ``F.linear`` in the weight's dtype. It is the only bf16 path without oneDNN's bf16
  kernels. Widening the weight to fp32 per call was measured and rejected: it reads and writes
  the weight twice more (docs/decisions.md).

:func:`set_linear_backend` (or the ``ECHOSTREAM_LINEAR_BACKEND`` environment variable) chooses:
``auto`` (the default) times every path this CPU can run once per dtype, weight shape and class
of row count (:func:`rows_class`), the first time it meets one, and keeps the fastest; ``onednn``
forces ``packed`` where oneDNN can run the dtype (else ``aten``); ``aten`` forces ``F.linear``.

The packed copy is a memo of the weight: it is rebuilt whenever the weight tensor, its in-place
version counter or its dtype changes, and whenever the module is switched between training and
evaluation (optimisers such as fairseq's Adam write through ``weight.data``, which the version
counter does not see, so validation during training would otherwise use the weights of the first
validation); it is never saved. Training, autograd, non-CPU tensors and
dtypes other than fp32/bf16 use ``F.linear``.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from echostream_fairseq.common.cpu import cpu_capabilities

__all__ = [
    "LINEAR_BACKENDS",
    "LINEAR_PATHS",
    "PackedLinear",
    "linear_backend",
    "linear_path",
    "linear_paths",
    "set_linear_backend",
]

logger = logging.getLogger(__name__)

_ACTIVATIONS = {"none": None, "relu": F.relu}


def _onednn_available() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


_ONEDNN = _onednn_available()
LINEAR_BACKENDS = ("auto", "onednn", "aten")
LINEAR_PATHS = ("packed", "aten")
_backend = "auto"
# (dtype, out_features, in_features, rows class) -> the faster of linear_paths(dtype) on this CPU
_auto_choice: Dict[Tuple[torch.dtype, int, int, int], str] = {}


def set_linear_backend(name: str) -> None:
    """``auto`` (time both paths per product shape, keep the faster), ``onednn`` (packed where
    oneDNN runs the dtype) or ``aten`` (``F.linear``)."""
    global _backend
    if name not in LINEAR_BACKENDS:
        raise ValueError(f"unknown linear backend {name!r}; use one of {', '.join(LINEAR_BACKENDS)}")
    _backend = name


def linear_backend() -> str:
    return _backend


def rows_class(rows: int) -> int:
    """Products with 1, 2-3, 4-7, 8-15 and 16 or more rows are timed apart: one decoder token
    and a chunk of frames can favour different paths (docs/decisions.md)."""
    return min(rows, 16).bit_length()


@functools.lru_cache(maxsize=None)  # asked on every inference product; the answer is fixed per process
def linear_paths(dtype: torch.dtype) -> Tuple[str, ...]:
    """The :data:`LINEAR_PATHS` an inference product in ``dtype`` can take on this CPU, simplest first."""
    if not _ONEDNN or dtype not in (torch.float32, torch.bfloat16):
        return ("aten",)
    if dtype == torch.bfloat16 and not cpu_capabilities().onednn_bf16:
        return ("aten",)
    return ("aten", "packed")


def _pack(weight: Tensor) -> Tensor:
    # the batch-size hint only picks a layout; any number of rows works with it
    return torch.ops.mkldnn._reorder_linear_weight(weight, 16)


def _runner(path: str, x: Tensor, weight: Tensor) -> Callable[[], Tensor]:
    if path == "packed":
        packed = _pack(weight)
        return lambda: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
    return lambda: F.linear(x, weight)


def _calibrate(dtype: torch.dtype, out_features: int, in_features: int, rows: int) -> str:
    """The faster of :func:`linear_paths` for this shape, timed on random weights (ties, within
    5%, go to the simpler path)."""
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(out_features, in_features, generator=gen).to(dtype)
    x = torch.randn(min(rows, 64), in_features, generator=gen).to(dtype)
    runners = {path: _runner(path, x, weight) for path in linear_paths(dtype)}
    best = dict.fromkeys(runners, float("inf"))
    with torch.inference_mode():
        for _ in range(5):  # alternate, keep each path's best of five rounds of 10 calls
            for path, run in runners.items():
                run()
                t0 = time.perf_counter()
                for _ in range(10):
                    run()
                best[path] = min(best[path], time.perf_counter() - t0)
    choice = next(iter(best))
    for path, seconds in best.items():
        if seconds < 0.95 * best[choice]:
            choice = path
    logger.info(
        "linear path for %s %dx%d, %d rows: %s (%s)",
        dtype,
        out_features,
        in_features,
        x.size(0),
        choice,
        ", ".join(f"{path} {seconds * 1e5:.1f} us" for path, seconds in best.items()),
    )
    return choice


def linear_path(dtype: torch.dtype, out_features: int, in_features: int, rows: int) -> str:
    """The :data:`LINEAR_PATHS` entry an inference product of this dtype and shape takes under the current backend."""
    paths = linear_paths(dtype)
    if _backend == "aten" or len(paths) == 1:
        return "aten"
    if _backend == "onednn":
        return "packed"
    key = (dtype, out_features, in_features, rows_class(rows))
    if key not in _auto_choice:
        _auto_choice[key] = _calibrate(dtype, out_features, in_features, rows)
    return _auto_choice[key]


try:
    set_linear_backend(os.environ.get("ECHOSTREAM_LINEAR_BACKEND", "auto"))
except ValueError as e:
    raise ValueError(f"ECHOSTREAM_LINEAR_BACKEND: {e}") from None


class PackedLinear(nn.Linear):
    """``nn.Linear`` with an optional fused activation (``none`` or ``relu``).

    Same parameters and state_dict as ``nn.Linear``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "none") -> None:
        super().__init__(in_features, out_features, bias=bias)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unsupported fused activation {activation!r}; use one of {sorted(_ACTIVATIONS)}")
        self.activation = activation
        self._packed: Optional[Tensor] = None
        self._packed_key: Optional[Tuple[int, int, torch.dtype]] = None

    def train(self, mode: bool = True) -> "PackedLinear":
        # any optimiser step happens between two mode switches; a stale memo would hide it
        self._packed, self._packed_key = None, None
        return super().train(mode)

    def _path(self, x: Tensor) -> str:
        """The :data:`LINEAR_PATHS` entry ``x`` takes: ``aten`` unless this is an inference product
        (autograd off, eval mode, a CPU tensor of the weight's dtype, not traced by ``torch.compile``
        nor into an ONNX graph)
        that the backend sends elsewhere."""
        w = self.weight
        if torch.is_grad_enabled() or self.training or x.device.type != "cpu" or x.dtype != w.dtype:
            return "aten"
        # the compiler and graph export pick their own kernels; neither can take a packed weight
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return "aten"
        return linear_path(w.dtype, self.out_features, self.in_features, x.numel() // self.in_features)

    def _packed_weight(self) -> Tensor:
        w = self.weight
        # inference tensors (made under inference_mode) carry no version counter
        key = (w.data_ptr(), -1 if w.is_inference() else w._version, w.dtype)
        if self._packed_key != key:
            self._packed = _pack(w.detach())
            self._packed_key = key
        return self._packed

    def forward(self, x: Tensor) -> Tensor:
        return self._product(x, self._path(x))

    def _product(self, x: Tensor, path: str) -> Tensor:
        if path == "packed":
            # oneDNN takes 2-D input with less per-call overhead than 3-D
            y = torch.ops.mkldnn._linear_pointwise(
                x.reshape(-1, x.size(-1)),
                self._packed_weight(),
                self.bias,
                self.activation,
                [None] if self.activation != "none" else [],
                "",
            )
            return y.view(*x.shape[:-1], self.out_features)
        y = F.linear(x, self.weight, self.bias)
        act = _ACTIVATIONS[self.activation]
        return y if act is None else act(y)

    def forward_add(self, x: Tensor, residual: Tensor) -> Tensor:
        """``residual + self(x)``, with the addition fused into the product on the packed path."""
        path = self._path(x)
        if path == "packed" and self.activation == "none" and residual.dtype == x.dtype:
            y = torch.ops.mkldnn._linear_pointwise.binary(
                x.reshape(-1, x.size(-1)),
                residual.reshape(-1, self.out_features),
                self._packed_weight(),
                self.bias,
                "add",
            )
            return y.view(*x.shape[:-1], self.out_features)
        return residual + self(x)  # through the module's call, so its hooks see the product

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", activation={self.activation}" if self.activation != "none" else "")

    def __getstate__(self):
        # the packed memo is rebuilt on demand; never pickle it
        state = super().__getstate__()
        state = dict(state)
        state["_packed"], state["_packed_key"] = None, None
        return state
