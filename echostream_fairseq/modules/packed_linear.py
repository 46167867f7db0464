"""A drop-in ``nn.Linear`` that can multiply with a pre-packed oneDNN weight at CPU inference.

Why: a streaming step multiplies ~10 rows by every weight of the model, so its time is spent
reading weights. On some CPUs the default GEMM repacks the weight on every call, and a copy packed
once for oneDNN cut the 48 matrix products of a 12-layer d=256 Emformer step from 9.9 ms to 4.2 ms
(fp32) on a 2-core AVX-512 machine; on an AMX Xeon the same packing made the step slower. So the
path is chosen per CPU and dtype (:func:`set_linear_backend`): ``auto`` (the default, or the
``ECHOSTREAM_LINEAR_BACKEND`` environment variable) times both paths once, on the step's shapes, the
first time a dtype is used, and keeps the faster; ``onednn`` and ``aten`` force one.

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
_auto_choice: Dict[torch.dtype, bool] = {}  # dtype -> packed path faster on this CPU


def set_linear_backend(name: str) -> None:
    """``auto`` (time both paths per dtype, keep the faster), ``onednn`` (packed) or ``aten`` (``F.linear``)."""
    global _backend
    if name not in LINEAR_BACKENDS:
        raise ValueError(f"unknown linear backend {name!r}; use one of {', '.join(LINEAR_BACKENDS)}")
    _backend = name


def linear_backend() -> str:
    return _backend


def _calibrate(dtype: torch.dtype) -> bool:
    """Whether the packed product beats ``F.linear`` here, timed on an Emformer step's shapes (10 rows, d=256)."""
    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(o, i, generator=gen).to(dtype) for o, i in ((2048, 256), (256, 2048), (768, 256))]
    inputs = [torch.randn(10, w.size(1), generator=gen).to(dtype) for w in weights]
    packed = [torch.ops.mkldnn._reorder_linear_weight(w, 16) for w in weights]

    def plain() -> None:
        for x, w in zip(inputs, weights):
            F.linear(x, w)

    def onednn() -> None:
        for x, w in zip(inputs, packed):
            torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")

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
        "linear backend for %s: %s (packed %.3f ms, F.linear %.3f ms per call set)",
        dtype, "onednn" if faster else "aten", best[onednn] * 100, best[plain] * 100,
    )
    return faster


def packed_path(dtype: torch.dtype) -> bool:
    """Whether inference in ``dtype`` takes the packed path under the current backend."""
    if not _ONEDNN or _backend == "aten":
        return False
    if _backend == "onednn":
        return True
    if dtype not in _auto_choice:
        _auto_choice[dtype] = _calibrate(dtype)
    return _auto_choice[dtype]


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
        if x.dtype != w.dtype or w.dtype not in (torch.float32, torch.bfloat16) or not packed_path(w.dtype):
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
