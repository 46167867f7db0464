"""The encoder's streaming step after the subsampler, with both CTC heads, as one traceable module.

Its state is explicit and of fixed shape (:class:`~echostream_fairseq.modules.emformer.EmformerFixedState`,
:class:`~echostream_fairseq.models.ctc_heads.CTCHeadFixedState`), so a graph made from it has the
same inputs on the first chunk of a stream as on the thousandth, and streams at any point stack
along its batch axis.

Inputs, in order (``B`` streams, ``s + R`` frames: a chunk of ``s <= chunk_length`` frames and
its ``R`` look-ahead frames; ``L`` layers, ``M + Lc`` Emformer cache slots, ``W`` ST window):

========================  ===================================  =========
name                      shape                                dtype
========================  ===================================  =========
``frames``                ``[B, s + R, D]``                    float
``key_value``             ``[B, L, M + Lc, 2, H, D / H]``      float
``num_memory``            ``[B]``                              int64
``num_left``              ``[B]``                              int64
``conv_cache``            ``[B, L, K - 1, D]``                 float
``st_key``, ``st_value``  ``[B, L_st, H_st, W, d_st]``         float
``st_count``              ``[B]``                              int64
========================  ===================================  =========

Outputs: ``encoder_out`` ``[B, s, D]``, ``asr_logits`` ``[B, s, V_src]``, ``st_logits``
``[B, s, V_tgt]``, then the next state under the input names prefixed with ``next_``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from echostream_fairseq.export.zipformer_graph import ZipformerStepGraph
from echostream_fairseq.models.ctc_heads import CTCHeadFixedState
from echostream_fairseq.modules.emformer import Emformer, EmformerFixedState
from echostream_fairseq.modules.zipformer import Zipformer

__all__ = [
    "EncoderGraphState",
    "EncoderStepGraph",
    "encoder_step_graph",
    "STATE_NAMES",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
]

STATE_NAMES = ("key_value", "num_memory", "num_left", "conv_cache", "st_key", "st_value", "st_count")
INPUT_NAMES = ("frames",) + STATE_NAMES
OUTPUT_NAMES = ("encoder_out", "asr_logits", "st_logits") + tuple("next_" + n for n in STATE_NAMES)


@dataclass(frozen=True)
class EncoderGraphState:
    """The graph's state, batch-first tensors named as its inputs (:data:`STATE_NAMES`)."""

    key_value: Tensor
    num_memory: Tensor
    num_left: Tensor
    conv_cache: Tensor
    st_key: Tensor
    st_value: Tensor
    st_count: Tensor

    def tensors(self) -> Tuple[Tensor, ...]:
        return tuple(getattr(self, name) for name in STATE_NAMES)


def encoder_step_graph(model: nn.Module):
    """The encoder-step graph module of ``model``'s encoder: :class:`EncoderStepGraph` for an
    Emformer, :class:`~.zipformer_graph.ZipformerStepGraph` for a Zipformer. Both have
    ``input_names``, ``output_names``, ``initial_state``, ``state_from``, ``chunk_inputs`` and
    ``example_inputs``; a ``ValueError`` for an encoder without a bounded state."""
    backbone = model.encoder.backbone
    if isinstance(backbone, Emformer):
        return EncoderStepGraph(model)
    if isinstance(backbone, Zipformer):
        return ZipformerStepGraph(model)
    raise ValueError(
        f"only Emformer and Zipformer encoders export to a graph; this checkpoint's encoder is "
        f"{model.encoder.encoder_type!r}, which has no bounded streaming state"
    )


class EncoderStepGraph(nn.Module):
    """The Emformer's fixed-shape step, the ASR CTC head and the ST CTC head's fixed-shape step.

    Args:
        model: an ``EchoStreamModel`` whose encoder is an Emformer (a ``ValueError`` otherwise,
            or when its ST CTC window is unbounded).
    """

    state_names, input_names, output_names = STATE_NAMES, INPUT_NAMES, OUTPUT_NAMES

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        backbone = model.encoder.backbone
        if not isinstance(backbone, Emformer):
            raise ValueError(f"not an Emformer encoder: {model.encoder.encoder_type!r}")
        self.backbone = backbone
        self.trained_chunk_length = model.encoder.trained_chunk_length
        self.asr_ctc = model.asr_ctc
        self.st_ctc = model.st_ctc
        model.st_ctc.initial_fixed_state(1)  # refuses an unbounded ST window before any tracing

    def initial_state(self, batch_size: int, device=None, dtype=None) -> EncoderGraphState:
        emformer = self.backbone.initial_fixed_state(batch_size, device, dtype)
        st = self.st_ctc.initial_fixed_state(batch_size, device, dtype)
        return EncoderGraphState(
            emformer.key_value, emformer.num_memory, emformer.num_left, emformer.conv_cache, st.key, st.value, st.count
        )

    def state_from(self, tensors) -> EncoderGraphState:
        """The state from the graph's ``next_`` outputs (in :data:`STATE_NAMES` order)."""
        return EncoderGraphState(*tensors)

    def chunk_inputs(self, chunk: Tensor, right_context: Optional[Tensor]) -> Tuple[Dict[str, Tensor], int]:
        """The graph's inputs for ``chunk`` ``[B, s, D]`` and its look-ahead, and how many output
        frames are real (all ``s``)."""
        frames = chunk if right_context is None else torch.cat([chunk, right_context], dim=1)
        return {"frames": frames}, chunk.size(1)

    def example_inputs(self, batch_size: int, dtype) -> Tuple[Tensor, ...]:
        """Inputs to trace the graph with: a whole chunk and its look-ahead."""
        emformer = self.backbone
        frames = torch.randn(
            batch_size, emformer.chunk_length + emformer.right_context_length, emformer.input_dim, dtype=dtype
        )
        return (frames, *self.initial_state(batch_size, None, dtype).tensors())

    def forward(
        self,
        frames: Tensor,
        key_value: Tensor,
        num_memory: Tensor,
        num_left: Tensor,
        conv_cache: Tensor,
        st_key: Tensor,
        st_value: Tensor,
        st_count: Tensor,
    ) -> Tuple[Tensor, ...]:
        R = self.backbone.right_context_length
        s = frames.size(1) - R
        chunk, right_context = (frames[:, :s], frames[:, s:]) if R > 0 else (frames, None)
        out, emformer = self.backbone.step_fixed(
            chunk, right_context, EmformerFixedState(key_value, num_memory, num_left, conv_cache)
        )
        st_logits, st = self.st_ctc.step_fixed(out, CTCHeadFixedState(st_key, st_value, st_count))
        asr_logits = self.asr_ctc(out)
        return (
            out,
            asr_logits,
            st_logits,
            emformer.key_value,
            emformer.num_memory,
            emformer.num_left,
            emformer.conv_cache,
            st.key,
            st.value,
            st.count,
        )
