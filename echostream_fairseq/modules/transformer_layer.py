"""A pre-norm Transformer layer with masked self-attention and optional masked cross-attention.

One layer type serves every Transformer stack downstream of the speech encoder: the ST CTC head's
causal layers, the MT decoder, the text-to-unit encoder and the non-autoregressive unit decoder.
Masks are boolean, ``True`` meaning "may attend", shaped ``[B or 1, T_query, T_key]``; the
simultaneous-training masks of :mod:`echostream_fairseq.modules.masks` are passed straight in.

Incremental decoding keeps the self-attention keys/values of past positions in a
:class:`LayerCache` that is passed in and returned (never stored on the module).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from echostream_fairseq.modules.masks import causal_mask
from echostream_fairseq.modules.packed_linear import PackedLinear  # the fastest product on this CPU at inference

__all__ = [
    "LayerCache",
    "MultiheadAttention",
    "TransformerLayer",
    "stack_step",
    "stack_step_packed",
    "pad_caches",
    "unpad_row",
    "padded_step",
]


@dataclass(frozen=True)
class LayerCache:
    """Keys/values a layer has already computed, each ``[B, H, T, d_head]``.

    ``self_key``/``self_value`` grow by one step per decoded position; ``cross_key``/``cross_value``
    are the projected memory (encoder states), computed once per utterance.
    """

    self_key: Optional[Tensor] = None
    self_value: Optional[Tensor] = None
    cross_key: Optional[Tensor] = None
    cross_value: Optional[Tensor] = None

    def index_select(self, order: Tensor) -> "LayerCache":
        """Reorder the batch (beam search)."""
        pick = lambda t: None if t is None else t.index_select(0, order)  # noqa: E731
        return LayerCache(pick(self.self_key), pick(self.self_value), pick(self.cross_key), pick(self.cross_value))


def _safe_mask(mask: Optional[Tensor]) -> Optional[Tensor]:
    """A query row that may see no key would give NaN; let it see every key (its output is ignored)."""
    if mask is None:
        return None
    return mask | ~mask.any(dim=-1, keepdim=True)


class MultiheadAttention(nn.Module):
    """Scaled dot-product attention with separate query and key/value input sizes.

    Args:
        embed_dim: query (and output) size ``D``.
        num_heads: heads ``H``; ``D`` must be divisible by ``H``.
        kv_dim: key/value input size (defaults to ``D``).
        dropout: attention-probability dropout.
    """

    def __init__(self, embed_dim: int, num_heads: int, kv_dim: Optional[int] = None, dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        kv_dim = embed_dim if kv_dim is None else kv_dim
        self.num_heads, self.head_dim, self.dropout = num_heads, embed_dim // num_heads, dropout
        self.q_proj = PackedLinear(embed_dim, embed_dim)
        self.k_proj = PackedLinear(kv_dim, embed_dim)
        self.v_proj = PackedLinear(kv_dim, embed_dim)
        self.out_proj = PackedLinear(embed_dim, embed_dim)

    def split_heads(self, x: Tensor) -> Tensor:
        """``[B, T, D]`` -> ``[B, H, T, d]``."""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)

    def project_kv(self, source: Tensor) -> Tuple[Tensor, Tensor]:
        """Keys and values of ``source`` ``[B, S, kv_dim]``, each ``[B, H, S, d]``."""
        return self.split_heads(self.k_proj(source)), self.split_heads(self.v_proj(source))

    def attend(self, query: Tensor, key: Tensor, value: Tensor, mask: Optional[Tensor]) -> Tensor:
        """``query`` ``[B, T, D]`` over projected ``key``/``value`` ``[B, H, S, d]``; mask ``[B|1, T, S]``."""
        q = self.split_heads(self.q_proj(query))
        m = _safe_mask(mask)
        out = F.scaled_dot_product_attention(
            q,
            key,
            value,
            attn_mask=None if m is None else m.unsqueeze(1),
            dropout_p=self.dropout if self.training else 0.0,
        )
        B, H, T, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, T, H * d))


class TransformerLayer(nn.Module):
    """Pre-norm layer: ``x + SelfAttn(LN(x))``, then ``+ CrossAttn(LN(x), memory)``, then ``+ FFN(LN(x))``.

    Args:
        embed_dim: model size ``D``.
        num_heads: attention heads.
        ffn_dim: feed-forward hidden size.
        dropout: residual dropout; ``attention_dropout`` and ``activation_dropout`` likewise.
        memory_dim: size of the cross-attended states; ``None`` builds no cross-attention.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        memory_dim: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.self_attn_norm = nn.LayerNorm(embed_dim)
        self.self_attn = MultiheadAttention(embed_dim, num_heads, dropout=attention_dropout)
        self.cross_attn: Optional[MultiheadAttention] = None
        if memory_dim is not None:
            self.cross_attn_norm = nn.LayerNorm(embed_dim)
            self.cross_attn = MultiheadAttention(embed_dim, num_heads, kv_dim=memory_dim, dropout=attention_dropout)
        self.ffn_norm = nn.LayerNorm(embed_dim)
        self.ffn_in = PackedLinear(embed_dim, ffn_dim)
        self.ffn_out = PackedLinear(ffn_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.activation_dropout = nn.Dropout(activation_dropout)

    def forward(
        self,
        x: Tensor,
        self_mask: Optional[Tensor] = None,
        memory: Optional[Tensor] = None,
        memory_mask: Optional[Tensor] = None,
        cache: Optional[LayerCache] = None,
    ) -> Tuple[Tensor, LayerCache]:
        """Run the layer.

        Args:
            x: ``[B, T, D]`` new positions.
            self_mask: ``[B|1, T, P + T]`` over the ``P`` cached and ``T`` new positions.
            memory: ``[B, S, memory_dim]`` cross-attended states. With a cache, only the frames
                beyond those the cache already holds are projected (the source may grow between
                calls; a new utterance needs a new cache).
            memory_mask: ``[B|1, T, S]``.
            cache: keys/values of earlier positions; ``None`` starts empty.

        Returns:
            ``[B, T, D]`` and the cache extended by the ``T`` new positions.
        """
        cache = LayerCache() if cache is None else cache
        h = self.self_attn_norm(x)
        key, value = self.self_attn.project_kv(h)
        if cache.self_key is not None:
            key = torch.cat([cache.self_key, key], dim=2)
            value = torch.cat([cache.self_value, value], dim=2)
        x = x + self.dropout(self.self_attn.attend(h, key, value, self_mask))
        cross_key, cross_value = cache.cross_key, cache.cross_value
        if self.cross_attn is not None:
            have = 0 if cross_key is None else cross_key.size(2)
            if memory is not None and memory.size(1) > have:
                # only memory frames not seen before are projected: a growing source (simultaneous
                # decoding) costs its new frames, not its whole prefix
                new_key, new_value = self.cross_attn.project_kv(memory[:, have:])
                cross_key = new_key if cross_key is None else torch.cat([cross_key, new_key], dim=2)
                cross_value = new_value if cross_value is None else torch.cat([cross_value, new_value], dim=2)
            elif cross_key is None:
                raise ValueError("this layer cross-attends: pass memory (or a cache holding it)")
            h = self.cross_attn_norm(x)
            x = x + self.dropout(self.cross_attn.attend(h, cross_key, cross_value, memory_mask))
        h = self.activation_dropout(F.relu(self.ffn_in(self.ffn_norm(x))))
        x = x + self.dropout(self.ffn_out(h))
        return x, LayerCache(key, value, cross_key, cross_value)


def stack_step(
    layers,
    x: Tensor,
    caches: Optional[list],
    self_window: int = 0,
    new_memory: Optional[Tensor] = None,
    memory_window: int = 0,
    memory_mask_fn=None,
) -> Tuple[Tensor, list]:
    """Advance a stack of causal layers by ``t`` new positions, with bounded caches.

    Args:
        layers: the stack's :class:`TransformerLayer` modules.
        x: ``[B, t, D]`` new positions (``t`` may be 0 to only extend the memory).
        caches: one :class:`LayerCache` per layer from the previous call (``None``: empty).
        self_window: past positions each new position may attend (0: all). Caches keep at most
            this many positions, so a step's cost does not grow with the stream.
        new_memory: ``[B, s, memory_dim]`` cross-attended states that arrived since the last call;
            their keys/values are projected once and appended to the cache.
        memory_window: memory positions kept in the cache (0: all).
        memory_mask_fn: ``f(num_memory) -> [B|1, t, num_memory]`` bool, or ``None`` (all visible).

    Returns:
        ``[B, t, D]`` outputs and the new caches.
    """
    caches = [None] * len(layers) if caches is None else caches
    new_caches = []
    for layer, cache in zip(layers, caches):
        cache = LayerCache() if cache is None else cache
        if layer.cross_attn is not None and new_memory is not None and new_memory.size(1) > 0:
            cache = _with_memory(cache, *layer.cross_attn.project_kv(new_memory), memory_window)
        if x.size(1) == 0:
            new_caches.append(cache)
            continue
        past = 0 if cache.self_key is None else cache.self_key.size(2)
        self_mask = causal_mask(past + x.size(1), self_window, x.device, num_queries=x.size(1))
        memory_mask = None
        if layer.cross_attn is not None and memory_mask_fn is not None:
            memory_mask = memory_mask_fn(cache.cross_key.size(2))
        x, cache = layer(x, self_mask, None, memory_mask, cache)
        if self_window > 0 and cache.self_key.size(2) > self_window:
            cache = LayerCache(
                cache.self_key[:, :, -self_window:],
                cache.self_value[:, :, -self_window:],
                cache.cross_key,
                cache.cross_value,
            )
        new_caches.append(cache)
    return x, new_caches


def _with_memory(cache: LayerCache, key: Tensor, value: Tensor, memory_window: int) -> LayerCache:
    """``cache`` with the projected keys and values of new memory appended (the last
    ``memory_window`` kept; 0: all)."""
    if cache.cross_key is not None:
        key, value = torch.cat([cache.cross_key, key], dim=2), torch.cat([cache.cross_value, value], dim=2)
    if memory_window > 0 and key.size(2) > memory_window:
        key, value = key[:, :, -memory_window:], value[:, :, -memory_window:]
    return LayerCache(cache.self_key, cache.self_value, key, value)


def stack_step_packed(
    layers,
    xs: Sequence[Tensor],
    caches: Sequence[Optional[list]],
    self_window: int = 0,
    new_memories: Optional[Sequence[Optional[Tensor]]] = None,
    memory_window: int = 0,
    memory_mask_fns: Optional[Sequence] = None,
) -> Tuple[Tensor, List[list]]:
    """:func:`stack_step` for several streams, each with its own caches (of any lengths).

    Every projection and feed-forward block runs once over all streams' new positions packed along
    the time axis (no padding); only the attention runs stream by stream, over the stream's own
    caches. Stream ``i``'s outputs and caches equal :func:`stack_step` on it alone.

    Args:
        xs: ``[1, t_i, D]`` new positions per stream (``t_i`` may be 0).
        caches: per stream, what :func:`stack_step` takes.
        new_memories: per stream, ``[1, s_i, memory_dim]`` or ``None``.
        memory_mask_fns: per stream, ``f(num_memory) -> [1, t_i, num_memory]`` or ``None``.
        self_window, memory_window: as :func:`stack_step`'s, the same for every stream.

    Returns:
        ``[1, sum t_i, D]`` outputs (stream ``i``'s rows after those of streams ``< i``) and the
        caches per stream.
    """
    count = len(xs)
    new_memories = list(new_memories) if new_memories is not None else [None] * count
    memory_mask_fns = list(memory_mask_fns) if memory_mask_fns is not None else [None] * count
    sizes = [x.size(1) for x in xs]
    memory_sizes = [0 if m is None else m.size(1) for m in new_memories]
    x = torch.cat(list(xs), dim=1)
    per_stream = [[None] * len(layers) if c is None else list(c) for c in caches]
    out: List[list] = [[] for _ in range(count)]
    for depth, layer in enumerate(layers):
        layer_caches = [LayerCache() if c[depth] is None else c[depth] for c in per_stream]
        if layer.cross_attn is not None and any(memory_sizes):  # every stream's new memory in one projection
            having = [i for i in range(count) if memory_sizes[i]]
            keys, values = layer.cross_attn.project_kv(torch.cat([new_memories[i] for i in having], dim=1))
            parts = [memory_sizes[i] for i in having]
            for i, k, v in zip(having, keys.split(parts, dim=2), values.split(parts, dim=2)):
                layer_caches[i] = _with_memory(layer_caches[i], k, v, memory_window)
        if x.size(1):
            x = _packed_layer(layer, x, sizes, layer_caches, self_window, memory_mask_fns)
        for i in range(count):
            out[i].append(layer_caches[i])
    return x, out


def _packed_layer(
    layer: "TransformerLayer",
    x: Tensor,
    sizes: List[int],
    caches: List[LayerCache],
    self_window: int,
    memory_mask_fns: List,
) -> Tensor:
    """One layer of :func:`stack_step_packed` on packed ``x``; ``caches`` are updated in place (the list)."""
    attn = layer.self_attn
    h = layer.self_attn_norm(x)
    query = attn.split_heads(attn.q_proj(h))
    key, value = attn.project_kv(h)
    outputs, at = [], 0
    for i, t in enumerate(sizes):
        if not t:
            continue
        c = caches[i]
        k, v = key[:, :, at : at + t], value[:, :, at : at + t]
        if c.self_key is not None:
            k, v = torch.cat([c.self_key, k], dim=2), torch.cat([c.self_value, v], dim=2)
        mask = _step_mask(k.size(2), self_window, t, x.device)
        outputs.append(F.scaled_dot_product_attention(query[:, :, at : at + t], k, v, attn_mask=mask))
        if self_window > 0 and k.size(2) > self_window:
            k, v = k[:, :, -self_window:], v[:, :, -self_window:]
        caches[i] = LayerCache(k, v, c.cross_key, c.cross_value)
        at += t
    x = x + layer.dropout(attn.out_proj(_join_heads(outputs)))
    if layer.cross_attn is not None:
        cross = layer.cross_attn
        query = cross.split_heads(cross.q_proj(layer.cross_attn_norm(x)))
        outputs, at = [], 0
        for i, t in enumerate(sizes):
            if not t:
                continue
            c = caches[i]
            if c.cross_key is None:
                raise ValueError("this layer cross-attends: pass memory (or a cache holding it)")
            fn = memory_mask_fns[i]
            mask = None if fn is None else _safe_mask(fn(c.cross_key.size(2))).unsqueeze(1)
            outputs.append(
                F.scaled_dot_product_attention(query[:, :, at : at + t], c.cross_key, c.cross_value, attn_mask=mask)
            )
            at += t
        x = x + layer.dropout(cross.out_proj(_join_heads(outputs)))
    h = layer.activation_dropout(F.relu(layer.ffn_in(layer.ffn_norm(x))))
    return x + layer.dropout(layer.ffn_out(h))


@functools.lru_cache(maxsize=512)
def _step_mask(keys: int, window: int, queries: int, device: torch.device) -> Tensor:
    """``[1, 1, queries, keys]``: the safe causal mask of an incremental step (inference only: the
    tensor is shared by every step of these sizes, so nobody may write to it or save it for a
    backward pass). The streams of a tick mostly share a few sizes, and building the mask took
    five small operations per stream and layer."""
    return _safe_mask(causal_mask(keys, window, device, num_queries=queries)).unsqueeze(1)


def _join_heads(outputs: List[Tensor]) -> Tensor:
    """Per-stream attention outputs ``[1, H, t_i, d]`` -> ``[1, sum t_i, H * d]``."""
    out = torch.cat(outputs, dim=2)
    _, H, T, d = out.shape
    return out.transpose(1, 2).reshape(1, T, H * d)


def pad_caches(rows: Sequence[Sequence[LayerCache]]) -> Tuple[List[LayerCache], Tensor, Tensor]:
    """The caches of several streams (one list of layer caches each, batch 1) as one batch.

    Streams hold different numbers of positions and memory frames, so both are padded on the
    left: a row's own keys are the last ones of its row. Returns the batched caches and the valid
    masks ``[B, P]`` (self) and ``[B, S]`` (memory), ``True`` for a row's own positions.
    """
    first = rows[0][0]
    self_lengths = [0 if r[0].self_key is None else r[0].self_key.size(2) for r in rows]
    memory_lengths = [0 if r[0].cross_key is None else r[0].cross_key.size(2) for r in rows]
    P, S = max(self_lengths), max(memory_lengths)
    like = first.cross_key if first.cross_key is not None else first.self_key

    def padded(parts: List[Optional[Tensor]], lengths: List[int], width: int) -> Tensor:
        # one zeroed batch and a copy per row: half the time of padding each row and joining them
        out = like.new_zeros(len(parts), like.size(1), width, like.size(3))
        for row, (t, n) in enumerate(zip(parts, lengths)):
            if n:
                out[row, :, width - n :] = t[0]
        return out

    layers = []
    for i in range(len(rows[0])):
        parts = [r[i] for r in rows]
        layers.append(
            LayerCache(
                padded([c.self_key for c in parts], self_lengths, P),
                padded([c.self_value for c in parts], self_lengths, P),
                padded([c.cross_key for c in parts], memory_lengths, S),
                padded([c.cross_value for c in parts], memory_lengths, S),
            )
        )

    def valid(lengths: List[int], width: int) -> Tensor:
        n = torch.tensor(lengths, device=like.device).unsqueeze(1)
        return torch.arange(width, device=like.device).unsqueeze(0) >= width - n

    return layers, valid(self_lengths, P), valid(memory_lengths, S)


def unpad_row(caches: Sequence[LayerCache], row: int, self_length: int, memory_length: int) -> List[LayerCache]:
    """Row ``row`` of :func:`pad_caches`-style batched caches, with its own positions only."""

    def own(t: Tensor, n: int) -> Optional[Tensor]:
        return None if n == 0 else t[row : row + 1, :, t.size(2) - n :]

    return [
        LayerCache(
            own(c.self_key, self_length),
            own(c.self_value, self_length),
            own(c.cross_key, memory_length),
            own(c.cross_value, memory_length),
        )
        for c in caches
    ]


def padded_step(
    layers, x: Tensor, caches: List[LayerCache], self_valid: Tensor, memory_valid: Tensor, self_window: int = 0
) -> Tuple[Tensor, List[LayerCache], Tensor]:
    """One new position per row through a stack of layers, over left-padded caches.

    Args:
        x: ``[B, 1, D]``; caches, ``self_valid`` ``[B, P]``, ``memory_valid`` ``[B, S]``: from
            :func:`pad_caches` (or a previous call).
        self_window: positions kept (0: all), as :func:`stack_step` keeps them.

    Returns:
        ``[B, 1, D]``, the caches with the new position appended, and the new ``self_valid``.
    """
    valid = torch.cat([self_valid, self_valid.new_ones(self_valid.size(0), 1)], dim=1)
    self_mask, memory_mask = valid.unsqueeze(1), memory_valid.unsqueeze(1)
    new_caches = []
    for layer, cache in zip(layers, caches):
        x, cache = layer(x, self_mask, None, memory_mask, cache)
        if self_window > 0 and cache.self_key.size(2) > self_window:
            cache = LayerCache(
                cache.self_key[:, :, -self_window:],
                cache.self_value[:, :, -self_window:],
                cache.cross_key,
                cache.cross_value,
            )
        new_caches.append(cache)
    if self_window > 0 and valid.size(1) > self_window:
        valid = valid[:, -self_window:]
    return x, new_caches, valid
