"""One Emformer layer (:class:`EmformerLayer`), in both of :class:`~echostream_fairseq.modules.emformer.Emformer`'s
modes: ``forward`` over a whole block-masked utterance, ``step`` over one chunk with its cached
left context and memory. The stack, its masks and its state are in
:mod:`~echostream_fairseq.modules.emformer`.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from echostream_fairseq.modules.convolution import CausalConvolutionModule
from echostream_fairseq.modules.packed_linear import PackedLinear

__all__ = ["EmformerLayer"]

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
_FUSED_ACTIVATIONS = {"relu"}  # activations PackedLinear applies inside the matrix product


class EmformerLayer(nn.Module):
    """One Emformer layer: pre-norm attention over [memory, left context, chunk, right context]
    with one fused query/key/value projection, then a pre-norm feed-forward block, then a LayerNorm.

    Args:
        input_dim: model dimension ``D``.
        num_heads: attention heads; must divide ``input_dim``.
        ffn_dim: hidden size of the feed-forward block.
        dropout: dropout on attention probabilities, the attention output and the feed-forward block.
        activation: ``relu``, ``gelu`` or ``silu``.
        weight_init_gain: xavier gain for the query/key/value projection (``None``: PyTorch default).
        tanh_on_mem: squash memory vectors with tanh; otherwise they are clamped to [-10, 10].
        conv_kernel_size: with a value > 0, a causal convolution module of that kernel between the
            attention and the feed-forward block (0: none, torchaudio's layer).
    """

    def __init__(
        self,
        input_dim: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float = 0.0,
        activation: str = "relu",
        weight_init_gain: Optional[float] = None,
        tanh_on_mem: bool = False,
        conv_kernel_size: int = 0,
    ) -> None:
        super().__init__()
        if input_dim % num_heads != 0:
            raise ValueError(f"input_dim ({input_dim}) must be divisible by num_heads ({num_heads})")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; use one of {sorted(_ACTIVATIONS)}")
        self.input_dim = input_dim
        self.num_heads = num_heads
        self.head_dim = input_dim // num_heads
        self.dropout = dropout
        self.tanh_on_mem = tanh_on_mem

        self.layer_norm_input = nn.LayerNorm(input_dim)
        self.qkv_proj = PackedLinear(input_dim, 3 * input_dim)  # rows: query, key, value
        self.out_proj = PackedLinear(input_dim, input_dim)
        fused = activation in _FUSED_ACTIVATIONS
        self.ffn_norm = nn.LayerNorm(input_dim)
        self.ffn_in = PackedLinear(input_dim, ffn_dim, activation=activation if fused else "none")
        self.ffn_activation = nn.Identity() if fused else _ACTIVATIONS[activation]()
        self.ffn_out = PackedLinear(ffn_dim, input_dim)
        self.layer_norm_output = nn.LayerNorm(input_dim)
        self.conv = CausalConvolutionModule(input_dim, conv_kernel_size, dropout) if conv_kernel_size > 0 else None
        if weight_init_gain is not None:
            # query and key/value are initialised as two matrices, as in the paper's recipe
            d = input_dim
            nn.init.xavier_uniform_(self.qkv_proj.weight[:d], gain=weight_init_gain)
            nn.init.xavier_uniform_(self.qkv_proj.weight[d:], gain=weight_init_gain)

    # -- pieces shared by both modes ---------------------------------------------------------

    def _squash_memory(self, memory: Tensor) -> Tensor:
        return torch.tanh(memory) if self.tanh_on_mem else memory.clamp(min=-10.0, max=10.0)

    def _attend(self, query: Tensor, key: Tensor, value: Tensor, mask: Optional[Tensor]) -> Tensor:
        """``query`` ``[B, H, Tq, d]``, ``key``/``value`` ``[B, H, Tk, d]``, ``mask`` broadcastable to
        ``[B, H, Tq, Tk]``: boolean (True: may attend) or additive. Returns the projected output ``[B, Tq, D]``."""
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=p)
        return self.out_proj(out.transpose(1, 2).reshape(query.size(0), query.size(2), self.input_dim))

    def _residual_blocks(
        self, x: Tensor, attention: Tensor, conv_cache: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Attention residual, the convolution module if any (over whole rows, or one chunk with
        ``conv_cache``), the feed-forward block; returns ``x`` and the new cache."""
        x = x + F.dropout(attention, self.dropout, self.training)
        if self.conv is not None:
            if conv_cache is None:
                # no padding mask: padding frames follow a row's real ones, the convolution is
                # causal and attention never takes them as keys, so they reach no real frame
                x = x + self.conv(x, None)
            else:
                out, conv_cache = self.conv.step(x, conv_cache)
                x = x + out
        hidden = F.dropout(self.ffn_activation(self.ffn_in(self.ffn_norm(x))), self.dropout, self.training)
        if self.training:
            x = x + F.dropout(self.ffn_out(hidden), self.dropout, True)
        else:  # the residual addition fuses into the matrix product
            x = self.ffn_out.forward_add(hidden, x)
        return self.layer_norm_output(x), conv_cache

    def _split_heads(self, qkv: Tensor) -> Tensor:
        """``[B, T, 3D]`` -> ``[B, 3, H, T, d]`` (a view)."""
        b, t, _ = qkv.shape
        return qkv.view(b, t, 3, self.num_heads, self.head_dim).permute(0, 2, 3, 1, 4)

    def _chunk_attention(
        self, ln: Tensor, rows: int, cache: Tensor, mask: Optional[Tensor], with_memory: bool
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """One chunk's attention in both streaming forms: ``ln`` ``[B, rows (+ 2), D]`` (the chunk
        and its look-ahead, then with memory the summary and the incoming memory vector) over the
        keys/values ``[cache, the rows]``. Returns the projections ``[B, T, 3, H, d]``, the
        keys/values attended and the attention of the rows (and the summary)."""
        qkv = self.qkv_proj(ln).view(ln.size(0), ln.size(1), 3, self.num_heads, self.head_dim)
        # time-major [B, T, 3, H, d]: the cache concatenations copy contiguous blocks
        key_value = torch.cat([cache, qkv[:, :rows, 1:]], dim=1)
        query = qkv[:, : rows + 1 if with_memory else rows, 0].transpose(1, 2)
        attention = self._attend(query, key_value[:, :, 0].transpose(1, 2), key_value[:, :, 1].transpose(1, 2), mask)
        return qkv, key_value, attention

    def _chunk_outputs(
        self, x: Tensor, attention: Tensor, rows: int, with_memory: bool, conv_cache: Optional[Tensor]
    ) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """The new ``x``, the memory vector for the layer above (``None`` without memory) and the
        convolution module's new cache, from one chunk's attention."""
        if not with_memory:
            x, conv_cache = self._residual_blocks(x, attention, conv_cache=conv_cache)
            return x, None, conv_cache
        memory_out = self._squash_memory(attention[:, rows:])
        x, conv_cache = self._residual_blocks(x, attention[:, :rows], conv_cache=conv_cache)
        return x, memory_out, conv_cache

    # -- full-utterance mode -----------------------------------------------------------------

    def forward(
        self,
        x: Tensor,
        num_utterance: int,
        memory: Optional[Tensor],
        segment_mean: Optional[Tensor],
        mask: Tensor,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Full-utterance mode.

        Args:
            x: ``[B, T + N * R, D]``: the ``T`` utterance frames, then the right-context blocks of
                the ``N`` chunks.
            num_utterance: ``T``.
            memory: ``[B, N - 1, D]`` memory vectors from the layer below, or ``None`` without memory.
            segment_mean: ``[B, N, T]`` averaging matrix that turns frames into per-segment means
                (padding frames weigh 0), or ``None`` without memory.
            mask: ``[B or 1, 1, T + N * R + N, T + N * R + N - 1]``, True where a query may attend;
                queries are [frames, summaries], keys are [frames, memory].

        Returns:
            ``x`` of the same shape, and the memory ``[B, N - 1, D]`` for the layer above.
        """
        ln = self.layer_norm_input(x)
        if memory is None:
            heads = self._split_heads(self.qkv_proj(ln))
            query, key, value = heads[:, 0], heads[:, 1], heads[:, 2]
            return self._residual_blocks(x, self._attend(query, key, value, mask))[0], None
        summary = torch.matmul(segment_mean, ln[:, :num_utterance])  # [B, N, D]
        num_frames = x.size(1)
        heads = self._split_heads(self.qkv_proj(torch.cat([ln, summary, memory], dim=1)))
        num_queries = num_frames + summary.size(1)
        query = heads[:, 0, :, :num_queries]
        key = torch.cat([heads[:, 1, :, :num_frames], heads[:, 1, :, num_queries:]], dim=2)
        value = torch.cat([heads[:, 2, :, :num_frames], heads[:, 2, :, num_queries:]], dim=2)
        attention = self._attend(query, key, value, mask)
        next_memory = self._squash_memory(attention[:, num_frames:-1])
        return self._residual_blocks(x, attention[:, :num_frames])[0], next_memory

    # -- streaming mode ----------------------------------------------------------------------

    def step(
        self,
        x: Tensor,
        num_segment: int,
        memory_in: Optional[Tensor],
        cache: Tensor,
        num_memory: int,
        mask: Optional[Tensor],
        chunk_average: Optional[Tensor],
        max_memory_size: int,
        left_context_length: int,
        conv_cache: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Optional[Tensor], Tensor, Optional[Tensor]]:
        """One chunk.

        Args:
            x: ``[B, s + R, D]``: the chunk's ``s`` frames, then its right context.
            num_segment: ``s``.
            memory_in: ``[B, 1, D]``: this chunk's memory vector from the layer below (``None``
                without memory). It joins the bank for the next chunks.
            cache: ``[B, num_memory + num_left, 2, H, d]`` keys/values of the memory bank and the
                left context (see :class:`EmformerState`).
            num_memory: memory vectors in ``cache``.
            mask: additive ``[s + R + 1, num_memory + num_left + s + R]`` (0 or -inf), or ``None``
                (everything visible).
            chunk_average: ``[1, s]`` filled with ``1 / s`` (``None`` without memory): the summary
                is one matrix product rather than a mean, which bf16 would run through fp32.
            conv_cache: the convolution module's ``[B, K - 1, D]`` (``None`` without one).

        Returns:
            the new ``x``, the memory vector ``[B, 1, D]`` for the layer above (or ``None``), the
            new cache and the convolution module's new cache (or ``None``).
        """
        ln = self.layer_norm_input(x)
        rows = x.size(1)
        if memory_in is not None:
            summary = torch.matmul(chunk_average, ln[:, :num_segment])
            ln = torch.cat([ln, summary, memory_in], dim=1)
        # keys/values: [memory bank, left context, chunk, right context]
        qkv, key_value, attention = self._chunk_attention(ln, rows, cache, mask, memory_in is not None)

        # new cache: the newest memories (this chunk's vector last), then the newest frames
        num_left = cache.size(1) - num_memory
        keep_left = min(left_context_length, num_left + num_segment)
        context_end = num_memory + num_left + num_segment
        pieces = []
        if memory_in is not None:
            keep_memory = min(max_memory_size - 1, num_memory)
            pieces += [cache[:, num_memory - keep_memory : num_memory], qkv[:, rows + 1 :, 1:]]
        pieces.append(key_value[:, context_end - keep_left : context_end])
        new_cache = torch.cat(pieces, dim=1)
        x, memory_out, conv_cache = self._chunk_outputs(x, attention, rows, memory_in is not None, conv_cache)
        return x, memory_out, new_cache, conv_cache

    def step_fixed(
        self,
        x: Tensor,
        num_segment: int,
        memory_in: Optional[Tensor],
        cache: Tensor,
        mask: Tensor,
        max_memory_size: int,
        left_context_length: int,
        conv_cache: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Optional[Tensor], Tensor, Optional[Tensor]]:
        """One chunk over a cache of fixed size (the graph-export form of :meth:`step`).

        Args:
            x, num_segment, memory_in, conv_cache: as :meth:`step`.
            cache: ``[B, M + L, 2, H, d]``: ``M`` memory slots then ``L`` left-context slots,
                each group right-aligned (its newest entry last); slots not yet filled hold
                anything, ``mask`` hides them.
            mask: additive ``[B, 1, s + R (+ 1), M + L + s + R]``.

        Returns:
            as :meth:`step`, the new cache of the same shape as ``cache``.
        """
        ln = self.layer_norm_input(x)
        rows = x.size(1)
        if memory_in is not None:
            ln = torch.cat([ln, ln[:, :num_segment].mean(dim=1, keepdim=True), memory_in], dim=1)
        qkv, _, attention = self._chunk_attention(ln, rows, cache, mask, memory_in is not None)
        M, L = max_memory_size, left_context_length
        pieces = []
        if memory_in is not None:  # the oldest memory slot drops out, this chunk's vector comes in
            pieces += [cache[:, 1:M], qkv[:, rows + 1 :, 1:]]
        if L > 0:  # the newest L of [left context, chunk frames]
            left = torch.cat([cache[:, M:], qkv[:, :num_segment, 1:]], dim=1)
            pieces.append(left[:, left.size(1) - L :])
        new_cache = torch.cat(pieces, dim=1) if pieces else cache
        x, memory_out, conv_cache = self._chunk_outputs(x, attention, rows, memory_in is not None, conv_cache)
        return x, memory_out, new_cache, conv_cache
