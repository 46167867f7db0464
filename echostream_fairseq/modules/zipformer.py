"""Streaming Zipformer (Yao et al., "Zipformer: a faster and better encoder for automatic speech
recognition", ICLR 2024), written for chunk-by-chunk inference with a bounded state.

Layout (``stack_downsampling = 1,2,4,8,4,2`` on a 50 Hz input)::

    input 50 Hz -> stack 0 @ 50 Hz -> stack 1 @ 25 Hz -> stack 2 @ 12.5 Hz -> stack 3 @ 6.25 Hz
                -> stack 4 @ 12.5 Hz -> stack 5 @ 25 Hz -> full-width output @ 50 Hz
                -> learned 2x downsampling -> projection -> BiasNorm -> output @ 25 Hz (40 ms frames)

Every stack takes the 50 Hz sequence (its channels truncated or zero-padded to the stack's width),
downsamples it by its factor with learned softmax weights, runs its layers at the lower rate,
repeats each frame back to 50 Hz (plus a learned per-phase offset) and mixes the result with its
input through a learned per-channel bypass. The output takes each channel from the last stack that
has it (the bottleneck stacks are the widest). The 25 Hz output is the frame rate of the Emformer,
so the CTC heads, the MT decoder, the CTC policy and the agents see 40 ms frames from either encoder.

A layer (:class:`ZipformerLayer`) follows the paper's block: feed-forward, attention weights
computed once and used by two self-attention modules, two causal convolution modules, three
feed-forwards of different widths, a mid-block bypass, BiasNorm and the output bypass; SwooshL in
the feed-forwards and SwooshR in the convolutions. Left out: the non-linear attention module, the
relative positional encoding (as in our Emformer, the causal convolutions give position) and the
training-time regularisers (Balancer, Whiten, ScaledAdam), which belong to icefall's optimiser.

Attention is chunked and causal. The input is cut into chunks of ``chunk_length`` output frames
(``2 * chunk_length`` input frames). At a stack's rate a frame attends to

* the frames of its own chunk up to ``future_frames`` ahead of it (0: strictly causal; the
  look-ahead never crosses the chunk end, so it adds no latency beyond the chunk's),
* ``left_context_length`` output frames' worth of earlier frames (``ceil(2 * L / factor)`` frames
  at that rate), whose keys and values are cached, and
* optionally a memory bank: the per-chunk means of the keys and values of the last
  ``max_memory_size`` chunks, Emformer's summary vectors (a mean of projections is the projection
  of the mean, so the bank costs no extra projection).

The convolutions are causal and keep their last ``kernel_size - 1`` inputs. Every chunk must split
evenly at every rate: ``2 * chunk_length`` must be a multiple of every downsampling factor and of
the output downsampling (with 1,2,4,8,4,2 that is a multiple of 4 output frames, 160 ms). The final
chunk of a stream may be shorter; it is zero-padded to a whole number of the coarsest frames, and
the padding is never attended and is zeroed after every stack, in both modes.

Two modes share the weights: :meth:`Zipformer.forward` runs a padded batch with chunk masks
(training, offline decoding) and :meth:`Zipformer.step` runs one chunk with an explicit
:class:`ZipformerState`. Streaming a stream chunk by chunk equals the masked forward on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from echostream_fairseq.modules.batching import counter_field
from echostream_fairseq.modules.packed_linear import PackedLinear

__all__ = [
    "ZipformerFixedState",
    "BiasNorm",
    "Zipformer",
    "ZipformerLayer",
    "ZipformerStack",
    "ZipformerState",
    "swoosh_l",
    "swoosh_r",
]


def swoosh_r(x: Tensor) -> Tensor:
    """SwooshR(x) = log(1 + e^(x-1)) - 0.08 x - 0.313261687 (zero at x = 0)."""
    return F.softplus(x - 1.0) - 0.08 * x - 0.313261687


def swoosh_l(x: Tensor) -> Tensor:
    """SwooshL(x) = log(1 + e^(x-4)) - 0.08 x - 0.035."""
    return F.softplus(x - 4.0) - 0.08 * x - 0.035


class BiasNorm(nn.Module):
    """``x / rms(x - bias) * exp(log_scale)`` over the channels: a LayerNorm that keeps the mean
    (the bias only enters the scale) and learns one scalar scale instead of a per-channel one."""

    def __init__(self, dim: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.eps = eps  # zero (padding) frames would otherwise divide by zero

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.rsqrt((x - self.bias).pow(2).mean(-1, keepdim=True) + self.eps) * self.log_scale.exp()
        return x * scale


class Bypass(nn.Module):
    """``orig + c * (new - orig)`` with a learned per-channel ``c`` in [0, 1] (0.5 at the start)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, orig: Tensor, new: Tensor) -> Tensor:
        return orig + self.scale.clamp(0.0, 1.0) * (new - orig)


class FeedForward(nn.Module):
    """Linear -> SwooshL -> dropout -> Linear."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.in_proj = PackedLinear(dim, hidden_dim)
        self.out_proj = PackedLinear(hidden_dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_proj(self.dropout(swoosh_l(self.in_proj(x))))


class CausalConvolution(nn.Module):
    """Gated input projection, causal depthwise convolution, SwooshR, output projection.

    The cache is the last ``kernel_size - 1`` gated frames, ``[B, D, kernel_size - 1]``.
    """

    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"convolution kernel size must be >= 1, got {kernel_size}")
        self.cache_length = kernel_size - 1
        self.in_proj = PackedLinear(dim, 2 * dim)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, groups=dim)
        self.out_proj = PackedLinear(dim, dim)

    def forward(self, x: Tensor, cache: Tensor) -> Tuple[Tensor, Tensor]:
        """``x`` ``[B, T, D]``, ``cache`` ``[B, D, K - 1]`` -> ``[B, T, D]`` and the new cache."""
        value, gate = self.in_proj(x).chunk(2, dim=-1)
        y = torch.cat([cache, (value * torch.sigmoid(gate)).transpose(1, 2)], dim=2)
        new_cache = y[:, :, y.size(2) - self.cache_length :]
        # a streaming chunk: a windowed sum beats conv1d's per-call cost on CPU (but the ONNX exporter
        # cannot unfold a tensor whose batch it does not know)
        if x.size(1) <= 64 and not torch.jit.is_tracing():
            windows = y.unfold(2, self.cache_length + 1, 1)  # [B, D, T, K]
            conv = (windows * self.depthwise.weight.squeeze(1).unsqueeze(1)).sum(-1) + self.depthwise.bias.unsqueeze(1)
        else:
            conv = self.depthwise(y)
        return self.out_proj(swoosh_r(conv.transpose(1, 2))), new_cache


class ZipformerLayer(nn.Module):
    """One Zipformer block.

    Args:
        dim: channels ``D``.
        num_heads: attention heads ``H``.
        query_head_dim: query/key channels per head.
        value_head_dim: value channels per head.
        ffn_dim: hidden size of the middle feed-forward (the first is 3/4 of it, the last 5/4).
        conv_kernel_size: causal depthwise kernel.
        dropout: on attention weights and module outputs.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        query_head_dim: int,
        value_head_dim: int,
        ffn_dim: int,
        conv_kernel_size: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.num_heads, self.query_head_dim, self.value_head_dim = num_heads, query_head_dim, value_head_dim
        self.key_dim, self.value_dim = num_heads * query_head_dim, num_heads * value_head_dim
        self.ff1 = FeedForward(dim, max(1, ffn_dim * 3 // 4), dropout)
        self.query_key = PackedLinear(dim, 2 * self.key_dim)
        self.value1 = PackedLinear(dim, self.value_dim)
        self.out1 = PackedLinear(self.value_dim, dim)
        self.conv1 = CausalConvolution(dim, conv_kernel_size)
        self.ff2 = FeedForward(dim, ffn_dim, dropout)
        self.bypass_mid = Bypass(dim)
        self.value2 = PackedLinear(dim, self.value_dim)
        self.out2 = PackedLinear(self.value_dim, dim)
        self.conv2 = CausalConvolution(dim, conv_kernel_size)
        self.ff3 = FeedForward(dim, max(1, ffn_dim * 5 // 4), dropout)
        self.norm = BiasNorm(dim)
        self.bypass = Bypass(dim)
        self.dropout = nn.Dropout(dropout)

    @property
    def cache_dim(self) -> int:
        """Channels of one cached position: key, first value, second value."""
        return self.key_dim + 2 * self.value_dim

    def _heads(self, x: Tensor, head_dim: int) -> Tensor:
        return x.view(x.size(0), x.size(1), self.num_heads, head_dim).transpose(1, 2)  # [B, H, T, d]

    def _weighted_values(self, weights: Tensor, values: Tensor, out_proj: nn.Module) -> Tensor:
        out = torch.matmul(weights, self._heads(values, self.value_head_dim))  # [B, H, T, dv]
        return out_proj(out.transpose(1, 2).reshape(out.size(0), out.size(2), self.value_dim))

    def forward(
        self,
        x: Tensor,
        cache: Tensor,
        conv_cache: Tuple[Tensor, Tensor],
        mask: Optional[Tensor],
        chunk_mean: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor, Tuple[Tensor, Tensor]]:
        """One layer over the frames ``x``.

        Args:
            x: ``[B, T, D]``: the whole (padded) input at this rate, or one chunk when streaming.
            cache: ``[B, P, cache_dim]``: keys/values of positions before ``x`` (streaming: the
                memory bank, then the left context; full mode: ``P = 0``).
            conv_cache: the two convolutions' caches, ``[B, D, K - 1]`` each (zeros at the start).
            mask: boolean, True where a query may attend, broadcastable to ``[B, H, T, P + T + N]``
                with keys ordered [cache, frames, chunk summaries]; ``None``: all visible.
            chunk_mean: ``[B, N, T]`` averaging matrix giving the ``N`` chunk summaries (memory bank
                in full mode), or ``None``.

        Returns:
            ``x`` ``[B, T, D]``, the keys/values of ``x``'s frames ``[B, T, cache_dim]`` and the new
            convolution caches.
        """
        orig = x
        x = x + self.dropout(self.ff1(x))
        query, key = self.query_key(x).split(self.key_dim, dim=-1)
        value1 = self.value1(x)

        def keys_of(new: Tensor, start: int, width: int) -> Tensor:
            parts = [cache[..., start : start + width], new]
            if chunk_mean is not None:
                parts.append(torch.matmul(chunk_mean, new))
            return torch.cat(parts, dim=1)

        scores = torch.matmul(
            self._heads(query, self.query_head_dim),
            self._heads(keys_of(key, 0, self.key_dim), self.query_head_dim).transpose(2, 3),
        ) / math.sqrt(self.query_head_dim)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))  # computed once, used by both attentions

        x = x + self.dropout(self._weighted_values(weights, keys_of(value1, self.key_dim, self.value_dim), self.out1))
        conv, conv_cache1 = self.conv1(x, conv_cache[0])
        x = x + self.dropout(conv)
        x = x + self.dropout(self.ff2(x))
        x = self.bypass_mid(orig, x)
        value2 = self.value2(x)
        x = x + self.dropout(
            self._weighted_values(weights, keys_of(value2, self.key_dim + self.value_dim, self.value_dim), self.out2)
        )
        conv, conv_cache2 = self.conv2(x, conv_cache[1])
        x = x + self.dropout(conv)
        x = x + self.dropout(self.ff3(x))
        x = self.bypass(orig, self.norm(x))
        return x, torch.cat([key, value1, value2], dim=-1), (conv_cache1, conv_cache2)


class ZipformerStack(nn.Module):
    """Layers at ``1 / downsampling`` of the input rate, with learned down/upsampling and bypass.

    Args:
        dim: channels.
        num_layers: layers.
        downsampling: rate factor ``f`` (1 = the input rate).
        (others: see :class:`ZipformerLayer`).
    """

    def __init__(
        self,
        dim: int,
        num_layers: int,
        downsampling: int,
        num_heads: int,
        query_head_dim: int,
        value_head_dim: int,
        ffn_dim: int,
        conv_kernel_size: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.dim, self.downsampling = dim, downsampling
        self.layers = nn.ModuleList(
            ZipformerLayer(dim, num_heads, query_head_dim, value_head_dim, ffn_dim, conv_kernel_size, dropout)
            for _ in range(num_layers)
        )
        if downsampling > 1:
            self.downsample_weights = nn.Parameter(torch.zeros(downsampling))  # softmax: a learned average
            self.upsample_offsets = nn.Parameter(torch.zeros(downsampling, dim))  # one per phase
        self.out_bypass = Bypass(dim)

    def downsample(self, x: Tensor) -> Tensor:
        """``[B, T, D]`` (``T`` a multiple of ``f``) -> ``[B, T / f, D]``."""
        f = self.downsampling
        if f == 1:
            return x
        weights = torch.softmax(self.downsample_weights, dim=0).to(x.dtype)
        return torch.einsum("btfd,f->btd", x.view(x.size(0), x.size(1) // f, f, x.size(2)), weights)

    def upsample(self, x: Tensor) -> Tensor:
        """``[B, t, D]`` -> ``[B, t * f, D]``: each frame repeated ``f`` times, plus a per-phase offset."""
        f = self.downsampling
        if f == 1:
            return x
        return (x.unsqueeze(2) + self.upsample_offsets).reshape(x.size(0), x.size(1) * f, x.size(2))


@dataclass(frozen=True)
class ZipformerState:
    """Streaming state of a :class:`Zipformer`: explicit data, passed in and returned.

    Attributes:
        key_value: one tensor per layer (stacks in order), ``[B, num_memory + num_left[stack],
            cache_dim]``: the memory bank (oldest first), then the left context's keys/values.
        conv: per layer, the two convolution caches, ``[B, D, K - 1]`` each.
        num_memory: memory entries held (the same in every layer), at most ``max_memory_size``.
        num_left: per stack, left-context frames held (at that stack's rate).
        frames: input frames consumed so far.
        finished: a short (final) chunk was consumed; no further step is allowed.
        signature: the configuration of the model that made the state.
    """

    key_value: Tuple[Tensor, ...]
    conv: Tuple[Tuple[Tensor, Tensor], ...]
    num_memory: int
    num_left: Tuple[int, ...]
    frames: int = counter_field()
    finished: bool
    signature: Tuple

    @property
    def batch_size(self) -> int:
        return self.key_value[0].size(0)


@dataclass(frozen=True)
class ZipformerFixedState:
    """The streaming state in fixed shapes, for graphs (ONNX) whose inputs cannot change shape as
    a stream starts: :meth:`Zipformer.step_fixed` takes and returns it.

    Attributes:
        key_value: per stack, ``[B, layers, M + Lc, cache_dim]``: each layer's ``M`` memory slots
            then ``Lc`` left-context slots (at the stack's rate), each group right-aligned (newest
            last); unfilled slots are zeros that the step's mask hides.
        conv: per stack, ``[B, layers, 2, D, K - 1]``: each layer's two convolution caches.
        num_memory: ``[B]`` int64, memory slots filled (at most ``M``, the same in every layer).
        num_left: ``[B, stacks]`` int64, left-context slots filled per stack.

    Every tensor is batch-first and every row carries its own counts, so streams at any point
    stack into one batch.
    """

    key_value: Tuple[Tensor, ...]
    conv: Tuple[Tensor, ...]
    num_memory: Tensor
    num_left: Tensor


def _per_stack(name: str, values: Sequence[int], count: int, low: int) -> Tuple[int, ...]:
    values = tuple(int(v) for v in values)
    if len(values) != count:
        raise ValueError(f"{name} needs one value per stack ({count}), got {list(values)}")
    if any(v < low for v in values):
        raise ValueError(f"{name} values must be >= {low}, got {list(values)}")
    return values


def _convert_channels(x: Tensor, dim: int) -> Tensor:
    """Truncate or zero-pad the channels of ``x`` to ``dim``."""
    if x.size(-1) >= dim:
        return x[..., :dim]
    return F.pad(x, (0, dim - x.size(-1)))


class Zipformer(nn.Module):
    """The multi-rate stack of :class:`ZipformerStack` with chunked causal attention.

    The defaults are the ``echostream_zipformer`` preset's (about icefall's small Zipformer).

    Args:
        input_dim: channels of the input frames (the convolutional embedding's output).
        output_dim: channels of the output frames.
        stack_dims / stack_layers / stack_downsampling / stack_heads / stack_ffn_dims /
            stack_conv_kernels: one value per stack.
        chunk_length: output frames per chunk (``output_downsampling`` input frames each).
        query_head_dim, value_head_dim: attention channels per head.
        left_context_length: cached left context, in output frames' worth of time.
        future_frames: frames ahead (at each stack's rate, within the chunk) a frame may attend.
        max_memory_size: memory-bank entries per layer (0: none).
        output_downsampling: input frames per output frame.
        dropout: dropout probability.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        stack_dims: Sequence[int],
        stack_layers: Sequence[int],
        stack_downsampling: Sequence[int],
        stack_heads: Sequence[int],
        stack_ffn_dims: Sequence[int],
        stack_conv_kernels: Sequence[int],
        chunk_length: int,
        query_head_dim: int,
        value_head_dim: int,
        left_context_length: int = 0,
        future_frames: int = 0,
        max_memory_size: int = 0,
        output_downsampling: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        n = len(stack_dims)
        if n < 1:
            raise ValueError("a Zipformer needs at least one stack")
        self.stack_dims = _per_stack("stack_dims", stack_dims, n, 1)
        self.stack_layers = _per_stack("stack_layers", stack_layers, n, 1)
        self.stack_downsampling = _per_stack("stack_downsampling", stack_downsampling, n, 1)
        heads = _per_stack("stack_heads", stack_heads, n, 1)
        ffn_dims = _per_stack("stack_ffn_dims", stack_ffn_dims, n, 1)
        kernels = _per_stack("stack_conv_kernels", stack_conv_kernels, n, 1)
        for name, value, low in [
            ("query_head_dim", query_head_dim, 1),
            ("value_head_dim", value_head_dim, 1),
            ("left_context_length", left_context_length, 0),
            ("future_frames", future_frames, 0),
            ("max_memory_size", max_memory_size, 0),
            ("output_downsampling", output_downsampling, 1),
        ]:
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.left_context_length = left_context_length
        self.future_frames = future_frames
        self.max_memory_size = max_memory_size
        self.output_downsampling = output_downsampling
        self.right_context_length = 0  # look-ahead is within the chunk only
        # the input frames every chunk must split into: each stack's factor and the output's
        self.alignment = math.lcm(output_downsampling, *self.stack_downsampling)
        self.stacks = nn.ModuleList(
            ZipformerStack(d, layers, f, h, query_head_dim, value_head_dim, ffn, k, dropout)
            for d, layers, f, h, ffn, k in zip(
                self.stack_dims, self.stack_layers, self.stack_downsampling, heads, ffn_dims, kernels
            )
        )
        self.full_dim = max(self.stack_dims)
        self.output_weights = nn.Parameter(torch.zeros(output_downsampling))
        self.output_proj = PackedLinear(self.full_dim, output_dim)
        self.output_norm = BiasNorm(output_dim)
        self.chunk_length = chunk_length  # validated by the setter

    # -- chunk geometry ----------------------------------------------------------------------------

    def check_chunk_length(self, chunk_length: int) -> None:
        """Raise unless a chunk of ``chunk_length`` output frames splits evenly at every rate."""
        unit = self.alignment // math.gcd(self.alignment, self.output_downsampling)
        if chunk_length < 1 or chunk_length % unit:
            raise ValueError(
                f"chunk_length {chunk_length} is not compatible with the stack downsampling "
                f"{list(self.stack_downsampling)}: a chunk of {chunk_length * self.output_downsampling} input "
                f"frames must split into whole frames at every rate, so chunk_length must be a positive "
                f"multiple of {unit} ({unit * 40} ms of 40 ms output frames)"
            )

    @property
    def chunk_length(self) -> int:
        """Output frames per chunk."""
        return self._chunk_length

    @chunk_length.setter
    def chunk_length(self, value: int) -> None:
        self.check_chunk_length(int(value))
        self._chunk_length = int(value)

    @property
    def input_chunk_length(self) -> int:
        """Input frames per chunk (what :meth:`step` takes)."""
        return self._chunk_length * self.output_downsampling

    def left_context_frames(self, stack: int) -> int:
        """Cached left-context frames at the rate of stack ``stack``."""
        return -(-self.left_context_length * self.output_downsampling // self.stack_downsampling[stack])

    @property
    def signature(self) -> Tuple:
        return (
            self.input_dim,
            self.output_dim,
            self.stack_dims,
            self.stack_layers,
            self.stack_downsampling,
            self._chunk_length,
            self.left_context_length,
            self.future_frames,
            self.max_memory_size,
        )

    def _check_frames(self, x: Tensor, what: str) -> None:
        if x.dim() != 3 or x.size(-1) != self.input_dim:
            raise ValueError(f"{what} must have shape [batch, time, {self.input_dim}], got {list(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{what} contains NaN or inf")

    def _output(self, outputs: List[Tensor]) -> Tensor:
        """Full-width 50 Hz frames (each channel from the last stack that has it) -> output frames."""
        pieces, have = [outputs[-1]], self.stack_dims[-1]
        for out, dim in zip(reversed(outputs[:-1]), reversed(self.stack_dims[:-1])):
            if dim > have:
                pieces.append(out[..., have:dim])
                have = dim
        x = torch.cat(pieces, dim=-1)
        f = self.output_downsampling
        weights = torch.softmax(self.output_weights, dim=0).to(x.dtype)
        x = torch.einsum("btfd,f->btd", x.view(x.size(0), x.size(1) // f, f, x.size(2)), weights)
        return self.output_norm(self.output_proj(x))

    # -- full (chunk-masked) mode ------------------------------------------------------------------

    def _stack_masks(self, num_frames: int, chunk: int, left: int, lengths: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """Masks for one rate: ``num_frames`` frames in chunks of ``chunk``, ``left`` frames of
        left context, ``lengths`` ``[B]`` valid frames. Returns the mask ``[B, 1, T, T + N]`` (or
        ``[B, 1, T, T]`` without memory) and the chunk averaging matrix ``[B, N, T]`` (or ``None``)."""
        device = lengths.device
        t = torch.arange(num_frames, device=device)
        chunk_of = t // chunk
        q, k = t.unsqueeze(1), t.unsqueeze(0)
        start = (chunk_of * chunk).unsqueeze(1)
        visible = (k <= q + self.future_frames) & (k < start + chunk) & (k >= start - left)
        valid = t.unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
        # padding keys are never seen; every query sees itself, so no row is empty
        mask = visible.unsqueeze(0) & (valid.unsqueeze(1) | (q == k).unsqueeze(0))
        chunk_mean = None
        if self.max_memory_size > 0:
            chunks = torch.arange(-(-num_frames // chunk), device=device)
            memory = (chunks.unsqueeze(0) < chunk_of.unsqueeze(1)) & (
                chunks.unsqueeze(0) >= chunk_of.unsqueeze(1) - self.max_memory_size
            )  # [T, N]
            mask = torch.cat([mask, memory.unsqueeze(0).expand(mask.size(0), -1, -1)], dim=2)
            weights = ((chunk_of.unsqueeze(0) == chunks.unsqueeze(1)).unsqueeze(0) & valid.unsqueeze(1)).float()
            chunk_mean = weights / weights.sum(-1, keepdim=True).clamp(min=1.0)
        return mask.unsqueeze(1), chunk_mean

    def forward(self, input: Tensor, lengths: Tensor, chunk_length: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        """Chunk-masked mode for training and offline decoding.

        Args:
            input: ``[B, T, input_dim]``, each row's ``lengths[b]`` frames then padding.
            lengths: ``[B]``.
            chunk_length: overrides the module's chunk size (output frames) for this call; 0 is
                one chunk spanning the input (still causal up to ``future_frames``).

        Returns:
            output ``[B, ceil(T / output_downsampling), output_dim]`` and its lengths ``[B]``.
        """
        self._check_frames(input, "input")
        B, T, _ = input.shape
        if lengths.dim() != 1 or lengths.size(0) != B:
            raise ValueError(f"lengths must have shape [{B}], got {list(lengths.shape)}")
        if bool((lengths < 1).any()) or bool((lengths > T).any()):
            raise ValueError(f"lengths must lie in [1, {T}], got {lengths.tolist()}")
        S = self._chunk_length if chunk_length is None else int(chunk_length)
        padded = -(-T // self.alignment) * self.alignment
        if S != 0:
            self.check_chunk_length(S)
        chunk = padded if S == 0 else S * self.output_downsampling
        valid = torch.arange(padded, device=input.device).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T']
        x = F.pad(input, (0, 0, 0, padded - T)).masked_fill(~valid.unsqueeze(-1), 0.0)

        outputs = []
        for i, stack in enumerate(self.stacks):
            f = stack.downsampling
            mask, chunk_mean = self._stack_masks(padded // f, chunk // f, self.left_context_frames(i), -(-lengths // f))
            if chunk_mean is not None:
                chunk_mean = chunk_mean.to(x.dtype)
            stack_in = _convert_channels(x, stack.dim)
            h = stack.downsample(stack_in)
            for layer in stack.layers:
                empty = h.new_zeros(B, 0, layer.cache_dim)
                zeros = h.new_zeros(B, stack.dim, layer.conv1.cache_length)
                h, _, _ = layer(h, empty, (zeros, zeros), mask, chunk_mean)
            x = stack.out_bypass(stack_in, stack.upsample(h)).masked_fill(~valid.unsqueeze(-1), 0.0)
            outputs.append(x)
        out_lengths = -(-lengths // self.output_downsampling)
        return self._output(outputs)[:, : -(-T // self.output_downsampling)], out_lengths

    # -- streaming mode ----------------------------------------------------------------------------

    def initial_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> ZipformerState:
        """The state of a stream that has not started."""
        p = self.output_norm.bias  # norms keep the activations' dtype under every precision
        device = p.device if device is None else device
        dtype = p.dtype if dtype is None else dtype
        key_value, conv = [], []
        for stack in self.stacks:
            for layer in stack.layers:
                key_value.append(torch.zeros(batch_size, 0, layer.cache_dim, device=device, dtype=dtype))
                zeros = torch.zeros(batch_size, stack.dim, layer.conv1.cache_length, device=device, dtype=dtype)
                conv.append((zeros, zeros))
        return ZipformerState(tuple(key_value), tuple(conv), 0, tuple(0 for _ in self.stacks), 0, False, self.signature)

    def _check_state(self, state: ZipformerState, batch_size: int, like: Tensor) -> None:
        if not isinstance(state, ZipformerState):
            raise ValueError(f"state must be a ZipformerState, got {type(state).__name__}")
        if state.signature != self.signature:
            raise ValueError(
                f"state was made by a Zipformer configured as {state.signature}; this one is {self.signature} "
                "(input dim, output dim, stack dims, stack layers, downsampling, chunk, left, future, memory)"
            )
        if state.finished:
            raise ValueError("the stream is finished: a short final chunk was already processed; start a new state")
        if state.batch_size != batch_size:
            raise ValueError(f"state holds {state.batch_size} streams but the chunk has {batch_size}")
        if state.key_value[0].dtype != like.dtype:
            raise ValueError(f"state dtype {state.key_value[0].dtype} does not match input dtype {like.dtype}")

    def step(
        self, chunk: Tensor, right_context: Optional[Tensor] = None, state: Optional[ZipformerState] = None
    ) -> Tuple[Tensor, ZipformerState]:
        """Streaming mode: one chunk.

        Args:
            chunk: ``[B, s, input_dim]``, ``1 <= s <= input_chunk_length``; a shorter chunk is
                the last of the stream (zero-padded inside to a multiple of the coarsest frame).
            right_context: must be ``None`` or empty (the look-ahead is inside the chunk).
            state: from the previous step, or ``None`` to start a stream.

        Returns:
            output ``[B, ceil(s / output_downsampling), output_dim]`` and the new state.
        """
        self._check_frames(chunk, "chunk")
        s, S_in = chunk.size(1), self.input_chunk_length
        if s == 0:
            raise ValueError("empty chunk: a step needs at least one frame")
        if s > S_in:
            raise ValueError(
                f"chunk has {s} frames; a chunk holds {S_in} input frames (chunk_length {self._chunk_length})"
            )
        if right_context is not None and right_context.size(1) != 0:
            raise ValueError("the Zipformer takes no right context: its look-ahead lies within the chunk")
        B = chunk.size(0)
        if state is None:
            state = self.initial_state(B, chunk.device, chunk.dtype)
        self._check_state(state, B, chunk)

        padded = -(-s // self.alignment) * self.alignment
        x = F.pad(chunk, (0, 0, 0, padded - s))
        M, num_memory = self.max_memory_size, state.num_memory
        outputs, key_values, convs, num_left = [], [], [], []
        index = 0
        for i, stack in enumerate(self.stacks):
            f = stack.downsampling
            frames, valid = padded // f, -(-s // f)
            left_max, held = self.left_context_frames(i), state.num_left[i]
            mask = self._step_mask(frames, valid, num_memory + held, chunk.device)
            stack_in = _convert_channels(x, stack.dim)
            h = stack.downsample(stack_in)
            for layer in stack.layers:
                cache = state.key_value[index]
                h, new, conv = layer(h, cache, state.conv[index], mask)
                memory, left = cache[:, :num_memory], cache[:, num_memory:]
                pieces = []
                if M > 0:
                    pieces += [memory[:, max(0, num_memory - (M - 1)) :], new[:, :valid].mean(dim=1, keepdim=True)]
                context = torch.cat([left, new[:, :valid]], dim=1)
                pieces.append(context[:, max(0, context.size(1) - left_max) :])
                key_values.append(torch.cat(pieces, dim=1))
                convs.append(conv)
                index += 1
            num_left.append(min(left_max, held + valid))
            x = stack.out_bypass(stack_in, stack.upsample(h))
            if padded > s:
                x = torch.cat([x[:, :s], x.new_zeros(B, padded - s, x.size(2))], dim=1)
            outputs.append(x)
        out = self._output(outputs)[:, : -(-s // self.output_downsampling)]
        return out, ZipformerState(
            key_value=tuple(key_values),
            conv=tuple(convs),
            num_memory=min(num_memory + 1, M),
            num_left=tuple(num_left),
            frames=state.frames + s,
            finished=s < S_in,
            signature=self.signature,
        )

    def initial_fixed_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> ZipformerFixedState:
        """The :class:`ZipformerFixedState` of a stream that has not started (all zeros)."""
        p = self.output_norm.bias
        device = p.device if device is None else device
        dtype = p.dtype if dtype is None else dtype
        key_value, conv = [], []
        for i, stack in enumerate(self.stacks):
            layer = stack.layers[0]
            slots = self.max_memory_size + self.left_context_frames(i)
            key_value.append(
                torch.zeros(batch_size, len(stack.layers), slots, layer.cache_dim, device=device, dtype=dtype)
            )
            conv.append(
                torch.zeros(
                    batch_size, len(stack.layers), 2, stack.dim, layer.conv1.cache_length, device=device, dtype=dtype
                )
            )
        counts = torch.zeros(batch_size, dtype=torch.long, device=device)
        left = torch.zeros(batch_size, len(self.stacks), dtype=torch.long, device=device)
        return ZipformerFixedState(tuple(key_value), tuple(conv), counts, left)

    def step_fixed(
        self, chunk: Tensor, num_valid: Tensor, state: ZipformerFixedState
    ) -> Tuple[Tensor, ZipformerFixedState]:
        """:meth:`step` over :class:`ZipformerFixedState`, in the form traced into a graph (no
        input checks): ``chunk`` ``[B, input_chunk_length, input_dim]`` always whole, of which
        the first ``num_valid`` ``[B]`` frames per row are real (fewer only in a stream's last
        chunk, zeros after them). Returns ``[B, chunk_length, output_dim]``, of which each row's
        first ``ceil(num_valid / output_downsampling)`` equal :meth:`step`'s output within
        rounding, and the next state."""
        B, S_in = chunk.size(0), chunk.size(1)
        M = self.max_memory_size
        real = (torch.arange(S_in, device=chunk.device).unsqueeze(0) < num_valid.unsqueeze(1)).unsqueeze(2)
        x = chunk * real.to(chunk.dtype)
        outputs, key_values, convs, num_left = [], [], [], []
        for i, stack in enumerate(self.stacks):
            f, Lc = stack.downsampling, self.left_context_frames(i)
            frames = S_in // f
            valid = (num_valid + f - 1) // f  # [B] real frames at this rate
            held = state.num_left[:, i]
            mask = self._fixed_mask(frames, valid, state.num_memory, held, Lc, chunk.device)
            stack_in = _convert_channels(x, stack.dim)
            h = stack.downsample(stack_in)
            real_here = (torch.arange(frames, device=chunk.device).unsqueeze(0) < valid.unsqueeze(1)).unsqueeze(2)
            caches, layer_convs = [], []
            for j, layer in enumerate(stack.layers):
                cache, conv = state.key_value[i][:, j], state.conv[i][:, j]
                h, new, (conv1, conv2) = layer(h, cache, (conv[:, 0], conv[:, 1]), mask)
                pieces = []
                if M > 0:
                    mean = (new * real_here.to(new.dtype)).sum(dim=1, keepdim=True) / valid.view(B, 1, 1).to(new.dtype)
                    pieces += [cache[:, 1:M], mean]
                if Lc > 0:
                    # the last Lc of [held left context, the chunk's real frames]: right-aligned,
                    # they start at each row's count of real frames
                    context = torch.cat([cache[:, M:], new], dim=1)
                    index = (valid.unsqueeze(1) + torch.arange(Lc, device=chunk.device).unsqueeze(0)).unsqueeze(2)
                    pieces.append(torch.gather(context, 1, index.expand(-1, -1, new.size(2))))
                caches.append(torch.cat(pieces, dim=1) if pieces else cache)
                layer_convs.append(torch.stack([conv1, conv2], dim=1))
            key_values.append(torch.stack(caches, dim=1))
            convs.append(torch.stack(layer_convs, dim=1))
            num_left.append((held + valid).clamp(max=Lc))
            x = stack.out_bypass(stack_in, stack.upsample(h)) * real.to(h.dtype)
            outputs.append(x)
        return self._output(outputs), ZipformerFixedState(
            key_value=tuple(key_values),
            conv=tuple(convs),
            num_memory=(state.num_memory + 1).clamp(max=M),
            num_left=torch.stack(num_left, dim=1),
        )

    def _fixed_mask(
        self, frames: int, valid: Tensor, num_memory: Tensor, num_left: Tensor, left: int, device
    ) -> Tensor:
        """``[B, 1, frames, M + left + frames]`` for :meth:`step_fixed`: the filled memory and
        left-context slots (right-aligned), then the chunk's frames as :meth:`_step_mask` shows them."""
        M = self.max_memory_size
        slots = torch.arange(M + left, device=device).unsqueeze(0)  # [1, M + left]
        memory = slots < M
        # plain logic, not torch.where: onnxruntime has no Where for booleans
        filled = (memory & (slots >= M - num_memory.unsqueeze(1))) | (
            ~memory & (slots - M >= left - num_left.unsqueeze(1))
        )  # [B, M + left]
        t = torch.arange(frames, device=device)
        q, k = t.view(1, -1, 1), t.view(1, 1, -1)
        chunk = (k <= q + self.future_frames) & ((k < valid.view(-1, 1, 1)) | (q == k))  # [B, frames, frames]
        cached = filled.unsqueeze(1).expand(-1, frames, -1)
        return torch.cat([cached, chunk], dim=2).unsqueeze(1)

    def _step_mask(self, frames: int, valid: int, cached: int, device) -> Optional[Tensor]:
        """``[1, 1, frames, cached + frames]`` for one chunk: every cached position is visible; a
        chunk frame sees chunk frames up to ``future_frames`` ahead that are real (or itself)."""
        if self.future_frames >= frames - 1 and valid == frames:
            return None
        t = torch.arange(frames, device=device)
        q, k = t.unsqueeze(1), t.unsqueeze(0)
        chunk = (k <= q + self.future_frames) & ((k < valid) | (q == k))
        mask = torch.cat([torch.ones(frames, cached, dtype=torch.bool, device=device), chunk], dim=1)
        return mask[None, None]
