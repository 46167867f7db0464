"""The Conformer convolution module, causal, with an incremental ``step``.

LayerNorm -> pointwise (D -> 2D) -> GLU -> causal depthwise convolution (kernel ``K``) ->
LayerNorm -> SiLU -> pointwise (D -> D) -> dropout. LayerNorm stands where the Conformer paper has
BatchNorm, so padding frames never reach any statistics and a stream needs no running averages.

Two modes share the weights: :meth:`CausalConvolutionModule.forward` on whole (padded) utterances,
and :meth:`CausalConvolutionModule.step` on one chunk with the last ``K - 1`` gated frames as its
cache. Streaming an utterance chunk by chunk equals the forward on it (tested).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from echostream_fairseq.modules.packed_linear import PackedLinear

__all__ = ["CausalConvolutionModule"]


class CausalConvolutionModule(nn.Module):
    """Conformer convolution module with a causal depthwise convolution.

    Args:
        embed_dim: model dimension ``D``.
        kernel_size: depthwise kernel ``K``; an output frame sees itself and ``K - 1`` frames before it.
        dropout: dropout on the output.
    """

    def __init__(self, embed_dim: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"convolution kernel size must be >= 1, got {kernel_size}")
        self.embed_dim = embed_dim
        self.kernel_size = kernel_size
        self.layer_norm = nn.LayerNorm(embed_dim)
        # PackedLinear: nn.Linear's parameters, its weight packed once for the streaming step
        self.pointwise_in = PackedLinear(embed_dim, 2 * embed_dim)
        self.depthwise = nn.Conv1d(embed_dim, embed_dim, kernel_size, groups=embed_dim)
        self.depthwise_norm = nn.LayerNorm(embed_dim)
        self.pointwise_out = PackedLinear(embed_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)

    def _gate(self, x: Tensor) -> Tensor:
        return F.glu(self.pointwise_in(self.layer_norm(x)), dim=-1)

    def _output(self, gated_window: Tensor) -> Tensor:
        """``[B, K - 1 + T, D]`` gated frames -> ``[B, T, D]``."""
        x = self.depthwise(gated_window.transpose(1, 2)).transpose(1, 2)
        return self.dropout(self.pointwise_out(F.silu(self.depthwise_norm(x))))

    def forward(self, x: Tensor, padding: Optional[Tensor]) -> Tensor:
        """``x`` ``[B, T, D]``; ``padding`` ``[B, T]`` True at padding frames (zeroed before the
        convolution), or ``None``. Returns ``[B, T, D]``."""
        gated = self._gate(x)
        if padding is not None:
            gated = gated.masked_fill(padding.unsqueeze(-1), 0.0)
        return self._output(F.pad(gated, (0, 0, self.kernel_size - 1, 0)))

    def initial_cache(self, batch_size: int, device=None, dtype=None) -> Tensor:
        """The cache of a stream that has not started: ``K - 1`` zero frames, ``[B, K - 1, D]``
        (the zero padding that :meth:`forward` puts before the first frame)."""
        return torch.zeros(batch_size, self.kernel_size - 1, self.embed_dim, device=device, dtype=dtype)

    def step(self, x: Tensor, cache: Tensor) -> Tuple[Tensor, Tensor]:
        """One chunk: ``x`` ``[B, s, D]`` and the cache ``[B, K - 1, D]``; returns the output
        ``[B, s, D]`` and the new cache (the last ``K - 1`` gated frames)."""
        window = torch.cat([cache, self._gate(x)], dim=1)
        return self._output(window), window[:, window.size(1) - cache.size(1) :]
