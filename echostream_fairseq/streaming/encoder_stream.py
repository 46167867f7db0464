"""Stream fbank frames through an :class:`EchoStreamSpeechEncoder`, chunk by chunk.

Each call takes the new fbank frames of a chunk (any number, possibly 0) and returns the encoder
frames it completes. The subsampler advances by its cache; its output frames wait in ``pending``
until a whole segment plus its right context is there, then the backbone steps. ``finish=True``
appends the end-of-utterance right context (zero frames) and flushes, the last segment possibly
short. The result equals the encoder's full forward on the concatenated frames.

With the Emformer and Zipformer backbones the state is bounded (caches of fixed size); with the
chunk Conformer baseline the backbone state is the whole prefix, re-encoded at every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple

import torch
from torch import Tensor

from echostream_fairseq.modules.subsampler import SubsamplerState

__all__ = ["EncoderStreamState", "init_encoder_stream", "encoder_stream_step"]


@dataclass(frozen=True)
class EncoderStreamState:
    """Attributes:
        subsampler: the subsampler's convolution caches.
        pending: ``[B, t, D]`` subsampled frames not yet consumed by the backbone
            (``t < segment_length + right_context_length``).
        backbone: the backbone's state (``EmformerState`` / ``ZipformerState`` / ``ConformerState``), ``None`` before the first step.
        input_frames: fbank frames received so far.
        finished: the stream was finished; no further frames are taken.
    """

    subsampler: SubsamplerState
    pending: Tensor
    backbone: Any
    input_frames: int
    finished: bool


def init_encoder_stream(encoder, batch_size: int = 1) -> EncoderStreamState:
    """A fresh stream for ``encoder`` (an ``EchoStreamSpeechEncoder``)."""
    p = next(encoder.parameters())
    d = encoder.input_norm.normalized_shape[0]
    return EncoderStreamState(
        subsampler=encoder.subsample.init_state(batch_size, p.device, p.dtype),
        pending=torch.zeros(batch_size, 0, d, device=p.device, dtype=p.dtype),
        backbone=None,
        input_frames=0,
        finished=False,
    )


def encoder_stream_step(
    encoder, features: Tensor, state: EncoderStreamState, finish: bool = False
) -> Tuple[Tensor, EncoderStreamState]:
    """Feed ``features`` ``[B, t, C]`` (fbank frames of one chunk) and return ``[B, t', D]``.

    ``finish=True`` marks the end of the stream and returns every remaining frame.
    """
    if not isinstance(state, EncoderStreamState):
        raise ValueError(f"state must be an EncoderStreamState, got {type(state).__name__}")
    if state.finished:
        raise ValueError("the stream is finished; start a new one with init_encoder_stream")
    if features.dim() != 3 or features.size(-1) != encoder.input_dim:
        raise ValueError(f"features must have shape [batch, time, {encoder.input_dim}], got {list(features.shape)}")
    if features.size(0) != state.pending.size(0):
        raise ValueError(f"the stream has {state.pending.size(0)} rows but the chunk has {features.size(0)}")
    backbone = encoder.backbone
    # input frames per step (the Zipformer's chunk is twice its output segment)
    S, R = backbone.input_segment_length, backbone.right_context_length

    frames, sub_state = encoder.subsample.step(features, state.subsampler)
    frames = encoder.dropout(encoder.input_norm(frames))
    pending = torch.cat([state.pending, frames], dim=1)
    if finish:
        pending = torch.cat([pending, pending.new_zeros(pending.size(0), R, pending.size(2))], dim=1)

    outputs = []
    bb_state = state.backbone
    # whole segments whose right context has arrived; when finishing, also the short last one
    while pending.size(1) - R >= (1 if finish else S):
        s = min(S, pending.size(1) - R)
        out, bb_state = backbone.step(pending[:, :s], pending[:, s : s + R] if R > 0 else None, bb_state)
        outputs.append(out)
        pending = pending[:, s:]
    if finish:
        pending = pending[:, :0]
    out = torch.cat(outputs, dim=1) if outputs else pending.new_zeros(pending.size(0), 0, encoder.output_dim)
    return out, EncoderStreamState(
        subsampler=sub_state,
        pending=pending,
        backbone=bb_state,
        input_frames=state.input_frames + features.size(1),
        finished=finish,
    )
