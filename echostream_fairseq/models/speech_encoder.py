"""The speech encoder as fairseq sees it: fbank -> causal convolutional subsampler -> streaming backbone.

``EchoStreamSpeechEncoder`` is a ``FairseqEncoder``: its output is fairseq's standard encoder dict
(``encoder_out`` time-first ``[T, B, D]``, ``encoder_padding_mask`` ``[B, T]``, ...), so fairseq's
decoders, CTC heads and beam search plug in unchanged. The backbone is chosen by
``--encoder-type``:

* ``emformer``: :class:`~echostream_fairseq.modules.emformer.Emformer` (bounded streaming state);
* ``zipformer``: :class:`~echostream_fairseq.modules.zipformer.Zipformer` (multi-rate stacks,
  bounded streaming state). Its subsampler has one stride-2 convolution (100 -> 50 Hz) and the
  Zipformer itself halves the rate at its output, so it too gives 40 ms frames;
* ``conformer``: :class:`~echostream_fairseq.modules.conformer.ChunkConformer`, StreamSpeech's
  chunk-based encoder, which re-encodes the prefix when streaming (the baseline).

Streaming: :meth:`EchoStreamSpeechEncoder.step` takes the new fbank frames of a chunk (any number,
possibly 0) with an :class:`EncoderStreamState` and returns the encoder frames they complete. The
subsampler advances by its cache; its output frames wait in ``pending`` until a whole chunk plus
its right context is there, then the backbone steps. With the Emformer and Zipformer backbones the
state is bounded; with the chunk Conformer baseline the backbone state is the whole prefix.

End of utterance: the backbone sees ``right_context_length`` zero frames after the last real frame,
in the full forward and when a stream is finished, so every real frame is output and the two modes
agree (the streamed frames equal the full forward on the concatenated input).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from fairseq.models import FairseqEncoder
from torch import Tensor, nn

from echostream_fairseq.modules.backbone import StreamingBackbone
from echostream_fairseq.modules.batching import counter_field
from echostream_fairseq.modules.conformer import ChunkConformer
from echostream_fairseq.modules.emformer import Emformer
from echostream_fairseq.modules.subsampler import Conv1dSubsampler, SubsamplerState
from echostream_fairseq.modules.zipformer import Zipformer

__all__ = ["EchoStreamSpeechEncoder", "EncoderStreamState", "speech_encoder_defaults", "ENCODER_TYPES"]

ENCODER_TYPES = ("emformer", "zipformer", "conformer")

# StreamSpeech-sized defaults (12 layers, d=256, FFN 2048, 4 heads, 320 ms chunks).
_DEFAULTS = dict(
    encoder_type="emformer",
    input_feat_per_channel=80,
    input_channels=1,
    conv_kernel_sizes="5,5",
    conv_channels=1024,
    subsampler_delay_frames=0,
    encoder_embed_dim=256,
    encoder_ffn_embed_dim=2048,
    encoder_layers=12,
    encoder_attention_heads=4,
    encoder_activation="relu",
    dropout=0.1,
    chunk_length=8,
    left_context_length=32,
    right_context_length=0,
    max_memory_size=4,
    tanh_on_mem=False,
    emformer_conv_kernel_size=0,
    depthwise_conv_kernel_size=31,
)


# Zipformer options (about icefall's small Zipformer: 19M parameters, near the 12-layer Emformer's
# 17.5M); the ones shared with the Emformer take these values when --encoder-type is zipformer.
_ZIPFORMER_DEFAULTS = dict(
    conv_kernel_sizes="5",  # one stride-2 convolution: 100 Hz fbank -> 50 Hz
    stack_dims="192,256,256,256,256,256",
    stack_layers="2,2,2,2,2,2",
    stack_downsampling="1,2,4,8,4,2",
    stack_heads="4,4,4,8,4,4",
    stack_ffn_dims="512,768,768,768,768,768",
    stack_conv_kernels="31,31,15,15,15,31",
    query_head_dim=32,
    value_head_dim=12,
    future_frames=1,
    max_memory_size=0,
)


def _int_list(args: argparse.Namespace, name: str) -> list:
    text = getattr(args, name)
    try:
        return [int(v) for v in str(text).split(",") if v.strip() != ""]
    except ValueError:
        flag = "--" + name.replace("_", "-")
        raise ValueError(f"{flag} must be comma-separated integers, got {text!r}") from None


# options renamed since checkpoints were first written: the stored value moves to the new name
RENAMED_ARGS = {"segment_length": "chunk_length", "multichunk_segment_lengths": "multichunk_lengths"}


def speech_encoder_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill every encoder option that ``args`` lacks with its default (fairseq architecture style);
    a checkpoint's options under their former names (:data:`RENAMED_ARGS`) keep their values."""
    for old, new in RENAMED_ARGS.items():
        if getattr(args, new, None) is None and getattr(args, old, None) is not None:
            setattr(args, new, getattr(args, old))
    defaults = dict(_DEFAULTS)
    if getattr(args, "encoder_type", None) == "zipformer":
        defaults.update(_ZIPFORMER_DEFAULTS)
    else:
        defaults.update({k: v for k, v in _ZIPFORMER_DEFAULTS.items() if k not in _DEFAULTS})
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return args


@dataclass(frozen=True)
class EncoderStreamState:
    """One batch of streams inside :meth:`EchoStreamSpeechEncoder.step`.

    Attributes:
        subsampler: the subsampler's convolution caches.
        pending: ``[B, t, D]`` subsampled frames not yet consumed by the backbone
            (``t < chunk_length + right_context_length``).
        backbone: the backbone's state (``EmformerState`` / ``ZipformerState`` / ``ConformerState``),
            ``None`` before the first backbone step.
        input_frames: fbank frames received so far.
        finished: the stream was finished; no further frames are taken.
    """

    subsampler: SubsamplerState
    pending: Tensor
    backbone: Any
    input_frames: int = counter_field()
    finished: bool


class EchoStreamSpeechEncoder(FairseqEncoder):
    """Args: ``args`` carrying the options of :meth:`add_args` (missing ones take the defaults)."""

    def __init__(self, args: argparse.Namespace, dictionary=None) -> None:
        super().__init__(dictionary)
        args = speech_encoder_defaults(args)
        if args.encoder_type not in ENCODER_TYPES:
            raise ValueError(f"unknown --encoder-type {args.encoder_type!r}; use one of {ENCODER_TYPES}")
        d = args.encoder_embed_dim
        kernels = _int_list(args, "conv_kernel_sizes")
        self.input_dim = args.input_feat_per_channel * args.input_channels
        self.output_dim = args.encoder_embed_dim
        if args.encoder_type == "zipformer":
            if len(kernels) != 1:
                raise ValueError(
                    f"--encoder-type zipformer takes 50 Hz input: --conv-kernel-sizes needs exactly one kernel "
                    f"(one stride-2 convolution, 100 -> 50 Hz), got {args.conv_kernel_sizes!r}"
                )
            stack_dims = _int_list(args, "stack_dims")
            if not stack_dims:
                raise ValueError("--stack-dims needs at least one stack")
            d = stack_dims[0]  # the embedding feeds the first stack at its width
        self.subsample = Conv1dSubsampler(self.input_dim, args.conv_channels, d, kernels, args.subsampler_delay_frames)
        # a LayerNorm after the input projection keeps CTC training off the all-blank plateau
        self.input_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(args.dropout)
        self.encoder_type = args.encoder_type
        # the chunk the model was built (and trained) with; set_chunk_length changes the backbone's only
        self.trained_chunk_length = int(args.chunk_length)
        self.backbone: StreamingBackbone
        if args.encoder_type == "emformer":
            self.backbone = Emformer(
                input_dim=d,
                num_heads=args.encoder_attention_heads,
                ffn_dim=args.encoder_ffn_embed_dim,
                num_layers=args.encoder_layers,
                chunk_length=args.chunk_length,
                dropout=args.dropout,
                activation=args.encoder_activation,
                left_context_length=args.left_context_length,
                right_context_length=args.right_context_length,
                max_memory_size=args.max_memory_size,
                tanh_on_mem=args.tanh_on_mem,
                conv_kernel_size=args.emformer_conv_kernel_size,
            )
        elif args.encoder_type == "zipformer":
            self.backbone = Zipformer(
                input_dim=d,
                output_dim=args.encoder_embed_dim,
                stack_dims=stack_dims,
                stack_layers=_int_list(args, "stack_layers"),
                stack_downsampling=_int_list(args, "stack_downsampling"),
                stack_heads=_int_list(args, "stack_heads"),
                stack_ffn_dims=_int_list(args, "stack_ffn_dims"),
                stack_conv_kernels=_int_list(args, "stack_conv_kernels"),
                chunk_length=args.chunk_length,
                query_head_dim=args.query_head_dim,
                value_head_dim=args.value_head_dim,
                left_context_length=args.left_context_length,
                future_frames=args.future_frames,
                max_memory_size=args.max_memory_size,
                dropout=args.dropout,
            )
        else:
            self.backbone = ChunkConformer(
                input_dim=d,
                num_heads=args.encoder_attention_heads,
                ffn_dim=args.encoder_ffn_embed_dim,
                num_layers=args.encoder_layers,
                chunk_length=args.chunk_length,
                depthwise_conv_kernel_size=args.depthwise_conv_kernel_size,
                dropout=args.dropout,
            )

    @staticmethod
    def add_args(parser: argparse.ArgumentParser) -> None:
        """Every encoder hyperparameter is a flag; defaults come from the architecture preset."""
        parser.add_argument("--encoder-type", choices=ENCODER_TYPES, help="streaming backbone")
        parser.add_argument("--input-feat-per-channel", type=int, metavar="N", help="fbank bins")
        parser.add_argument("--input-channels", type=int, metavar="N", help="input channels")
        parser.add_argument("--conv-kernel-sizes", type=str, metavar="STR", help="subsampler kernels, e.g. 5,5")
        parser.add_argument("--conv-channels", type=int, metavar="N", help="subsampler channels")
        parser.add_argument(
            "--subsampler-delay-frames",
            type=int,
            metavar="N",
            help="fbank frames (10 ms) the subsampler's first convolution is shifted back; "
            "1 lets a Zipformer step on every chunk as it arrives (default 0; 1 for the "
            "echostream_zipformer presets)",
        )
        parser.add_argument("--encoder-embed-dim", type=int, metavar="N", help="encoder dimension")
        parser.add_argument("--encoder-ffn-embed-dim", type=int, metavar="N", help="encoder FFN dimension")
        parser.add_argument("--encoder-layers", type=int, metavar="N", help="encoder layers")
        parser.add_argument("--encoder-attention-heads", type=int, metavar="N", help="encoder attention heads")
        parser.add_argument("--encoder-activation", choices=("relu", "gelu", "silu"), help="Emformer FFN activation")
        parser.add_argument(
            "--chunk-length", type=int, metavar="N", help="encoder frames (40 ms each) per chunk (the streaming step)"
        )
        parser.add_argument(
            "--left-context-length",
            type=int,
            metavar="N",
            help="Emformer/Zipformer cached left context, in 40 ms encoder frames",
        )
        parser.add_argument("--right-context-length", type=int, metavar="N", help="Emformer look-ahead frames")
        parser.add_argument(
            "--max-memory-size", type=int, metavar="N", help="Emformer/Zipformer memory-bank size (0: none)"
        )
        parser.add_argument("--tanh-on-mem", action="store_true", default=None, help="tanh on Emformer memory")
        parser.add_argument(
            "--emformer-conv-kernel-size",
            type=int,
            metavar="N",
            help="Emformer: a causal convolution module of this kernel in every layer (0: none)",
        )
        for name, what in [
            ("dims", "channels"),
            ("layers", "layers"),
            ("downsampling", "rate factor (1 = 50 Hz)"),
            ("heads", "attention heads"),
            ("ffn-dims", "feed-forward size"),
            ("conv-kernels", "causal convolution kernel"),
        ]:
            parser.add_argument(f"--stack-{name}", type=str, metavar="LIST", help=f"Zipformer: {what} per stack")
        parser.add_argument("--query-head-dim", type=int, metavar="N", help="Zipformer query/key channels per head")
        parser.add_argument("--value-head-dim", type=int, metavar="N", help="Zipformer value channels per head")
        parser.add_argument(
            "--future-frames",
            type=int,
            metavar="N",
            help="Zipformer: frames ahead (within the chunk) a frame attends; 0 = causal",
        )
        parser.add_argument("--depthwise-conv-kernel-size", type=int, metavar="N", help="Conformer conv kernel")

    @property
    def right_context_length(self) -> int:
        return self.backbone.right_context_length

    def embed(self, features: Tensor, lengths: Tensor):
        """fbank ``[B, T, C]`` -> normalised subsampled frames ``[B, T', D]`` and their lengths."""
        x, lengths = self.subsample(features, lengths)
        return self.dropout(self.input_norm(x)), lengths

    def forward(
        self, src_tokens: Tensor, src_lengths: Tensor, chunk_length: Optional[int] = None, **kwargs
    ) -> Dict[str, List[Tensor]]:
        """``src_tokens``: fbank ``[B, T, C]``; ``src_lengths`` ``[B]``.

        ``chunk_length`` overrides the backbone's chunk length for this call (multi-chunk
        training; 0 = offline, one chunk over the whole input).
        """
        if src_tokens.dim() != 3 or src_tokens.size(-1) != self.input_dim:
            raise ValueError(
                f"src_tokens must be fbank features [batch, time, {self.input_dim}], got {list(src_tokens.shape)}"
            )
        x, lengths = self.embed(src_tokens, src_lengths)
        padding = torch.arange(x.size(1), device=x.device).unsqueeze(0) >= lengths.unsqueeze(1)  # [B, T]
        x = x.masked_fill(padding.unsqueeze(-1), 0.0)
        R = self.right_context_length
        if R > 0:  # the end-of-utterance right context: R zero frames (see module docstring)
            x = torch.cat([x, x.new_zeros(x.size(0), R, x.size(2))], dim=1)
        x, lengths = self.backbone(x, lengths, chunk_length)
        # the backbone may change the frame rate (the Zipformer halves it)
        padding = torch.arange(x.size(1), device=x.device).unsqueeze(0) >= lengths.unsqueeze(1)
        return {
            "encoder_out": [x.transpose(0, 1)],  # [T, B, D]
            "encoder_padding_mask": [padding],  # [B, T]
            "encoder_embedding": [],
            "encoder_states": [],
            "src_tokens": [],
            "src_lengths": [lengths],
        }

    # -- streaming -------------------------------------------------------------------------------

    def set_chunk_length(self, chunk_length: int) -> None:
        """Encoder frames per streaming step (a ``ValueError`` if the backbone cannot take it: the
        Zipformer's chunk must split evenly at every stack rate)."""
        self.backbone.chunk_length = chunk_length

    def initial_state(self, batch_size: int = 1) -> EncoderStreamState:
        """A fresh stream (``batch_size`` rows stepped together)."""
        p = next(self.parameters())
        return EncoderStreamState(
            subsampler=self.subsample.initial_state(batch_size, p.device, p.dtype),
            pending=torch.zeros(batch_size, 0, self.input_norm.normalized_shape[0], device=p.device, dtype=p.dtype),
            backbone=None,
            input_frames=0,
            finished=False,
        )

    def step(
        self, features: Tensor, state: EncoderStreamState, finish: bool = False
    ) -> Tuple[Tensor, EncoderStreamState]:
        """Feed ``features`` ``[B, t, C]`` (the fbank frames of one chunk) -> new frames ``[B, t', D]``.

        ``finish=True`` ends the stream and returns every remaining frame.
        """
        if not isinstance(state, EncoderStreamState):
            raise ValueError(f"state must be an EncoderStreamState, got {type(state).__name__}")
        if state.finished:
            raise ValueError("the stream is finished; start a new one with initial_state()")
        if features.dim() != 3 or features.size(-1) != self.input_dim:
            raise ValueError(f"features must have shape [batch, time, {self.input_dim}], got {list(features.shape)}")
        if features.size(0) != state.pending.size(0):
            raise ValueError(f"the stream has {state.pending.size(0)} rows but the chunk has {features.size(0)}")
        frames, sub_state = self.embed_step(features, state.subsampler)
        chunks, pending = self.backbone_chunks(torch.cat([state.pending, frames], dim=1), finish)
        outputs = []
        bb_state = state.backbone
        for chunk, right_context in chunks:
            out, bb_state = self.backbone.step(chunk, right_context, bb_state)
            outputs.append(out)
        out = torch.cat(outputs, dim=1) if outputs else pending.new_zeros(pending.size(0), 0, self.output_dim)
        return out, EncoderStreamState(sub_state, pending, bb_state, state.input_frames + features.size(1), finish)

    def embed_step(self, features: Tensor, state: SubsamplerState) -> Tuple[Tensor, SubsamplerState]:
        """The subsampler's step and the input norm: new fbank frames ``[B, t, C]`` -> the
        backbone's input frames they complete ``[B, t', D]``."""
        frames, state = self.subsample.step(features, state)
        return self.dropout(self.input_norm(frames)), state

    def backbone_chunks(self, pending: Tensor, finish: bool) -> Tuple[List[Tuple[Tensor, Optional[Tensor]]], Tensor]:
        """The backbone steps ``pending`` input frames ``[B, t, D]`` allow: ``(chunk, right
        context or None)`` for every whole chunk whose look-ahead has arrived (with ``finish``, the
        end-of-utterance zero frames complete it, and a short last chunk goes too), and the frames
        left waiting."""
        S, R = self.backbone.input_chunk_length, self.backbone.right_context_length
        if finish:
            pending = torch.cat([pending, pending.new_zeros(pending.size(0), R, pending.size(2))], dim=1)
        chunks = []
        while pending.size(1) - R >= (1 if finish else S):
            s = min(S, pending.size(1) - R)
            chunks.append((pending[:, :s], pending[:, s : s + R] if R > 0 else None))
            pending = pending[:, s:]
        return chunks, pending[:, :0] if finish else pending

    def reorder_encoder_out(self, encoder_out: Dict[str, List[Tensor]], new_order: Tensor) -> Dict[str, List[Tensor]]:
        """Reorder the batch for beam search."""

        def pick(key: str, dim: int) -> List[Tensor]:
            return [t.index_select(dim, new_order) for t in encoder_out.get(key, [])]

        return {
            "encoder_out": pick("encoder_out", 1),
            "encoder_padding_mask": pick("encoder_padding_mask", 0),
            "encoder_embedding": pick("encoder_embedding", 0),
            "encoder_states": pick("encoder_states", 1),
            "src_tokens": pick("src_tokens", 0),
            "src_lengths": pick("src_lengths", 0),
        }
