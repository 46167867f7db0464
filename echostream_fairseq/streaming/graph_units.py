"""The units' stage on exported graphs: :class:`GraphT2UEncoder` and :class:`GraphUnitDecoder`
answer the ``step_packed`` calls :class:`~echostream_fairseq.streaming.units.UnitWriter` makes of
the model's T2U encoder and unit decoder, with the same caches (one
:class:`~echostream_fairseq.modules.transformer_layer.LayerCache` per layer and stream), so the
writer is the same whichever runtime it is given.

One call of each graph takes every new text state of every stream of a tick: the new positions
padded on the right to the longest stream's, the caches padded on the left. The masks are built
here with the windows :func:`~echostream_fairseq.modules.transformer_layer.stack_step` keeps, so
each stream's outputs equal the torch step's. Upsampling the unit decoder's input and projecting
new text states into its cross-attention memory stay in torch.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from echostream_fairseq.modules.transformer_layer import LayerCache

__all__ = ["GraphT2UEncoder", "GraphUnitDecoder"]


def _pad_left(parts: Sequence[Optional[Tensor]], heads: int, head_dim: int) -> Tuple[np.ndarray, Tensor]:
    """Streams' ``[1, H, n_i, d]`` (or ``None``: none) as one ``[B, H, max n_i, d]`` array padded
    on the left, and ``n_i``."""
    lengths = torch.tensor([0 if t is None else t.size(2) for t in parts])
    width = int(lengths.max()) if len(parts) else 0
    if bool((lengths == width).all()) and width:  # nothing to pad (one stream, or a steady state)
        return np.ascontiguousarray(torch.cat(list(parts)).numpy()), lengths
    out = np.zeros((len(parts), heads, width, head_dim), dtype=np.float32)
    for row, t in enumerate(parts):
        if t is not None and t.size(2):
            out[row, :, width - t.size(2) :] = t[0].numpy()
    return out, lengths


def _pad_right(parts: Sequence[Tensor]) -> Tensor:
    """``[1, t_i, D]`` each -> ``[B, max t_i, D]``, zeros after each row's own."""
    width = max(t.size(1) for t in parts)
    return torch.cat([torch.nn.functional.pad(t, (0, 0, 0, width - t.size(1))) for t in parts])


def _self_mask(held: Tensor, width: int, new: int, window: int) -> np.ndarray:
    """``[B, new, width + new]``: new position ``q`` of a row holding ``held`` cached positions
    (the last of ``width`` columns) sees its own cached and new positions up to itself, no more
    than ``window`` before it (0: no bound), as ``stack_step``'s causal mask with a left context."""
    own = torch.arange(width + new).view(1, 1, -1) - (width - held).view(-1, 1, 1)
    query = held.view(-1, 1, 1) + torch.arange(new).view(1, -1, 1)
    mask = (own >= 0) & (own <= query)
    if window > 0:
        mask &= own >= query - window
    return mask.numpy()


def _appended(cache: Optional[Tensor], new: Tensor, window: int) -> Tensor:
    """``new`` ``[1, H, t, d]`` after ``cache``, the last ``window`` kept (0: all)."""
    out = new if cache is None else torch.cat([cache, new], dim=2)
    return out[:, :, -window:] if window > 0 and out.size(2) > window else out


class _GraphStack:
    """A layer stack's graph, stepping many streams' new positions in one call."""

    def __init__(self, layers, session) -> None:
        self.session = session
        attn = layers[0].self_attn
        self.num_layers, self.heads, self.head_dim = len(layers), attn.num_heads, attn.head_dim

    def run(
        self,
        xs: Sequence[Tensor],
        caches: Sequence[List[LayerCache]],
        self_window: int,
        memory_mask: Optional[np.ndarray] = None,
    ) -> Tuple[List[Tensor], List[List[LayerCache]]]:
        """New positions ``[1, t_i, D_in]`` per stream (``t_i >= 1``) over each stream's caches;
        each stream's output ``[1, t_i, ...]`` and its caches with the new positions appended (the
        last ``self_window`` kept). ``memory_mask``: ``[B, max t_i, S]`` (unit decoder)."""
        sizes = [x.size(1) for x in xs]
        T = max(sizes)
        feeds = {"x": np.ascontiguousarray(_pad_right(xs).numpy())}
        held = None
        layer_feeds = {}
        parts = ("self_key", "self_value") + (() if memory_mask is None else ("cross_key", "cross_value"))
        for i in range(self.num_layers):
            for part in parts:
                array, lengths = _pad_left([getattr(c[i], part) for c in caches], self.heads, self.head_dim)
                layer_feeds[f"{part}.{i}"] = array
                if part == "self_key":
                    held = lengths
        feeds["self_mask"] = _self_mask(held, layer_feeds["self_key.0"].shape[2], T, self_window)
        if memory_mask is not None:
            feeds["memory_mask"] = memory_mask
        feeds.update(layer_feeds)
        out = [torch.from_numpy(a) for a in self.session.run(None, feeds)]
        outputs, new_caches = [], []
        for row, (stream, t) in enumerate(zip(caches, sizes)):
            outputs.append(out[0][row : row + 1, :t])
            layers = []
            for i, c in enumerate(stream):
                key, value = out[1 + 2 * i][row : row + 1, :, :t], out[2 + 2 * i][row : row + 1, :, :t]
                layers.append(
                    LayerCache(
                        _appended(c.self_key, key, self_window),
                        _appended(c.self_value, value, self_window),
                        c.cross_key,
                        c.cross_value,
                    )
                )
            new_caches.append(layers)
        return outputs, new_caches


def _empty_caches(caches: Sequence[Optional[List[LayerCache]]], num_layers: int) -> List[List[LayerCache]]:
    return [[LayerCache()] * num_layers if c is None else [LayerCache() if x is None else x for x in c] for c in caches]


class GraphT2UEncoder:
    """Args: ``t2u_encoder``: the model's T2U encoder; ``session``: on its ``t2u_step`` graph."""

    def __init__(self, t2u_encoder, session) -> None:
        self.stack = _GraphStack(t2u_encoder.layers, session)

    def step_packed(
        self, texts: Sequence[Tensor], caches: Sequence[Optional[List[LayerCache]]], self_window: int = 0
    ) -> Tuple[List[Tensor], List[List[LayerCache]]]:
        """As the T2U encoder's ``step_packed``: new text states ``[1, n_i, input_dim]`` per stream."""
        caches = _empty_caches(caches, self.stack.num_layers)
        dim = self.stack.heads * self.stack.head_dim
        outs = [t.new_zeros(1, 0, dim) for t in texts]
        rows = [i for i, t in enumerate(texts) if t.size(1)]
        if rows:
            ys, stepped = self.stack.run([texts[i].float() for i in rows], [caches[i] for i in rows], self_window)
            for k, i in enumerate(rows):
                outs[i], caches[i] = ys[k], stepped[k]
        return outs, caches


class GraphUnitDecoder:
    """Args: ``unit_decoder``: the model's unit decoder (its upsampling and memory stay in torch);
    ``session``: on its ``unit_decoder_step`` graph."""

    def __init__(self, unit_decoder, session) -> None:
        self.unit_decoder = unit_decoder
        self.stack = _GraphStack(unit_decoder.layers, session)
        self.num_units = unit_decoder.proj.out_features

    def step_packed(
        self,
        steps: Sequence[Tuple[Tensor, Optional[List[LayerCache]], int, Tensor, int]],
        text_window: int = 0,
        lookahead: int = 0,
    ) -> Tuple[List[Tensor], List[List[LayerCache]]]:
        """As the unit decoder's ``step_packed``: ``(text, caches, text_position, new_memory,
        memory_end)`` per stream; each stream's logits ``[1, n_i * r, V]`` and caches."""
        r = self.unit_decoder.upsample_rate
        caches = self.unit_decoder.extend_memory([s[1] for s in steps], [s[3] for s in steps], text_window, lookahead)
        caches = _empty_caches(caches, self.stack.num_layers)
        logits = [torch.zeros(1, 0, self.num_units) for _ in steps]
        rows = [i for i, s in enumerate(steps) if s[0].size(1)]
        if rows:
            upsampled = [self.unit_decoder.upsampled(steps[i][0], steps[i][2]) for i in rows]
            memory_mask = self._memory_mask(
                [caches[i][0].cross_key.size(2) for i in rows],
                [steps[i][4] for i in rows],
                [owner for _, owner in upsampled],
                lookahead,
            )
            ys, stepped = self.stack.run(
                [x.float() for x, _ in upsampled], [caches[i] for i in rows], text_window * r, memory_mask
            )
            for k, i in enumerate(rows):
                logits[i], caches[i] = ys[k], stepped[k]
        return logits, caches

    @staticmethod
    def _memory_mask(sizes: List[int], ends: List[int], owners: List[Tensor], lookahead: int) -> np.ndarray:
        """``[B, T, max size]``: a row's memory (its own ``size`` states, the last ending at text
        state ``end``, padded on the left) visible to each new position of text state ``owner``
        up to ``owner + lookahead`` (rows' positions padded on the right see nothing)."""
        width, T = max(sizes), max(o.numel() for o in owners)
        owner = torch.stack([torch.nn.functional.pad(o, (0, T - o.numel()), value=-(10**9)) for o in owners])
        size, end = torch.tensor(sizes).view(-1, 1, 1), torch.tensor(ends).view(-1, 1, 1)
        own = torch.arange(width).view(1, 1, -1) - (width - size)
        text_number = end - size + own
        return ((own >= 0) & (text_number <= owner.unsqueeze(2) + lookahead)).numpy()
