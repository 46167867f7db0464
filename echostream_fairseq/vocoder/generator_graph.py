"""A unit generator over right-padded rows as one traceable module, for an ONNX graph
(``echostream-export --vocoder``): the CodeHiFiGAN's, or the iSTFT generator's with its inverse FFT
as matrix products; and the check of which vocoders have one.

Inputs ``frames`` ``[B, T]`` int64 (frame-level units) and ``lengths`` ``[B]`` int64 (real frames
per row); output ``audio`` ``[B, T * frame_hop]`` float, zeros past each row's end, each row equal
to the row synthesised alone (the masks of
:func:`~echostream_fairseq.vocoder.code_hifigan.generator_forward`, as tensors).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from echostream_fairseq.vocoder.code_hifigan import CodeHiFiGANUnitVocoder, generator_forward

__all__ = ["GeneratorGraph", "graph_refusal"]


def graph_refusal(vocoder) -> Optional[str]:
    """Why ``vocoder`` (a :class:`~echostream_fairseq.vocoder.base.UnitVocoder`) has no graph, or
    ``None``: the CodeHiFiGAN's and the iSTFT generator have one, the causal CodeHiFiGAN not yet."""
    if not isinstance(vocoder, CodeHiFiGANUnitVocoder):
        return f"the {type(vocoder).__name__} has no graph"
    if vocoder.causal:
        return "the causal CodeHiFiGAN has no graph yet (its per-layer caches)"
    return None


class GeneratorGraph(nn.Module):
    """Args: ``vocoder``: a :class:`CodeHiFiGANUnitVocoder` that :func:`graph_refusal` accepts."""

    def __init__(self, vocoder: CodeHiFiGANUnitVocoder) -> None:
        super().__init__()
        why = graph_refusal(vocoder)
        if why is not None:
            raise ValueError(why)
        self.generator = vocoder.generator
        self.istft = vocoder.istft

    def forward(self, frames: Tensor, lengths: Tensor) -> Tensor:
        if self.istft:
            return self.generator.forward_for_graph(frames, lengths)
        positions = frames.size(1)

        def valid(x: Tensor) -> Tensor:
            scale = x.size(-1) // positions  # a constant of the layer: its upsampling so far
            steps = torch.ones_like(x[0, 0], dtype=torch.long).cumsum(0) - 1
            return x * (steps[None, :] < lengths[:, None] * scale).unsqueeze(1).to(x.dtype)

        return generator_forward(self.generator, frames, valid)
