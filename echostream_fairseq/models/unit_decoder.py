"""Text-to-unit: a causal Transformer encoder over the MT decoder's states, then a
non-autoregressive unit decoder trained with CTC.

The unit decoder repeats every text state ``upsample_rate`` times (StreamSpeech: 25), adds
positions, and runs Transformer layers whose self-attention is causal over the upsampled positions
and whose cross-attention to the text states follows a wait-k mask
(:func:`~echostream_fairseq.modules.masks.waitk_text_mask`). A CTC projection over the unit
dictionary (blank = index 0) gives the units in one pass. Both stacks are causal, so the units of
text already written do not change when more text arrives: speech can be produced incrementally.
Each stack has a ``step_rows`` for that: new text states of several streams at once, over their
left-padded :class:`LayerCache` lists (explicit data in and out), each row equal to its stream
alone and to the full forward on the concatenated input.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from echostream_fairseq.modules.masks import causal_mask, waitk_text_mask
from echostream_fairseq.modules.positions import sinusoidal_rows
from echostream_fairseq.modules.transformer_layer import LayerCache, TransformerLayer, padded_step

__all__ = ["T2UEncoder", "CTCUnitDecoder"]


class T2UEncoder(nn.Module):
    """Causal Transformer over text states.

    Args:
        input_dim: size of the MT decoder states it reads.
        embed_dim, ffn_dim, num_layers, num_heads: sizes.
    """

    def __init__(self, input_dim: int, embed_dim: int, ffn_dim: int, num_layers: int, num_heads: int,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.proj = nn.Identity() if input_dim == embed_dim else nn.Linear(input_dim, embed_dim)
        self.layers = nn.ModuleList(TransformerLayer(embed_dim, num_heads, ffn_dim, dropout) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(embed_dim)

    def forward(self, text_states: Tensor) -> Tensor:
        """``[B, L, input_dim]`` -> ``[B, L, embed_dim]`` (padding rows are ignored downstream)."""
        x = self.proj(text_states)
        mask = causal_mask(x.size(1), device=x.device)
        for layer in self.layers:
            x, _ = layer(x, mask)
        return self.final_norm(x)

    def step_rows(self, text_states: Tensor, caches: List[LayerCache], self_valid: Tensor, self_window: int = 0
                  ) -> Tuple[Tensor, List[LayerCache], Tensor]:
        """New text states ``[B, t, input_dim]`` of several streams -> ``[B, t, embed_dim]``.

        ``caches`` and ``self_valid`` ``[B, P]`` are the streams' left-padded caches
        (:func:`~echostream_fairseq.modules.transformer_layer.pad_caches`); each new state attends
        at most ``self_window`` earlier ones (0: all). Returns the outputs, the caches and the new
        valid mask; row ``b`` equals stream ``b`` stepped alone.
        """
        x, caches, self_valid = padded_step(self.layers, self.proj(text_states), caches, self_valid, None, self_window)
        return self.final_norm(x), caches, self_valid


class CTCUnitDecoder(nn.Module):
    """Upsampled text states -> unit logits.

    Args:
        embed_dim: size of the T2U states (kept throughout).
        num_units: output size (unit dictionary including specials; blank = 0).
        upsample_rate: positions per text state ``r``.
        ffn_dim, num_layers, num_heads: layer sizes.
    """

    def __init__(self, embed_dim: int, num_units: int, upsample_rate: int, ffn_dim: int, num_layers: int,
                 num_heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        if upsample_rate < 1:
            raise ValueError(f"upsample_rate must be >= 1, got {upsample_rate}")
        self.embed_dim, self.upsample_rate = embed_dim, upsample_rate
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(embed_dim, num_heads, ffn_dim, dropout, memory_dim=embed_dim) for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(embed_dim)
        self.proj = nn.Linear(embed_dim, num_units)

    def forward(
        self, text: Tensor, text_lengths: Tensor, k2: int = 0, n2: Optional[int] = None
    ) -> Tuple[Tensor, Tensor]:
        """Args:
            text: ``[B, L, D]`` T2U states.
            text_lengths: ``[B]`` valid text states.
            k2, n2: wait-k lag and stride over text; ``n2=None`` lets every position see all text.

        Returns:
            logits ``[B, L * r, V]`` and their valid lengths ``[B]`` (``text_lengths * r``).
        """
        B, L, D = text.shape
        r = self.upsample_rate
        x = text.repeat_interleave(r, dim=1)  # [B, L*r, D]
        pos = sinusoidal_rows(torch.arange(L * r, device=x.device), D).to(dtype=x.dtype)
        x = self.dropout(x + pos.unsqueeze(0))
        up_lengths = text_lengths * r
        self_mask = causal_mask(L * r, device=text.device)
        text_valid = torch.arange(L, device=text.device).unsqueeze(0) < text_lengths.unsqueeze(1)  # [B, L]
        if n2 is None:
            cross_mask = text_valid.unsqueeze(1)  # [B, 1, L]
        else:
            cross_mask = waitk_text_mask(L, r, k2, n2, text_lengths)
        for layer in self.layers:
            x, _ = layer(x, self_mask, text, cross_mask)
        return self.proj(self.final_norm(x)), up_lengths

    def step_rows(self, text: Tensor, text_positions: Tensor, caches: List[LayerCache], self_valid: Tensor,
                  memory_valid: Tensor, text_window: int = 0) -> Tuple[Tensor, List[LayerCache], Tensor, Tensor]:
        """Units for one new T2U state of each of several streams (inference; wait-k with
        ``k2 = 0, n2 = 1``, as trained).

        Args:
            text: ``[B, 1, D]`` the new T2U state of each stream; ``text_positions`` ``[B]``: its
                number among the stream's text states.
            caches, self_valid ``[B, P]``, memory_valid ``[B, S]``: the streams' left-padded
                caches (:func:`~echostream_fairseq.modules.transformer_layer.pad_caches`); the
                memory is the text states, the self positions the upsampled ones.
            text_window: text states kept for cross-attention, and ``text_window * r`` upsampled
                positions for self-attention (0: all).

        Returns:
            logits ``[B, r, V]``, the caches and the two new valid masks; row ``b`` equals
            stream ``b`` stepped alone. A text state's positions see every kept text state up to
            it, so feeding states one at a time is the wait-k mask of training.
        """
        if text.size(1) != 1:
            raise ValueError(f"step_rows takes one new text state per stream, got {text.size(1)}")
        B, r = text.size(0), self.upsample_rate
        positions = text_positions.unsqueeze(1) * r + torch.arange(r, device=text.device).unsqueeze(0)  # [B, r]
        x = text.repeat_interleave(r, dim=1)
        x = x + sinusoidal_rows(positions.reshape(-1), self.embed_dim).to(x.dtype).view(B, r, self.embed_dim)
        memory_valid = torch.cat([memory_valid, memory_valid.new_ones(B, 1)], dim=1)
        trim = text_window > 0 and memory_valid.size(1) > text_window
        with_memory = []
        for layer, cache in zip(self.layers, caches):
            key, value = layer.cross_attn.project_kv(text)
            if cache.cross_key is not None:
                key, value = torch.cat([cache.cross_key, key], dim=2), torch.cat([cache.cross_value, value], dim=2)
            if trim:
                key, value = key[:, :, -text_window:], value[:, :, -text_window:]
            with_memory.append(LayerCache(cache.self_key, cache.self_value, key, value))
        if trim:
            memory_valid = memory_valid[:, -text_window:]
        y, caches, self_valid = padded_step(self.layers, x, with_memory, self_valid, memory_valid, text_window * r)
        return self.proj(self.final_norm(y)), caches, self_valid, memory_valid
