"""The MT decoder's runtime on an exported graph: :class:`GraphMTDecoder` answers the three calls
:class:`~echostream_fairseq.streaming.mt_writing.MTWriter` makes of the model's decoder
(``step``, ``step_rows``, ``extend_memory``) with the same caches (one
:class:`~echostream_fairseq.modules.transformer_layer.LayerCache` per layer), so the writer is the
same whichever runtime it is given. Each decoder input is one call of the ``mt_decoder_step``
graph; projecting new encoder frames into the cross-attention memory (one product per layer per
chunk) and the rare write from an empty memory stay in torch.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from echostream_fairseq.export.mt_graph import CACHE_PARTS
from echostream_fairseq.modules.transformer_layer import LayerCache

__all__ = ["GraphMTDecoder"]


def _array(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.numpy())


class GraphMTDecoder:
    """Args: ``decoder``: the model's MT decoder (for what stays in torch); ``session``: on its
    ``mt_decoder_step`` graph (:func:`~echostream_fairseq.streaming.graphs.open_graphs`)."""

    def __init__(self, decoder, session) -> None:
        self.decoder = decoder
        self.session = session
        attn = decoder.layers[0].self_attn
        self._empty = torch.zeros(1, attn.num_heads, 0, attn.head_dim)

    def extend_memory(self, caches, new_memories, memory_window: int = 0):
        return self.decoder.extend_memory(caches, new_memories, memory_window)

    def step(
        self,
        tokens: Tensor,
        caches: Optional[List[LayerCache]],
        position: int,
        new_memory: Optional[Tensor] = None,
        memory_window: int = 0,
        self_window: int = 0,
    ) -> Tuple[Tensor, Tensor, List[LayerCache]]:
        """As the decoder's ``step``; decoder inputs over a memory of frames go through the graph."""
        if new_memory is not None or tokens.size(1) == 0 or caches is None or caches[0].cross_key is None:
            return self.decoder.step(tokens, caches, position, new_memory, memory_window, self_window)
        B = tokens.size(0)
        memory_valid = torch.ones(B, caches[0].cross_key.size(2), dtype=torch.bool)
        logits, hidden = [], []
        for j in range(tokens.size(1)):
            held = 0 if caches[0].self_key is None else caches[0].self_key.size(2)
            self_valid = torch.ones(B, held, dtype=torch.bool)
            positions = torch.full((B,), position + j, dtype=torch.long)
            scores, state, caches, _ = self.step_rows(
                tokens[:, j], positions, caches, self_valid, memory_valid, self_window
            )
            logits.append(scores.unsqueeze(1))
            hidden.append(state)
        return torch.cat(logits, dim=1), torch.cat(hidden, dim=1), caches

    def step_rows(
        self,
        tokens: Tensor,
        positions: Tensor,
        caches: Sequence[LayerCache],
        self_valid: Tensor,
        memory_valid: Tensor,
        self_window: int = 0,
    ) -> Tuple[Tensor, Tensor, List[LayerCache], Tensor]:
        """As the decoder's ``step_rows``: one graph call, then the new input's keys and values
        appended to each layer's caches (the last ``self_window`` kept)."""
        B = tokens.size(0)
        empty = self._empty.expand(B, -1, -1, -1)
        feeds = {
            "tokens": _array(tokens),
            "positions": _array(positions),
            "self_valid": _array(self_valid),
            "memory_valid": _array(memory_valid),
        }
        for i, cache in enumerate(caches):
            for part in CACHE_PARTS:
                value = getattr(cache, part)
                feeds[f"{part}.{i}"] = _array(empty if value is None else value)
        out = [torch.from_numpy(a) for a in self.session.run(None, feeds)]
        logits, hidden = out[0], out[1]
        new_caches = []
        for i, cache in enumerate(caches):
            key, value = out[2 + 2 * i], out[3 + 2 * i]
            if cache.self_key is not None:
                key, value = torch.cat([cache.self_key, key], dim=2), torch.cat([cache.self_value, value], dim=2)
            if self_window > 0 and key.size(2) > self_window:
                key, value = key[:, :, -self_window:], value[:, :, -self_window:]
            new_caches.append(LayerCache(key, value, cache.cross_key, cache.cross_value))
        valid = torch.cat([self_valid, self_valid.new_ones(B, 1)], dim=1)
        if self_window > 0 and valid.size(1) > self_window:
            valid = valid[:, -self_window:]
        return logits, hidden, new_caches, valid
