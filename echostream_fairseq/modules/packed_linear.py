"""A drop-in ``nn.Linear`` that can multiply with a pre-packed oneDNN weight at CPU inference.

Why: a streaming step multiplies ~10 rows by every weight of the model, so its time is spent
reading weights. On some CPUs the default GEMM repacks the weight on every call, and a copy packed
once for oneDNN cut the 48 matrix products of a 12-layer d=256 Emformer step from 9.9 ms to 4.2 ms
(fp32) on a 2-core AVX-512 machine; on an AMX Xeon the same packing made the step slower. So the
path is chosen per CPU, dtype and product shape (:func:`set_linear_backend`): ``auto`` (the
default, or the ``ECHOSTREAM_LINEAR_BACKEND`` environment variable) times both paths once per
dtype, weight shape and class of row count (:func:`rows_class`), the first time it meets one, and
keeps the faster; ``onednn`` and ``aten`` force one.

The packed copy is a memo of the weight: it is rebuilt whenever the weight tensor, its in-place
version counter or its dtype changes, and whenever the module is switched between training and
evaluation (optimisers such as fairseq's Adam write through ``weight.data``, which the version
counter does not see, so validation during training would otherwise use the weights of the first
validation); it is never saved. Training, autograd, non-CPU tensors and
dtypes other than fp32/bf16 use ``F.linear``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PackedLinear", "linear_backend", "packed_path", "set_linear_backend"]

logger = logging.getLogger(__name__)

_ACTIVATIONS = {"none": None, "relu": F.relu}


def _onednn_available() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


_ONEDNN = _onednn_available()
LINEAR_BACKENDS = ("auto", "onednn", "aten")
_backend = "auto"
# (dtype, out_features, in_features, rows class) -> whether the packed path is faster on this CPU
_auto_choice: Dict[Tuple[torch.dtype, int, int, int], bool] = {}


def set_linear_backend(name: str) -> None:
    """``auto`` (time both paths per product shape, keep the faster), ``onednn`` (packed) or ``aten`` (``F.linear``)."""
    global _backend
    if name not in LINEAR_BACKENDS:
        raise ValueError(f"unknown linear backend {name!r}; use one of {', '.join(LINEAR_BACKENDS)}")
    _backend = name


def linear_backend() -> str:
    return _backend


def rows_class(rows: int) -> int:
    """Products with 1, 2-3, 4-7, 8-15 and 16 or more rows are timed apart: one decoder token
    and a chunk of frames can favour different paths (measured: 512x512 with one row, 67 us
    with ``F.linear`` against 256 packed, on an AMX Xeon whose 10-row products were a tie)."""
    return min(rows, 16).bit_length()


def _calibrate(dtype: torch.dtype, out_features: int, in_features: int, rows: int) -> bool:
    """Whether the packed product beats ``F.linear`` for this shape, timed on random weights."""
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(out_features, in_features, generator=gen).to(dtype)
    x = torch.randn(min(rows, 64), in_features, generator=gen).to(dtype)
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, 16)

    def plain() -> None:
        F.linear(x, weight)

    def onednn() -> None:
        torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")

    best = {plain: float("inf"), onednn: float("inf")}
    with torch.inference_mode():
        for _ in range(5):  # alternate, keep each path's best of five rounds of 10 calls
            for fn in best:
                fn()
                t0 = time.perf_counter()
                for _ in range(10):
                    fn()
                best[fn] = min(best[fn], time.perf_counter() - t0)
    faster = best[onednn] < 0.95 * best[plain]  # ties go to the simpler path
    logger.info(
        "linear backend for %s %dx%d, %d rows: %s (packed %.1f us, F.linear %.1f us)",
        dtype, out_features, in_features, x.size(0), "onednn" if faster else "aten",
        best[onednn] * 1e5, best[plain] * 1e5,
    )
    return faster


def packed_path(dtype: torch.dtype, out_features: int, in_features: int, rows: int) -> bool:
    """Whether an inference product of this dtype and shape takes the packed path under the current backend."""
    if not _ONEDNN or _backend == "aten":
        return False
    if _backend == "onednn":
        return True
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

    def _packed_weight(self, x: Tensor) -> Optional[Tensor]:
        """The packed weight when ``x`` can take the packed path, else ``None``.

        The packed path is for inference: autograd is off (``no_grad`` / ``inference_mode``), the module
        is in eval mode, and ``x`` is a CPU tensor of the weight's dtype (fp32 or bf16).
        """
        if torch.is_grad_enabled() or self.training or not _ONEDNN or x.device.type != "cpu":
            return None
        w = self.weight
        if x.dtype != w.dtype or w.dtype not in (torch.float32, torch.bfloat16):
            return None
        if not packed_path(w.dtype, self.out_features, self.in_features, x.numel() // self.in_features):
            return None
        # inference tensors (made under inference_mode) carry no version counter
        key = (w.data_ptr(), -1 if w.is_inference() else w._version, w.dtype)
        if self._packed_key != key:
            # the batch-size hint only picks a layout; any number of rows works with it
            self._packed = torch.ops.mkldnn._reorder_linear_weight(w.detach(), 16)
            self._packed_key = key
        return self._packed

    def forward(self, x: Tensor) -> Tensor:
        packed = self._packed_weight(x)
        if packed is not None:
            # oneDNN takes 2-D input with less per-call overhead than 3-D (about 9 us less here)
            y = torch.ops.mkldnn._linear_pointwise(
                x.reshape(-1, x.size(-1)), packed, self.bias, self.activation,
                [None] if self.activation != "none" else [], "",
            )
            return y.view(*x.shape[:-1], self.out_features)
        y = F.linear(x, self.weight, self.bias)
        act = _ACTIVATIONS[self.activation]
        return y if act is None else act(y)

    def forward_add(self, x: Tensor, residual: Tensor) -> Tensor:
        """``residual + self(x)``, with the addition fused into the product on the packed path."""
        packed = self._packed_weight(x) if self.activation == "none" else None
        if packed is not None and residual.dtype == x.dtype:
            y = torch.ops.mkldnn._linear_pointwise.binary(
                x.reshape(-1, x.size(-1)), residual.reshape(-1, self.out_features), packed, self.bias, "add"
            )
            return y.view(*x.shape[:-1], self.out_features)
        return residual + self(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", activation={self.activation}" if self.activation != "none" else "")

    def __getstate__(self):
        # the packed memo is rebuilt on demand; never pickle it
        state = super().__getstate__()
        state = dict(state)
        state["_packed"], state["_packed_key"] = None, None
        return state
