"""Text-to-unit: a causal Transformer encoder over the MT decoder's states, then a
non-autoregressive unit decoder trained with CTC.

The unit decoder repeats every text state ``upsample_rate`` times (StreamSpeech: 25), adds
positions, and runs Transformer layers whose self-attention is causal over the upsampled positions
and whose cross-attention to the text states follows a wait-k mask
(:func:`~echostream_fairseq.modules.masks.waitk_text_mask`). A CTC projection over the unit
dictionary (blank = index 0) gives the units in one pass. Both stacks are causal, so the units of
text already written do not change when more text arrives: speech can be produced incrementally.
Each stack has a :meth:`step` for that (explicit :class:`LayerCache` lists in and out, equal to its
full forward on the concatenated input).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from echostream_fairseq.modules.masks import causal_mask, waitk_text_mask
from echostream_fairseq.modules.positions import sinusoidal_rows
from echostream_fairseq.modules.transformer_layer import LayerCache, TransformerLayer, stack_step, stack_step_packed

__all__ = ["T2UEncoder", "CTCUnitDecoder", "UNIT_POSITIONS"]

# the unit decoder's positions: numbered along the upsampled sequence, or StreamSpeech's one row
UNIT_POSITIONS = ("sequence", "streamspeech")
STREAMSPEECH_POSITION_ROW = 2


class T2UEncoder(nn.Module):
    """Causal Transformer over text states.

    Args:
        input_dim: size of the MT decoder states it reads.
        embed_dim, ffn_dim, num_layers, num_heads: sizes.
    """

    def __init__(
        self, input_dim: int, embed_dim: int, ffn_dim: int, num_layers: int, num_heads: int, dropout: float = 0.1
    ) -> None:
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

    def step(
        self, text_states: Tensor, caches: Optional[List[LayerCache]], self_window: int = 0
    ) -> Tuple[Tensor, List[LayerCache]]:
        """New text states ``[B, n, input_dim]`` -> ``[B, n, embed_dim]``, each attending at most
        ``self_window`` earlier ones (0: all); ``caches`` from the previous step (``None``: empty)."""
        x, caches = stack_step(self.layers, self.proj(text_states), caches, self_window)
        return self.final_norm(x), caches

    def step_packed(
        self, texts: Sequence[Tensor], caches: Sequence[Optional[List[LayerCache]]], self_window: int = 0
    ) -> Tuple[List[Tensor], List[List[LayerCache]]]:
        """:meth:`step` for several streams (``[1, n_i, input_dim]`` each, with its own caches): the
        projections and feed-forward blocks run once over all of them (inference)."""
        sizes = [t.size(1) for t in texts]
        x, caches = stack_step_packed(
            self.layers, self.proj(torch.cat(list(texts), dim=1)).split(sizes, dim=1), caches, self_window
        )
        return list(self.final_norm(x).split(sizes, dim=1)), caches


class CTCUnitDecoder(nn.Module):
    """Upsampled text states -> unit logits.

    Args:
        embed_dim: size of the T2U states (kept throughout).
        num_units: output size (unit dictionary including specials; blank = 0).
        upsample_rate: positions per text state ``r``.
        ffn_dim, num_layers, num_heads: layer sizes.
        positions: ``sequence`` (each upsampled position its own sinusoid row) or ``streamspeech``
            (every position the row StreamSpeech's unit decoder gives them; an imported checkpoint's).
    """

    def __init__(
        self,
        embed_dim: int,
        num_units: int,
        upsample_rate: int,
        ffn_dim: int,
        num_layers: int,
        num_heads: int,
        dropout: float = 0.1,
        positions: str = "sequence",
    ) -> None:
        super().__init__()
        if upsample_rate < 1:
            raise ValueError(f"upsample_rate must be >= 1, got {upsample_rate}")
        if positions not in UNIT_POSITIONS:
            raise ValueError(f"unit decoder positions must be one of {UNIT_POSITIONS}, got {positions!r}")
        self.embed_dim, self.upsample_rate, self.positions = embed_dim, upsample_rate, positions
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
        pos = sinusoidal_rows(self._position_numbers(0, L * r, x.device), D).to(dtype=x.dtype)
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

    def step(
        self,
        text: Tensor,
        caches: Optional[List[LayerCache]],
        text_position: int,
        text_window: int = 0,
        lookahead: int = 0,
        new_memory: Optional[Tensor] = None,
        memory_end: Optional[int] = None,
    ) -> Tuple[Tensor, List[LayerCache]]:
        """Units for T2U states (inference; the wait-k mask with ``k2 = lookahead, n2 = 1``).

        Args:
            text: ``[B, n, D]`` the T2U states whose units are computed now (``n`` may be 0); the
                first is text state number ``text_position``.
            caches: from the previous step (``None``: empty).
            text_window: text states kept for cross-attention beyond the lookahead, and
                ``text_window * r`` upsampled positions for self-attention (0: all).
            lookahead: text states after its own that a position's cross-attention sees. With
                ``lookahead > 0`` the caller holds a state's units back until the states after it
                have arrived (or the text is complete) and passes them as ``new_memory`` first.
            new_memory: ``[B, m, D]`` T2U states that arrived since the last call, appended to the
                cross-attention memory (``None``: ``text``, the states computed now).
            memory_end: text states in the memory after this call (``None``: ``text_position + n``).

        Returns:
            logits ``[B, n * r, V]`` and the caches.
        """
        n, r = text.size(1), self.upsample_rate
        if new_memory is None:
            new_memory = text
        if memory_end is None:
            memory_end = text_position + n
        x, owner = self.upsampled(text, text_position)
        memory_window = _memory_window(text_window, lookahead)
        y, caches = stack_step(
            self.layers,
            x,
            caches,
            text_window * r,
            new_memory=new_memory,
            memory_window=memory_window,
            memory_mask_fn=_memory_mask(owner, memory_end, lookahead),
        )
        return self.proj(self.final_norm(y)), caches

    def step_packed(
        self,
        steps: Sequence[Tuple[Tensor, Optional[List[LayerCache]], int, Tensor, int]],
        text_window: int = 0,
        lookahead: int = 0,
    ) -> Tuple[List[Tensor], List[List[LayerCache]]]:
        """:meth:`step` for several streams, ``(text, caches, text_position, new_memory, memory_end)``
        each (``text`` ``[1, n_i, D]``): the projections and feed-forward blocks run once over all of
        them (inference). Returns each stream's logits ``[1, n_i * r, V]`` and caches."""
        xs, masks = [], []
        for text, _, text_position, _, memory_end in steps:
            x, owner = self.upsampled(text, text_position)
            xs.append(x)
            masks.append(_memory_mask(owner, memory_end, lookahead))
        memory_window = _memory_window(text_window, lookahead)
        y, caches = stack_step_packed(
            self.layers,
            xs,
            [s[1] for s in steps],
            text_window * self.upsample_rate,
            new_memories=[s[3] for s in steps],
            memory_window=memory_window,
            memory_mask_fns=masks,
        )
        return list(self.proj(self.final_norm(y)).split([x.size(1) for x in xs], dim=1)), caches

    def extend_memory(
        self,
        caches: Sequence[Optional[List[LayerCache]]],
        new_memories: Sequence[Tensor],
        text_window: int = 0,
        lookahead: int = 0,
    ) -> List[List[LayerCache]]:
        """The streams' cross-attention memories with new T2U states ``[1, m_i, D]`` appended and
        kept as :meth:`step_packed` keeps them, nothing decoded: for a runtime that decodes the
        positions elsewhere."""
        nothing = [m.new_zeros(1, 0, self.embed_dim) for m in new_memories]
        _, caches = stack_step_packed(
            self.layers,
            nothing,
            caches,
            new_memories=new_memories,
            memory_window=_memory_window(text_window, lookahead),
        )
        return caches

    def _position_numbers(self, first: int, count: int, device) -> Tensor:
        """The sinusoid rows of upsampled positions ``first .. first + count - 1``: their numbers, or
        with ``positions="streamspeech"`` the one row StreamSpeech's unit decoder gives every position
        of an utterance decoded alone (its position embedding reads the batch axis: row
        ``padding_idx + 1`` = 2)."""
        if self.positions == "streamspeech":
            return torch.full((count,), STREAMSPEECH_POSITION_ROW, device=device)
        return torch.arange(first, first + count, device=device)

    def upsampled(self, text: Tensor, text_position: int) -> Tuple[Tensor, Tensor]:
        """``[B, n, D]`` text states from number ``text_position`` -> their ``[B, n * r, D]`` positions
        (each state repeated ``r`` times, plus its sinusoidal position) and the text state each
        position belongs to (``[n * r]``)."""
        n, r = text.size(1), self.upsample_rate
        first = text_position * r
        x = text.repeat_interleave(r, dim=1)
        x = x + sinusoidal_rows(self._position_numbers(first, n * r, text.device), self.embed_dim).to(
            x.dtype
        ).unsqueeze(0)
        return x, text_position + torch.arange(n * r, device=text.device) // r


def _memory_window(text_window: int, lookahead: int) -> int:
    """Text states a cross-attention memory keeps (0: all): the window and the lookahead after it."""
    return text_window + lookahead if text_window > 0 else 0


def _memory_mask(owner: Tensor, memory_end: int, lookahead: int):
    """``f(num_memory) -> [1, len(owner), num_memory]``: a position of text ``i`` sees the memory's
    text states ``<= i + lookahead`` (the memory ends at text state ``memory_end``)."""

    def mask(num_memory: int) -> Tensor:
        j = memory_end - num_memory + torch.arange(num_memory, device=owner.device).unsqueeze(0)
        return (j <= owner.unsqueeze(1) + lookahead).unsqueeze(0)

    return mask
