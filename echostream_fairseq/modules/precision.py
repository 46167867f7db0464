"""Inference precision: the whole model in fp32, bf16, or with int8 linear layers.

``--model-dtype`` (``model_dtype=`` in the Python API) names one of :data:`DTYPES`;
:func:`convert_precision` turns a trained (fp32) model into it, in place, for inference only:

* ``fp32``: unchanged.
* ``bf16``: every parameter and buffer in bfloat16; activations and streaming states follow.
* ``int8``: every ``nn.Linear`` (the encoder's, the CTC heads', the MT decoder's, the T2U encoder's
  and the unit decoder's) becomes an :class:`Int8Linear`: weights quantised per output channel to
  int8 once, inputs quantised per call (dynamic quantisation, PyTorch's fbgemm kernels, which use
  VNNI where the CPU has it). Embeddings, normalisations, convolutions and the tied MT output
  projection stay fp32, and so do activations and states.

What each needs from the CPU (:data:`~echostream_fairseq.common.cpu.DTYPE_NEEDS`): fp32 nothing;
bf16 runs everywhere, on oneDNN's bf16 kernels where the CPU has AVX512-BW/VL/DQ or AVX-NE-CONVERT
and on ATen's elsewhere (slower than fp32 there); int8 needs fbgemm, hence AVX2.
:func:`check_dtype` says so before a model is loaded.
"""

from __future__ import annotations

import logging
import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from echostream_fairseq.common.cpu import CpuCapabilities, cpu_capabilities

__all__ = ["DTYPES", "Int8Linear", "check_dtype", "convert_precision", "precision_of", "torch_dtype"]

logger = logging.getLogger(__name__)

DTYPES = ("fp32", "bf16", "int8")
_ACTIVATIONS = {"none": None, "relu": F.relu}


def torch_dtype(name: str) -> torch.dtype:
    """The dtype of a model's activations and states under precision ``name``."""
    _check(name)
    return torch.bfloat16 if name == "bf16" else torch.float32


def _check(name: str) -> None:
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")


_bf16_noted: list = []


def check_dtype(name: str, device: Optional[torch.device] = None, cpu: Optional[CpuCapabilities] = None) -> None:
    """Refuse ``--model-dtype name`` where it cannot run on this CPU (``cpu``: this process's by
    default), with the reason and the dtypes that can; log what bf16 loses here (once per process).
    A model on another ``device`` than the CPU is not the CPU's business. Call it before loading a model."""
    _check(name)
    if device is not None and torch.device(device).type != "cpu":
        return
    cpu = cpu or cpu_capabilities()
    refusal = cpu.dtype_refusal(name)
    if refusal is not None:
        raise ValueError(refusal)
    if name == "bf16" and cpu.bf16_note() is not None and not _bf16_noted:
        _bf16_noted.append(True)  # loading checks, then converting does: say it once
        logger.warning("--model-dtype bf16: %s, and fp32 is likely faster on this CPU (docs/speed.md)", cpu.bf16_note())


class Int8Linear(nn.Module):
    """Inference-only ``nn.Linear`` with int8 weights (per output channel) and dynamically quantised inputs.

    Built from a float ``nn.Linear`` (or a :class:`~echostream_fairseq.modules.packed_linear.PackedLinear`,
    whose fused activation it keeps). Input and output are fp32 ``[..., in_features]`` /
    ``[..., out_features]``. ``bias`` stays an fp32 parameter.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        refusal = cpu_capabilities().dtype_refusal("int8")
        if refusal is not None:
            raise RuntimeError(refusal)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.activation = getattr(linear, "activation", "none")
        weight = linear.weight.detach().float()
        scales = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-8)
        with warnings.catch_warnings():  # the pinned PyTorch has these kernels; later releases deprecate the API
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            qweight = torch.quantize_per_channel(
                weight, scales, torch.zeros_like(scales, dtype=torch.long), 0, torch.qint8
            )
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float(), requires_grad=False)
        self._packed = torch.ops.quantized.linear_prepack(qweight, self.bias)
        self.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        # reduce_range: 7-bit inputs, so the int16 accumulation of CPUs without VNNI cannot saturate
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, self.in_features).float(), self._packed, True)
        y = y.view(*x.shape[:-1], self.out_features)
        act = _ACTIVATIONS[self.activation]
        return y if act is None else act(y)

    def forward_add(self, x: Tensor, residual: Tensor) -> Tensor:
        """``residual + self(x)`` (the interface of ``PackedLinear``)."""
        return residual + self(x)

    def extra_repr(self) -> str:
        act = f", activation={self.activation}" if self.activation != "none" else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-channel{act}"


def precision_of(model: nn.Module) -> str:
    """The :data:`DTYPES` name a model was converted to (``fp32`` for an unconverted one)."""
    if any(isinstance(m, Int8Linear) for m in model.modules()):
        return "int8"
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    return "bf16" if param is not None and param.dtype == torch.bfloat16 else "fp32"


def _quantise_linears(module: nn.Module) -> int:
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child))
            count += 1
        else:
            count += _quantise_linears(child)
    return count


def convert_precision(model: nn.Module, dtype: str, device: Optional[torch.device] = None) -> nn.Module:
    """Convert ``model`` (in eval mode, fp32) to precision ``dtype`` in place and return it; ``device``:
    where it will run (default: where its parameters are)."""
    _check(dtype)
    if model.training:
        raise ValueError("convert_precision is for inference: call model.eval() first")
    param = next(model.parameters(), None)
    where = torch.device(device if device is not None else (param.device if param is not None else "cpu"))
    if dtype == "int8" and where.type != "cpu":
        raise ValueError(f"--model-dtype int8 runs on CPU only; the model is on {where}")
    check_dtype(dtype, where)
    if dtype == "bf16":
        return model.to(torch.bfloat16)
    if dtype == "int8":
        if _quantise_linears(model) == 0:
            raise ValueError("--model-dtype int8: the model has no linear layer to quantise")
    return model
