"""CTC heads on the speech encoder: source subwords (ASR) and target subwords (ST).

The ASR head is a projection of each encoder frame. The ST head first runs causal Transformer
layers (StreamSpeech: 2), because target words must be gathered from several source frames in a
different order. Its self-attention sees at most ``left_context`` past frames, so a streaming
step attends a bounded window whatever the stream's length (0 = the whole past, as StreamSpeech).

Blank is index 0 of each dictionary (see :mod:`echostream_fairseq.modules.ctc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from echostream_fairseq.modules.masks import causal_mask
from echostream_fairseq.modules.transformer_layer import LayerCache, TransformerLayer, stack_step

__all__ = ["CTCHead", "CTCHeadFixedState", "TransformerCTCHead"]


@dataclass(frozen=True)
class CTCHeadFixedState:
    """:class:`TransformerCTCHead`'s caches in fixed shapes, for graphs (ONNX): ``key`` and
    ``value`` ``[B, layers, H, W, d]`` hold the last ``W = left_context`` frames, right-aligned;
    ``count`` ``[B]`` int64 says how many of them are filled (the rest are hidden)."""

    key: Tensor
    value: Tensor
    count: Tensor


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

    # -- streaming in fixed shapes (graph export) ------------------------------------------------

    def initial_fixed_state(self, batch_size: int, device=None, dtype=None) -> CTCHeadFixedState:
        """Empty caches of ``left_context`` frames (a ``ValueError`` when the window is unbounded:
        a fixed shape needs a bound)."""
        if self.left_context < 1 and len(self.layers):
            raise ValueError(
                "the ST CTC layers attend the whole past (--st-ctc-left-context 0), which has no fixed-size "
                "state: retrain or fine-tune with a window (StreamSpeech-sized models use 64) to export them"
            )
        if device is None or dtype is None:
            like = self.final_norm.weight if self.layers else self.head.proj.weight
            device = like.device if device is None else device
            dtype = like.dtype if dtype is None else dtype
        if self.layers:
            attn = self.layers[0].self_attn
            shape = (batch_size, len(self.layers), attn.num_heads, self.left_context, attn.head_dim)
        else:
            shape = (batch_size, 0, 0, 0, 0)
        zeros = torch.zeros(shape, device=device, dtype=dtype)
        return CTCHeadFixedState(zeros, zeros.clone(), torch.zeros(batch_size, dtype=torch.long, device=device))

    def step_fixed(self, x: Tensor, state: CTCHeadFixedState) -> Tuple[Tensor, CTCHeadFixedState]:
        """:meth:`step` over :class:`CTCHeadFixedState`: new frames ``[B, t, D]`` -> logits
        ``[B, t, V]`` (equal to :meth:`step`'s within rounding) and the next state."""
        if not self.layers:
            return self.head(self.final_norm(x)), state
        W = self.left_context
        j = torch.arange(W, device=x.device)
        new = torch.ones_like(x[:, :, 0], dtype=torch.long)  # [B, t]
        q = new.cumsum(dim=1) - 1  # each new frame's index, traced as a shape
        keys = torch.cat([j.unsqueeze(0).expand(x.size(0), -1), W + q], dim=1)  # key positions [B, W + t]
        filled = torch.cat([j.unsqueeze(0) >= W - state.count.unsqueeze(1), new > 0], dim=1)  # [B, W + t]
        at = (W + q).unsqueeze(2)  # [B, t, 1]
        self_mask = (keys.unsqueeze(1) <= at) & (keys.unsqueeze(1) >= at - W) & filled.unsqueeze(1)
        keys_out, values_out = [], []
        for i, layer in enumerate(self.layers):
            x, cache = layer(x, self_mask, None, None, LayerCache(state.key[:, i], state.value[:, i]))
            keys_out.append(cache.self_key[:, :, cache.self_key.size(2) - W :])
            values_out.append(cache.self_value[:, :, cache.self_value.size(2) - W :])
        count = (state.count + new.sum(dim=1)).clamp(max=W)
        return self.head(self.final_norm(x)), CTCHeadFixedState(
            torch.stack(keys_out, dim=1), torch.stack(values_out, dim=1), count
        )
