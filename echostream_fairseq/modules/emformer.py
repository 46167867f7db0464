"""Emformer: efficient memory transformer for streaming speech (Shi et al., ICASSP 2021).

The input is cut into chunks of ``chunk_length`` frames. Each chunk attends to

* itself,
* ``left_context_length`` earlier frames, whose keys and values are cached and never recomputed,
* ``right_context_length`` look-ahead frames that follow it (processed with the chunk, then
  discarded), and
* a bank of at most ``max_memory_size`` summary vectors of earlier chunks. The memory used by
  layer ``k`` is produced by layer ``k - 1`` (the mean of the input frames for layer 0), so all
  chunks of an utterance can be trained in parallel.

Two modes share the same weights:

* :meth:`Emformer.forward`: a whole (padded) batch of utterances at once, with block attention masks;
  used for training and offline decoding.
* :meth:`Emformer.step`: one chunk plus its right context and an explicit :class:`EmformerState`;
  returns the output and the new state. Its cost does not depend on how long the stream has run.

Streaming an utterance chunk by chunk equals the full forward on it.

The end of a stream: the last chunk may be shorter than ``chunk_length``. It is processed
as it is: no padding frame is attended, and its summary averages only its real frames. This is what
``torchaudio.models.Emformer.forward`` does on a single utterance. torchaudio's ``infer`` only takes
whole chunks, so a short tail has to be zero-padded there, which changes the output. Our
:meth:`Emformer.step` takes the short chunk as it is, so both of our modes agree.

Padded batches: every row of the input holds its ``lengths[b]`` utterance frames, then its own
``right_context_length`` look-ahead frames, then padding. Each row's output equals that row run
alone (torchaudio takes every row's right context from the longest row's positions, so its short
rows differ).

Layout: batch-first ``[B, T, D]`` throughout, like the public API of torchaudio's Emformer.

A convolution module (``conv_kernel_size`` > 0; off by default, which keeps torchaudio's layer):
each layer then adds the Conformer's causal convolution module between its attention and its
feed-forward block, as the convolution-augmented Emformer of icefall does, and the state keeps
the last ``conv_kernel_size - 1`` gated frames of each layer. It needs ``right_context_length`` 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from echostream_fairseq.modules.batching import counter_field
from echostream_fairseq.modules.emformer_layer import _ACTIVATIONS, EmformerLayer

__all__ = [
    "Emformer",
    "EmformerLayer",
    "EmformerState",
    "EmformerFixedState",
    "from_torchaudio",
]


def _weight_init_gains(strategy: Optional[str], num_layers: int) -> List[Optional[float]]:
    if strategy is None:
        return [None] * num_layers
    if strategy == "depthwise":
        return [1.0 / math.sqrt(i + 1) for i in range(num_layers)]
    if strategy == "constant":
        return [1.0 / math.sqrt(2)] * num_layers
    raise ValueError(f"unknown weight_init_scale_strategy {strategy!r}; use 'depthwise', 'constant' or None")


@dataclass(frozen=True)
class EmformerState:
    """Streaming state of an :class:`Emformer`: explicit data, passed in and returned.

    Attributes:
        key_value: one tensor per layer, ``[B, num_memory + num_left, 2, H, D // H]``: the projected
            keys (index 0 of dim 2) and values (index 1) of the memory bank (the first ``num_memory``
            positions, oldest first) followed by those of the left context (oldest first).
        num_memory: memory vectors held, at most ``max_memory_size``.
        num_left: left-context frames held, at most ``left_context_length``.
        frames: utterance frames consumed so far.
        finished: a short (final) chunk was consumed; no further step is allowed.
        signature: the configuration of the model that made the state.
        conv_cache: with a convolution module, one tensor per layer, ``[B, K - 1, D]``: the last
            gated frames its causal convolution sees (zeros at the start); otherwise empty.
    """

    key_value: Tuple[Tensor, ...]
    num_memory: int
    num_left: int
    frames: int = counter_field()
    finished: bool
    signature: Tuple[int, ...]
    conv_cache: Tuple[Tensor, ...] = ()

    @property
    def batch_size(self) -> int:
        return self.key_value[0].size(0)


@dataclass(frozen=True)
class EmformerFixedState:
    """The streaming state in fixed shapes, for graphs (ONNX) whose inputs cannot change shape
    as a stream starts: :meth:`Emformer.step_fixed` takes and returns it.

    Attributes:
        key_value: ``[B, layers, M + L, 2, H, D // H]``: per layer, ``M`` memory slots then ``L``
            left-context slots, each group right-aligned (newest last); unfilled slots are zeros
            that the step's mask hides.
        num_memory: ``[B]`` int64, memory slots filled (at most ``M``).
        num_left: ``[B]`` int64, left-context slots filled (at most ``L``).
        conv_cache: ``[B, layers, K - 1, D]`` with a convolution module, else ``[B, layers, 0, D]``.

    Every tensor is batch-first and every row carries its own counts, so streams at any point
    stack into one batch.
    """

    key_value: Tensor
    num_memory: Tensor
    num_left: Tensor
    conv_cache: Tensor


class Emformer(nn.Module):
    """A stack of :class:`EmformerLayer` with the chunk/left/right/memory bookkeeping.

    The constructor takes torchaudio's arguments, with the same names and defaults.

    Args:
        input_dim: model dimension ``D``.
        num_heads: attention heads.
        ffn_dim: feed-forward hidden size.
        num_layers: layers.
        chunk_length: frames per chunk ``S``.
        dropout: dropout probability.
        activation: ``relu``, ``gelu`` or ``silu``.
        left_context_length: cached frames of left context ``L``.
        right_context_length: look-ahead frames ``R``.
        max_memory_size: memory vectors ``M`` (0 disables the memory bank).
        weight_init_scale_strategy: ``depthwise``, ``constant`` or ``None``.
        tanh_on_mem: tanh on memory vectors (otherwise clamp to [-10, 10]).
        conv_kernel_size: kernel of a causal convolution module in every layer (0: none, the
            default, torchaudio's layer). Needs ``right_context_length`` 0.
    """

    def __init__(
        self,
        input_dim: int,
        num_heads: int,
        ffn_dim: int,
        num_layers: int,
        chunk_length: int,
        dropout: float = 0.0,
        activation: str = "relu",
        left_context_length: int = 0,
        right_context_length: int = 0,
        max_memory_size: int = 0,
        weight_init_scale_strategy: Optional[str] = "depthwise",
        tanh_on_mem: bool = False,
        conv_kernel_size: int = 0,
    ) -> None:
        super().__init__()
        for name, value, low in [
            ("chunk_length", chunk_length, 1),
            ("num_layers", num_layers, 1),
            ("left_context_length", left_context_length, 0),
            ("right_context_length", right_context_length, 0),
            ("max_memory_size", max_memory_size, 0),
            ("conv_kernel_size", conv_kernel_size, 0),
        ]:
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if conv_kernel_size > 0 and right_context_length > 0:
            raise ValueError(
                f"a convolution module (conv_kernel_size {conv_kernel_size}) needs right_context_length 0, "
                f"got {right_context_length}: this implementation has no look-ahead for it"
            )
        gains = _weight_init_gains(weight_init_scale_strategy, num_layers)
        self.layers = nn.ModuleList(
            EmformerLayer(input_dim, num_heads, ffn_dim, dropout, activation, gains[i], tanh_on_mem, conv_kernel_size)
            for i in range(num_layers)
        )
        self.input_dim = input_dim
        self.num_heads = num_heads
        self.chunk_length = chunk_length
        self.left_context_length = left_context_length
        self.right_context_length = right_context_length
        self.max_memory_size = max_memory_size
        self.use_memory = max_memory_size > 0
        self.conv_kernel_size = conv_kernel_size

    @property
    def input_chunk_length(self) -> int:
        """Input frames per streaming step (the same as the output frames)."""
        return self.chunk_length

    @property
    def signature(self) -> Tuple[int, ...]:
        return (
            len(self.layers),
            self.input_dim,
            self.num_heads,
            self.chunk_length,
            self.left_context_length,
            self.right_context_length,
            self.max_memory_size,
            self.conv_kernel_size,
        )

    # -- input checks ------------------------------------------------------------------------

    def _check_frames(self, x: Tensor, what: str) -> None:
        if x.dim() != 3 or x.size(-1) != self.input_dim:
            raise ValueError(f"{what} must have shape [batch, time, {self.input_dim}], got {list(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{what} contains NaN or inf")

    # -- full-utterance mode -----------------------------------------------------------------

    def _masks(self, num_frames: int, lengths: Tensor, chunk_length: int) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        """Block masks for the full-utterance mode (shared by all layers).

        Returns the attention mask (see :meth:`EmformerLayer.forward`), the per-segment averaging
        matrix ``[B, N, T]`` (``None`` without memory) and the right-context gather index ``[B, N * R]``.
        """
        S, L, R, M = chunk_length, self.left_context_length, self.right_context_length, self.max_memory_size
        T, device = num_frames, lengths.device
        N = -(-T // S)
        t = torch.arange(T, device=device)
        seg = torch.arange(N, device=device)
        frame_seg = t // S  # chunk of each utterance frame
        rc_seg = torch.arange(N * R, device=device) // max(R, 1)  # chunk of each right-context frame
        query_seg = torch.cat([frame_seg, rc_seg])
        # utterance keys visible to a chunk i: [i * S - L, (i + 1) * S)
        key_t = t.unsqueeze(0)
        lo = (query_seg * S - L).unsqueeze(1)
        hi = ((query_seg + 1) * S).unsqueeze(1)
        frame_keys = (key_t >= lo) & (key_t < hi)
        rc_keys = query_seg.unsqueeze(1) == rc_seg.unsqueeze(0)
        blocks = [torch.cat([frame_keys, rc_keys], dim=1)]
        if self.use_memory:
            summary_keys = torch.cat(
                [
                    (key_t >= (seg * S - L).unsqueeze(1)) & (key_t < ((seg + 1) * S).unsqueeze(1)),
                    seg.unsqueeze(1) == rc_seg.unsqueeze(0),
                ],
                dim=1,
            )
            blocks.append(summary_keys)
            mask = torch.cat(blocks, dim=0)  # [T + NR + N, T + NR]
            mem = torch.arange(N - 1, device=device).unsqueeze(0)
            qs = torch.cat([query_seg, torch.full((N,), -M - 1, device=device)]).unsqueeze(1)
            memory_keys = (mem < qs) & (mem >= qs - M)  # summaries (qs = -M - 1) see no memory
            mask = torch.cat([mask, memory_keys], dim=1)
        else:
            mask = blocks[0]

        # per-row right context: block i starts at min((i + 1) * S, length)
        starts = torch.minimum(((seg + 1) * S).unsqueeze(0), lengths.unsqueeze(1))  # [B, N]
        rc_index = (starts.unsqueeze(2) + torch.arange(R, device=device)).reshape(lengths.size(0), N * R)

        valid = t.unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
        segment_mean = None
        if self.use_memory:
            weights = (frame_seg.unsqueeze(0) == seg.unsqueeze(1)).unsqueeze(0) & valid.unsqueeze(1)  # [B, N, T]
            weights = weights.float()
            segment_mean = weights / weights.sum(-1, keepdim=True).clamp(min=1.0)

        mask = mask.unsqueeze(0)
        if bool((lengths < T).any()):
            num_keys = mask.size(-1)
            key_valid = torch.ones(lengths.size(0), num_keys, dtype=torch.bool, device=device)
            key_valid[:, :T] = valid
            mask = mask & key_valid[:, None, :]
            # a padding query that sees no key attends to everything instead of producing NaN
            mask = mask | ~mask.any(dim=-1, keepdim=True)
        return mask.unsqueeze(1), segment_mean, rc_index

    def forward(self, input: Tensor, lengths: Tensor, chunk_length: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        """Full-utterance mode for training and offline decoding.

        Args:
            input: ``[B, T + R, D]``: each row's ``lengths[b]`` utterance frames, then its ``R``
                right-context frames, then padding.
            lengths: ``[B]`` utterance frames per row (excluding the right context).
            chunk_length: overrides the module's chunk length for this call (multi-chunk
                training draws one per batch; 0 means one chunk spanning the input). Streaming
                with :meth:`step` always uses the module's ``chunk_length``.

        Returns:
            output ``[B, T, D]`` and ``lengths``.
        """
        self._check_frames(input, "input")
        R = self.right_context_length
        T = input.size(1) - R
        if T < 1:
            raise ValueError(f"input has {input.size(1)} frames; it needs more than right_context_length ({R})")
        if lengths.dim() != 1 or lengths.size(0) != input.size(0):
            raise ValueError(f"lengths must have shape [{input.size(0)}], got {list(lengths.shape)}")
        if bool((lengths < 1).any()) or bool((lengths > T).any()):
            raise ValueError(f"lengths must lie in [1, {T}], got {lengths.tolist()}")
        S = self.chunk_length if chunk_length is None else chunk_length
        mask, segment_mean, rc_index = self._masks(T, lengths, T if S <= 0 else S)
        index = rc_index.unsqueeze(-1).expand(-1, -1, input.size(2))
        x = torch.cat([input[:, :T], torch.gather(input, 1, index)], dim=1)
        memory = None
        if segment_mean is not None:
            segment_mean = segment_mean.to(input.dtype)
            memory = torch.matmul(segment_mean, input[:, :T])[:, :-1]
        for layer in self.layers:
            x, memory = layer(x, T, memory, segment_mean, mask)
        return x[:, :T], lengths

    # -- streaming mode ----------------------------------------------------------------------

    def initial_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> EmformerState:
        """The state of a stream that has not started."""
        if dtype is None:
            dtype = self.layers[
                0
            ].layer_norm_input.weight.dtype  # norms keep the activations' dtype under every precision
        if device is None:
            device = self.layers[0].layer_norm_input.weight.device
        head_dim = self.input_dim // self.num_heads
        empty = torch.zeros(batch_size, 0, 2, self.num_heads, head_dim, device=device, dtype=dtype)
        conv_cache = tuple(
            layer.conv.initial_cache(batch_size, device, dtype) for layer in self.layers if layer.conv is not None
        )
        return EmformerState(tuple(empty for _ in self.layers), 0, 0, 0, False, self.signature, conv_cache)

    def _check_state(self, state: EmformerState, batch_size: int, like: Tensor) -> None:
        if not isinstance(state, EmformerState):
            raise ValueError(f"state must be an EmformerState, got {type(state).__name__}")
        if state.signature != self.signature:
            raise ValueError(
                f"state was made by an Emformer configured as {state.signature}; this one is {self.signature} "
                "(layers, dim, heads, chunk, left, right, memory, convolution kernel)"
            )
        if state.finished:
            raise ValueError("the stream is finished: a short final chunk was already processed; start a new state")
        if state.batch_size != batch_size:
            raise ValueError(f"state holds {state.batch_size} streams but the chunk has {batch_size}")
        if state.key_value[0].dtype != like.dtype:
            raise ValueError(f"state dtype {state.key_value[0].dtype} does not match input dtype {like.dtype}")
        expected = (batch_size, self.conv_kernel_size - 1, self.input_dim)
        if len(state.conv_cache) != (len(self.layers) if self.conv_kernel_size else 0) or any(
            tuple(c.shape) != expected for c in state.conv_cache
        ):
            raise ValueError(
                f"state holds {len(state.conv_cache)} convolution caches of shapes "
                f"{[list(c.shape) for c in state.conv_cache]}; this Emformer needs "
                f"{len(self.layers) if self.conv_kernel_size else 0} of shape {list(expected)}"
            )

    def step(
        self, chunk: Tensor, right_context: Optional[Tensor], state: Optional[EmformerState] = None
    ) -> Tuple[Tensor, EmformerState]:
        """Streaming mode: one chunk.

        Args:
            chunk: ``[B, s, D]`` with ``1 <= s <= chunk_length``; ``s < chunk_length`` marks the
                final chunk of the stream.
            right_context: ``[B, R, D]`` look-ahead frames that follow the chunk (``None`` when R = 0).
            state: from the previous step, or ``None`` to start a stream.

        Returns:
            output ``[B, s, D]`` and the new state.
        """
        self._check_frames(chunk, "chunk")
        S, R = self.chunk_length, self.right_context_length
        s = chunk.size(1)
        if s == 0:
            raise ValueError("empty chunk: a step needs at least one frame")
        if s > S:
            raise ValueError(f"chunk has {s} frames; chunk_length is {S}")
        if R > 0:
            if right_context is None:
                raise ValueError(f"right_context of {R} frames is required")
            self._check_frames(right_context, "right_context")
            if right_context.shape[:2] != (chunk.size(0), R):
                raise ValueError(
                    f"right_context must have shape [{chunk.size(0)}, {R}, {self.input_dim}], "
                    f"got {list(right_context.shape)}"
                )
            x = torch.cat([chunk, right_context], dim=1)
        else:
            if right_context is not None and right_context.size(1) != 0:
                raise ValueError("right_context_length is 0, but right-context frames were given")
            x = chunk
        if state is None:
            state = self.initial_state(chunk.size(0), chunk.device, chunk.dtype)
        self._check_state(state, chunk.size(0), chunk)

        num_memory, num_left = state.num_memory, state.num_left
        mask = None
        memory = None
        chunk_average = None
        if self.use_memory:
            chunk_average = x.new_full((1, s), 1.0 / s)
            memory = torch.matmul(chunk_average, chunk)
            if num_memory > 0:  # the summary query sees no memory
                # additive and in the model's dtype, built once per step, so no layer converts it
                mask = x.new_zeros(s + R + 1, num_memory + num_left + s + R)
                mask[-1, :num_memory] = float("-inf")
        caches, conv_caches = [], []
        conv_in = state.conv_cache if self.conv_kernel_size else (None,) * len(self.layers)
        for layer, cache, conv_cache in zip(self.layers, state.key_value, conv_in):
            x, memory, cache, conv_cache = layer.step(
                x,
                s,
                memory,
                cache,
                num_memory,
                mask,
                chunk_average,
                self.max_memory_size,
                self.left_context_length,
                conv_cache,
            )
            caches.append(cache)
            if conv_cache is not None:
                conv_caches.append(conv_cache)
        new_state = EmformerState(
            key_value=tuple(caches),
            num_memory=min(num_memory + 1, self.max_memory_size) if self.use_memory else 0,
            num_left=min(num_left + s, self.left_context_length),
            frames=state.frames + s,
            finished=s < S,
            signature=self.signature,
            conv_cache=tuple(conv_caches),
        )
        return x[:, :s], new_state

    # -- streaming in fixed shapes (graph export) ----------------------------------------------

    def initial_fixed_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> EmformerFixedState:
        """:meth:`initial_state` in the fixed shapes of :class:`EmformerFixedState`."""
        weight = self.layers[0].layer_norm_input.weight
        device = weight.device if device is None else device
        dtype = weight.dtype if dtype is None else dtype
        slots = self.max_memory_size + self.left_context_length
        head_dim = self.input_dim // self.num_heads
        return EmformerFixedState(
            key_value=torch.zeros(
                batch_size, len(self.layers), slots, 2, self.num_heads, head_dim, device=device, dtype=dtype
            ),
            num_memory=torch.zeros(batch_size, dtype=torch.long, device=device),
            num_left=torch.zeros(batch_size, dtype=torch.long, device=device),
            conv_cache=torch.zeros(
                batch_size,
                len(self.layers),
                max(self.conv_kernel_size - 1, 0),
                self.input_dim,
                device=device,
                dtype=dtype,
            ),
        )

    def _fixed_mask(self, state: EmformerFixedState, new_keys: Tensor) -> Tensor:
        """Additive ``[B, 1, Q, M + L + n]`` for :meth:`step_fixed`: a cache slot is seen once
        filled, the ``n`` new rows (``new_keys`` ``[B, n]``, any values) always; the summary query
        (the last, with memory) sees no memory slot."""
        M, L = self.max_memory_size, self.left_context_length
        slot = torch.arange(M + L, device=new_keys.device).unsqueeze(0)
        memory_slot = slot < M
        filled = (memory_slot & (slot >= M - state.num_memory.unsqueeze(1))) | (
            ~memory_slot & (slot - M >= L - state.num_left.unsqueeze(1))
        )
        keys = torch.cat([filled, torch.ones_like(new_keys, dtype=torch.bool)], dim=1)  # [B, K]
        queries = keys.unsqueeze(1).expand(-1, new_keys.size(1), -1)
        if self.use_memory:
            summary = torch.cat([slot >= M, torch.ones_like(new_keys[:1], dtype=torch.bool)], dim=1) & keys
            queries = torch.cat([queries, summary.unsqueeze(1)], dim=1)
        zero = torch.zeros((), dtype=state.key_value.dtype, device=new_keys.device)
        return torch.where(queries, zero, float("-inf")).unsqueeze(1)

    def step_fixed(
        self, chunk: Tensor, right_context: Optional[Tensor], state: EmformerFixedState
    ) -> Tuple[Tensor, EmformerFixedState]:
        """:meth:`step` over :class:`EmformerFixedState` (its output equals :meth:`step`'s
        within rounding). No input checks: this is the form traced into a graph; ``chunk``
        ``[B, s, D]``, ``s <= chunk_length`` (shorter only for a stream's last chunk)."""
        R, M, L = self.right_context_length, self.max_memory_size, self.left_context_length
        s = chunk.size(1)
        x = torch.cat([chunk, right_context], dim=1) if R > 0 else chunk
        memory = chunk.mean(dim=1, keepdim=True) if self.use_memory else None
        mask = self._fixed_mask(state, x[:, :, 0])
        caches, conv_caches = [], []
        for i, layer in enumerate(self.layers):
            conv_cache = state.conv_cache[:, i] if layer.conv is not None else None
            x, memory, cache, conv_cache = layer.step_fixed(x, s, memory, state.key_value[:, i], mask, M, L, conv_cache)
            caches.append(cache)
            conv_caches.append(state.conv_cache[:, i] if conv_cache is None else conv_cache)
        ones = torch.ones_like(chunk[:, :, 0], dtype=torch.long).sum(dim=1)  # s per row, traced as a shape
        new_state = EmformerFixedState(
            key_value=torch.stack(caches, dim=1),
            num_memory=(state.num_memory + 1).clamp(max=M) if self.use_memory else state.num_memory,
            num_left=(state.num_left + ones).clamp(max=L),
            conv_cache=torch.stack(conv_caches, dim=1),
        )
        return x[:, :s], new_state

    def infer(
        self, input: Tensor, lengths: Optional[Tensor] = None, states: Optional[EmformerState] = None
    ) -> Tuple[Tensor, Tensor, EmformerState]:
        """torchaudio-shaped streaming call.

        Args:
            input: ``[B, s + R, D]``: a chunk and its right context (``s = chunk_length`` except
                for the final chunk of a stream).
            lengths: ``[B]`` valid frames per row of ``input``; every row must be whole.
            states: from the previous call, or ``None``.

        Returns:
            output ``[B, s, D]``, output lengths ``[B]`` (= lengths - R) and the new state.
        """
        R = self.right_context_length
        if input.dim() != 3:
            raise ValueError(f"input must have shape [batch, time, {self.input_dim}], got {list(input.shape)}")
        s = input.size(1) - R
        if lengths is not None and bool((lengths != input.size(1)).any()):
            raise ValueError(
                f"every row of a streaming step must hold {input.size(1)} valid frames, got lengths "
                f"{lengths.tolist()}; pass a shorter input for the final chunk instead"
            )
        if s < 1:
            raise ValueError(f"input has {input.size(1)} frames; a step needs more than right_context_length ({R})")
        output, state = self.step(input[:, :s], input[:, s:] if R > 0 else None, states)
        output_lengths = torch.full((input.size(0),), s, dtype=torch.long, device=input.device)
        return output, output_lengths, state


def from_torchaudio(ta_emformer: nn.Module) -> Emformer:
    """Build an :class:`Emformer` carrying the weights of a ``torchaudio.models.Emformer``.

    The two then compute the same function: ``forward(input, lengths)`` on the same input, and
    ``infer`` called chunk by chunk (torchaudio's list states; ours an :class:`EmformerState`).
    """
    ta_layers: Sequence[nn.Module] = ta_emformer.emformer_layers
    first = ta_layers[0]
    attn = first.attention
    activation = next((name for name, cls in _ACTIVATIONS.items() if isinstance(first.pos_ff[2], cls)), None)
    if activation is None:
        raise ValueError(f"unsupported torchaudio activation {type(first.pos_ff[2]).__name__}")
    model = Emformer(
        input_dim=attn.input_dim,
        num_heads=attn.num_heads,
        ffn_dim=first.pos_ff[1].out_features,
        num_layers=len(ta_layers),
        chunk_length=ta_emformer.segment_length,
        dropout=attn.dropout,
        activation=activation,
        left_context_length=ta_emformer.left_context_length,
        right_context_length=ta_emformer.right_context_length,
        max_memory_size=ta_emformer.max_memory_size,
        weight_init_scale_strategy=None,
        tanh_on_mem=attn.tanh_on_mem,
    )
    ref = next(ta_emformer.parameters())
    model.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        for ours, theirs in zip(model.layers, ta_layers):
            a = theirs.attention
            ours.qkv_proj.weight.copy_(torch.cat([a.emb_to_query.weight, a.emb_to_key_value.weight]))
            ours.qkv_proj.bias.copy_(torch.cat([a.emb_to_query.bias, a.emb_to_key_value.bias]))
            ours.out_proj.load_state_dict(a.out_proj.state_dict())
            ours.layer_norm_input.load_state_dict(theirs.layer_norm_input.state_dict())
            ours.layer_norm_output.load_state_dict(theirs.layer_norm_output.state_dict())
            # torchaudio's pos_ff: LayerNorm, Linear, activation, Dropout, Linear, Dropout
            for mine, i in ((ours.ffn_norm, 0), (ours.ffn_in, 1), (ours.ffn_out, 4)):
                mine.load_state_dict(theirs.pos_ff[i].state_dict())
    model.train(ta_emformer.training)
    return model
