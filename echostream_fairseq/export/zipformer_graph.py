"""The Zipformer encoder's streaming step after the subsampler, with both CTC heads, as one
traceable module: :class:`~.encoder_graph.EncoderStepGraph`'s counterpart for a Zipformer.

Its state is explicit and of fixed shape
(:class:`~echostream_fairseq.modules.zipformer.ZipformerFixedState`,
:class:`~echostream_fairseq.models.ctc_heads.CTCHeadFixedState`). Unlike the Emformer's graph, the
chunk is fixed (the model's chunk when exported: its downsampling stacks split it into whole frames
at every rate); a stream's short last chunk is padded to it, and ``num_valid`` says how many of its
frames are real.

Inputs, in order (``B`` streams, ``S`` input frames a chunk; stack ``k`` with ``L_k`` layers,
``M + Lc_k`` cache slots of ``C_k`` channels, ``D_k`` channels and kernel ``K_k``; ``W`` ST window):

===========================  ======================================  =========
name                         shape                                   dtype
===========================  ======================================  =========
``frames``                   ``[B, S, D]``                           float
``num_valid``                ``[B]``                                 int64
``key_value.k``              ``[B, L_k, M + Lc_k, C_k]``             float
``conv.k``                   ``[B, L_k, 2, D_k, K_k - 1]``           float
``num_memory``               ``[B]``                                 int64
``num_left``                 ``[B, stacks]``                         int64
``st_key``, ``st_value``     ``[B, L_st, H_st, W, d_st]``            float
``st_count``                 ``[B]``                                 int64
===========================  ======================================  =========

Outputs: ``encoder_out`` ``[B, S / f_out, D_out]``, ``asr_logits``, ``st_logits`` (each row's first
``ceil(num_valid / f_out)`` frames real), then the next state under the input names prefixed with
``next_``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from echostream_fairseq.models.ctc_heads import CTCHeadFixedState
from echostream_fairseq.modules.zipformer import Zipformer, ZipformerFixedState

__all__ = ["ZipformerGraphState", "ZipformerStepGraph"]


@dataclass(frozen=True)
class ZipformerGraphState:
    """The graph's state: the Zipformer's and the ST CTC head's fixed-shape states."""

    zipformer: ZipformerFixedState
    st: CTCHeadFixedState

    def tensors(self) -> Tuple[Tensor, ...]:
        z = self.zipformer
        return (*z.key_value, *z.conv, z.num_memory, z.num_left, self.st.key, self.st.value, self.st.count)


class ZipformerStepGraph(nn.Module):
    """Args: ``model``: an ``EchoStreamModel`` whose encoder is a Zipformer (its ST CTC window bounded)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        backbone = model.encoder.backbone
        if not isinstance(backbone, Zipformer):
            raise ValueError(f"not a Zipformer encoder: {model.encoder.encoder_type!r}")
        self.backbone = backbone
        self.trained_chunk_length = model.encoder.trained_chunk_length
        self.asr_ctc = model.asr_ctc
        self.st_ctc = model.st_ctc
        model.st_ctc.initial_fixed_state(1)  # refuses an unbounded ST window before any tracing
        stacks = range(len(backbone.stacks))
        self.state_names = (
            tuple(f"key_value.{k}" for k in stacks)
            + tuple(f"conv.{k}" for k in stacks)
            + ("num_memory", "num_left", "st_key", "st_value", "st_count")
        )
        self.input_names = ("frames", "num_valid") + self.state_names
        self.output_names = ("encoder_out", "asr_logits", "st_logits") + tuple("next_" + n for n in self.state_names)

    @property
    def chunk_length(self) -> int:
        """Output frames of every call: the chunk the graph is traced at (the backbone's now)."""
        return self.backbone.chunk_length

    def initial_state(self, batch_size: int, device=None, dtype=None) -> ZipformerGraphState:
        return ZipformerGraphState(
            self.backbone.initial_fixed_state(batch_size, device, dtype),
            self.st_ctc.initial_fixed_state(batch_size, device, dtype),
        )

    def state_from(self, tensors) -> ZipformerGraphState:
        """The state from the graph's ``next_`` outputs (in :attr:`state_names` order)."""
        n = len(self.backbone.stacks)
        t = tuple(tensors)
        return ZipformerGraphState(
            ZipformerFixedState(t[:n], t[n : 2 * n], t[2 * n], t[2 * n + 1]), CTCHeadFixedState(*t[2 * n + 2 :])
        )

    def chunk_inputs(self, chunk: Tensor, right_context: Optional[Tensor]) -> Tuple[Dict[str, Tensor], int]:
        """The graph's inputs for ``chunk`` ``[B, s, D]`` (a whole chunk, or a stream's short last
        one, padded here), and how many output frames are real."""
        S = self.backbone.input_chunk_length
        s = chunk.size(1)
        frames = torch.nn.functional.pad(chunk, (0, 0, 0, S - s))
        valid = torch.full((chunk.size(0),), s, dtype=torch.long)
        return {"frames": frames, "num_valid": valid}, -(-s // self.backbone.output_downsampling)

    def example_inputs(self, batch_size: int, dtype) -> Tuple[Tensor, ...]:
        """Inputs to trace the graph with: whole chunks, one row's last frames not real."""
        backbone = self.backbone
        S = backbone.input_chunk_length
        frames = torch.randn(batch_size, S, backbone.input_dim, generator=torch.Generator().manual_seed(0)).to(dtype)
        valid = torch.full((batch_size,), S, dtype=torch.long)
        valid[-1] = S - 1
        return (frames, valid, *self.initial_state(batch_size, None, dtype).tensors())

    def forward(self, frames: Tensor, num_valid: Tensor, *state: Tensor) -> Tuple[Tensor, ...]:
        current = self.state_from(state)
        out, zipformer = self.backbone.step_fixed(frames, num_valid, current.zipformer)
        st_logits, st = self.st_ctc.step_fixed(out, current.st)
        return (out, self.asr_ctc(out), st_logits, *ZipformerGraphState(zipformer, st).tensors())
