"""CTC heads on the speech encoder: source subwords (ASR) and target subwords (ST).

The ASR head is a projection of each encoder frame. The ST head first runs causal Transformer
layers (StreamSpeech: 2), because target words must be gathered from several source frames in a
different order. Its self-attention sees at most ``left_context`` past frames, so a streaming
step attends a bounded window whatever the stream's length (0 = the whole past, as StreamSpeech).

Blank is index 0 of each dictionary (see :mod:`echostream_fairseq.modules.ctc`).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from torch import Tensor, nn

from echostream_fairseq.modules.masks import causal_mask
from echostream_fairseq.modules.transformer_layer import LayerCache, TransformerLayer, stack_step

__all__ = ["CTCHead", "TransformerCTCHead"]


class CTCHead(nn.Module):
    """``[B, T, D]`` -> logits ``[B, T, V]``."""

    def __init__(self, input_dim: int, vocab_size: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(input_dim, vocab_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.dropout(x))


class TransformerCTCHead(nn.Module):
    """Causal Transformer layers then a CTC projection (the ST CTC head). With no layers it is the
    bare projection (StreamSpeech's ST CTC head as its configs build it).

    Args:
        input_dim: encoder size ``D`` (the layers keep it).
        vocab_size: output dictionary size.
        num_layers, num_heads, ffn_dim: layer sizes.
        left_context: past frames each frame may attend (0: unbounded).
    """

    def __init__(
        self,
        input_dim: int,
        vocab_size: int,
        num_layers: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float = 0.0,
        left_context: int = 0,
    ) -> None:
        super().__init__()
        self.left_context = left_context
        self.layers = nn.ModuleList(TransformerLayer(input_dim, num_heads, ffn_dim, dropout) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(input_dim) if num_layers else nn.Identity()
        self.head = CTCHead(input_dim, vocab_size, dropout)

    def forward(self, x: Tensor, padding_mask: Optional[Tensor] = None) -> Tensor:
        """``x`` ``[B, T, D]``, ``padding_mask`` ``[B, T]`` (True = padding) -> logits ``[B, T, V]``."""
        mask = causal_mask(x.size(1), self.left_context, device=x.device)
        for layer in self.layers:
            x, _ = layer(x, mask)
        return self.head(self.final_norm(x))

    def step(self, x: Tensor, caches: Optional[List[LayerCache]]) -> Tuple[Tensor, List[LayerCache]]:
        """Streaming: new frames ``[B, t, D]`` with the caches of earlier frames -> logits ``[B, t, V]``.

        Caches keep at most ``left_context`` frames (all frames when it is 0), so with a bounded
        window the per-step cost does not grow with the stream.
        """
        x, caches = stack_step(self.layers, x, caches, self.left_context)
        return self.head(self.final_norm(x)), caches
