"""The ``echostream`` model: StreamSpeech's multi-task decoders on a swappable streaming encoder.

::

    fbank -> speech encoder (Emformer | Zipformer | chunk Conformer) -> ASR CTC head (source subwords)
                                                        -> ST CTC head (2 causal layers; target subwords)
                                                        -> MT decoder (autoregressive; target subwords)
                                                              -> T2U encoder (causal) -> unit decoder (NAR, CTC)

Simultaneous training, each part switchable:

* multi-chunk: one chunk length per batch drawn from ``--multichunk-lengths`` (0 = the
  whole utterance), so one model serves every chunk size;
* streaming MT mask: the MT decoder's cross-attention for each target token covers only the source
  prefix the CTC READ/WRITE policy would have read (``--k1``, ``--n1``);
* wait-k unit mask: the unit decoder's cross-attention over text states is wait-k (``--k2``,
  ``--n2``; ``--n2 -1`` draws the stride per batch, which also trains the offline case).

Architectures: ``echostream_emformer``, ``echostream_zipformer`` and ``echostream_conformer``
(StreamSpeech-sized), and ``echostream_emformer_tiny`` / ``echostream_zipformer_tiny`` /
``echostream_conformer_tiny`` (CPU-sized).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any, Dict, List, Optional

import torch
from fairseq.models import FairseqEncoderDecoderModel, register_model, register_model_architecture
from torch import Tensor

from echostream_fairseq.common import streamspeech_names
from echostream_fairseq.models.ctc_heads import CTCHead, TransformerCTCHead
from echostream_fairseq.models.mt_decoder import MTDecoder
from echostream_fairseq.models.speech_encoder import EchoStreamSpeechEncoder, speech_encoder_defaults
from echostream_fairseq.models.unit_decoder import UNIT_POSITIONS, CTCUnitDecoder, T2UEncoder
from echostream_fairseq.modules.ctc import ctc_emission_counts
from echostream_fairseq.modules.masks import counts_from, streaming_mt_mask

logger = logging.getLogger(__name__)

__all__ = ["EchoStreamModel"]

# decoder_args keys the model understands, per task, and the model flag each one sets (all optional;
# they override the arch preset)
DECODER_ARGS: Dict[str, Dict[str, str]] = {
    "source_unigram": {},
    "ctc_target_unigram": {"decoder_layers": "st_ctc_layers"},
    "target_unigram": {
        "decoder_layers": "mt_decoder_layers",
        "decoder_embed_dim": "mt_decoder_embed_dim",
        "decoder_ffn_embed_dim": "mt_decoder_ffn_embed_dim",
        "decoder_attention_heads": "mt_decoder_attention_heads",
    },
}


def _parse_chunk_lengths(text: str) -> List[int]:
    try:
        values = [int(v) for v in str(text).split(",") if v.strip() != ""]
    except ValueError:
        raise ValueError(f"--multichunk-lengths must be comma-separated integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise ValueError(f"--multichunk-lengths needs integers >= 0 (0 = whole utterance), got {text!r}")
    return values


def _switch(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    dest = name.replace("-", "_")
    parser.add_argument(f"--{name}", dest=dest, action="store_true", default=None, help=help)
    parser.add_argument(f"--no-{name}", dest=dest, action="store_false", help=f"turn off --{name}")


FREEZABLE_PARTS = ("encoder", "asr_ctc", "st_ctc", "decoder", "t2u_encoder", "unit_decoder")


def _frozen_parts(text: str) -> List[str]:
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    unknown = [p for p in parts if p not in FREEZABLE_PARTS]
    if unknown:
        raise ValueError(f"--freeze-parts: unknown parts {unknown}; choose from {', '.join(FREEZABLE_PARTS)}")
    return parts


def _streamspeech_dest(flag: str) -> str:
    return "streamspeech_" + flag[2:].replace("-", "_")


def _apply_streamspeech_flags(args) -> None:
    """StreamSpeech's model flags given, onto ours (after the multitask YAML: theirs win, as there)."""
    for theirs, ours in streamspeech_names.MODEL_FLAGS.items():
        value = getattr(args, _streamspeech_dest(theirs), None)
        if value is not None:
            for flag in ours:
                setattr(args, flag[2:].replace("-", "_"), value)


def _add_streamspeech_flags(parser: argparse.ArgumentParser) -> None:
    """StreamSpeech's model flags: aliases of ours of the same meaning, its switches for what ours
    always does, and its Conformer's attention settings (only its own exist here)."""
    for theirs, ours in streamspeech_names.MODEL_FLAGS.items():
        kind = float if theirs.endswith("dropout") else int
        parser.add_argument(
            theirs, dest=_streamspeech_dest(theirs), type=kind, help=f"StreamSpeech's name for {' and '.join(ours)}"
        )
    for theirs, why in streamspeech_names.MODEL_FLAGS_ALWAYS_ON.items():
        parser.add_argument(theirs, dest="streamspeech_" + theirs[2:].replace("-", "_"), action="store_true", help=why)
    parser.add_argument(
        "--attn-type",
        choices=("espnet",),
        help="StreamSpeech's: the Conformer's attention is ESPnet's here (relative positions); nothing else exists",
    )
    parser.add_argument(
        "--pos-enc-type",
        choices=("rel_pos",),
        help="StreamSpeech's: the Conformer's positions are relative here; nothing else exists",
    )


@register_model("echostream")
class EchoStreamModel(FairseqEncoderDecoderModel):
    """Encoder + MT decoder (fairseq's encoder-decoder pair, so beam search runs on it) plus the
    CTC heads and the text-to-unit stack."""

    def __init__(self, args, encoder, mt_decoder, asr_ctc, st_ctc, t2u_encoder, unit_decoder) -> None:
        super().__init__(encoder, mt_decoder)
        self.args = args
        self.asr_ctc, self.st_ctc = asr_ctc, st_ctc
        self.t2u_encoder, self.unit_decoder = t2u_encoder, unit_decoder
        self.multichunk_lengths = _parse_chunk_lengths(args.multichunk_lengths)

    @staticmethod
    def add_args(parser: argparse.ArgumentParser) -> None:
        EchoStreamSpeechEncoder.add_args(parser)
        parser.add_argument("--dropout", type=float, metavar="D", help="dropout")
        parser.add_argument("--attention-dropout", type=float, metavar="D", help="attention dropout (decoders)")
        parser.add_argument("--activation-dropout", type=float, metavar="D", help="FFN activation dropout (decoders)")
        parser.add_argument("--st-ctc-layers", type=int, metavar="N", help="causal layers before the ST CTC projection")
        parser.add_argument(
            "--st-ctc-left-context", type=int, metavar="N", help="past encoder frames the ST CTC layers attend (0: all)"
        )
        parser.add_argument("--mt-decoder-layers", type=int, metavar="N", help="MT decoder layers")
        parser.add_argument("--mt-decoder-embed-dim", type=int, metavar="N", help="MT decoder dimension")
        parser.add_argument("--mt-decoder-ffn-embed-dim", type=int, metavar="N", help="MT decoder FFN dimension")
        parser.add_argument("--mt-decoder-attention-heads", type=int, metavar="N", help="MT decoder heads")
        parser.add_argument("--t2u-encoder-layers", type=int, metavar="N", help="text-to-unit encoder layers")
        parser.add_argument("--unit-decoder-layers", type=int, metavar="N", help="unit decoder layers")
        parser.add_argument(
            "--unit-decoder-embed-dim", type=int, metavar="N", help="T2U encoder and unit decoder dimension"
        )
        parser.add_argument(
            "--unit-decoder-ffn-embed-dim", type=int, metavar="N", help="T2U/unit decoder FFN dimension"
        )
        parser.add_argument("--unit-decoder-attention-heads", type=int, metavar="N", help="T2U/unit decoder heads")
        parser.add_argument("--ctc-upsample-rate", type=int, metavar="N", help="unit-decoder positions per text state")
        parser.add_argument(
            "--unit-decoder-positions",
            choices=UNIT_POSITIONS,
            help="sequence: each upsampled position its own sinusoid row; streamspeech: the one row "
            "StreamSpeech's unit decoder gives every position (a checkpoint imported from it)",
        )
        parser.add_argument(
            "--freeze-parts",
            type=str,
            metavar="LIST",
            help="comma-separated parts that training leaves as they are: encoder, asr_ctc, st_ctc, "
            "decoder (MT), t2u_encoder, unit_decoder (e.g. StreamSpeech's imported decoders)",
        )
        _switch(parser, "multichunk", "train with one random chunk length per batch")
        parser.add_argument(
            "--multichunk-lengths",
            type=str,
            metavar="LIST",
            help="chunk lengths (encoder frames) multi-chunk draws from; 0 = whole utterance",
        )
        _switch(parser, "streaming-mt-mask", "train the MT decoder under the CTC policy's streaming mask")
        parser.add_argument("--k1", type=int, metavar="N", help="streaming mask lag (extra ST CTC tokens)")
        parser.add_argument("--n1", type=int, metavar="N", help="streaming mask write stride")
        _switch(parser, "unit-waitk-mask", "train the unit decoder under a wait-k mask over text")
        parser.add_argument("--k2", type=int, metavar="N", help="unit decoder wait-k lag (text states)")
        parser.add_argument("--n2", type=int, metavar="N", help="unit decoder wait-k stride (-1: random per batch)")
        _add_streamspeech_flags(parser)

    @classmethod
    def build_model(cls, args, task) -> "EchoStreamModel":
        _apply_streamspeech_flags(args)
        base_architecture(args)
        for name, mapping in DECODER_ARGS.items():  # the multitask YAML wins over the arch preset
            entry = task.multitask_config.tasks[name]
            for key, dest in mapping.items():
                if key in entry.decoder_args:
                    logger.info("%s: %s = %s from %s", name, dest, entry.decoder_args[key], task.multitask_config.path)
                    setattr(args, dest, int(entry.decoder_args[key]))
        _apply_streamspeech_flags(args)
        _parse_chunk_lengths(args.multichunk_lengths)
        if args.n1 < 1 or args.k1 < 0 or args.k2 < 0 or (args.n2 < 1 and args.n2 != -1):
            raise ValueError(
                f"need k1 >= 0, n1 >= 1, k2 >= 0, n2 >= 1 or -1; got {args.k1}, {args.n1}, {args.k2}, {args.n2}"
            )
        args.input_feat_per_channel = task.data_cfg.input_feat_per_channel
        args.input_channels = task.data_cfg.input_channels
        src_dict = task.multitask_dictionaries["source_unigram"]
        tgt_dict = task.multitask_dictionaries["target_unigram"]
        st_dict = task.multitask_dictionaries["ctc_target_unigram"]
        d = args.encoder_embed_dim
        encoder = EchoStreamSpeechEncoder(args)
        check = getattr(encoder.backbone, "check_chunk_length", None)
        if check is not None:  # the Zipformer's chunks must split evenly at every rate
            for length in _parse_chunk_lengths(args.multichunk_lengths):
                if length:
                    try:
                        check(length)
                    except ValueError as err:
                        raise ValueError(f"--multichunk-lengths {args.multichunk_lengths!r}: {err}") from None
        asr_ctc = CTCHead(d, len(src_dict), args.dropout)
        st_ctc = TransformerCTCHead(
            d,
            len(st_dict),
            args.st_ctc_layers,
            args.encoder_attention_heads,
            args.encoder_ffn_embed_dim,
            args.dropout,
            args.st_ctc_left_context,
        )
        mt_decoder = MTDecoder(
            tgt_dict,
            d,
            args.mt_decoder_embed_dim,
            args.mt_decoder_ffn_embed_dim,
            args.mt_decoder_layers,
            args.mt_decoder_attention_heads,
            args.dropout,
            args.attention_dropout,
            args.activation_dropout,
            max_positions=args.max_target_positions,
        )
        u = args.unit_decoder_embed_dim
        t2u = T2UEncoder(
            args.mt_decoder_embed_dim,
            u,
            args.unit_decoder_ffn_embed_dim,
            args.t2u_encoder_layers,
            args.unit_decoder_attention_heads,
            args.dropout,
        )
        unit_decoder = CTCUnitDecoder(
            u,
            len(task.target_dictionary),
            args.ctc_upsample_rate,
            args.unit_decoder_ffn_embed_dim,
            args.unit_decoder_layers,
            args.unit_decoder_attention_heads,
            args.dropout,
            positions=args.unit_decoder_positions,
        )
        model = cls(args, encoder, mt_decoder, asr_ctc, st_ctc, t2u, unit_decoder)
        for part in _frozen_parts(args.freeze_parts):
            for parameter in getattr(model, part).parameters():
                parameter.requires_grad_(False)
        return model

    # -- training forward ----------------------------------------------------------------------

    def draw_chunk_length(self) -> Optional[int]:
        """Multi-chunk: a random chunk length for this batch (``None`` keeps the encoder's own)."""
        if not (self.training and self.args.multichunk):
            return None
        choices = self.multichunk_lengths
        return choices[int(torch.randint(len(choices), (1,)))]

    def ctc_outputs(self, encoder_out: Dict[str, List[Tensor]]) -> Dict[str, Tensor]:
        """ASR and ST CTC logits ``[B, T, V]`` on the encoder states."""
        x = encoder_out["encoder_out"][0].transpose(0, 1)
        padding = encoder_out["encoder_padding_mask"][0]
        return {"asr_logits": self.asr_ctc(x), "st_logits": self.st_ctc(x, padding)}

    def text_to_units(
        self, mt_hidden: Tensor, text_lengths: Tensor, k2: int = 0, n2: Optional[int] = None
    ) -> Dict[str, Tensor]:
        """MT decoder states ``[B, L, D]`` -> unit logits ``[B, L * r, V]`` and lengths ``[B]``, and
        the T2U states ``[B, L, D_u]`` they came from (what a unit refiner reads)."""
        text = self.t2u_encoder(mt_hidden)
        logits, lengths = self.unit_decoder(text, text_lengths, k2, n2)
        return {"unit_logits": logits, "unit_lengths": lengths, "t2u_states": text}

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Tensor,
        prev_output_tokens: Tensor,
        last_sentence_frame: Optional[Tensor] = None,
        **kwargs: Any,
    ) -> Dict[str, Any]:
        """Teacher-forced pass over every head.

        Args:
            src_tokens: fbank ``[B, T, C]``; src_lengths ``[B]``.
            prev_output_tokens: MT decoder input ``[B, L]`` (eos first).
            last_sentence_frame: ``[B]`` fbank frames: the MT decoder attends only to the encoder
                frames from there on (an example of several sentences whose MT target is the last;
                0 for a single sentence), and the streaming mask counts CTC emissions from there.

        Returns:
            a dict with ``encoder_out``, ``asr_logits`` / ``st_logits`` ``[B, T', V]``,
            ``encoder_lengths``, ``mt_logits`` ``[B, L, V]``, ``unit_logits`` ``[B, L * r, V]``,
            ``unit_lengths`` and the ``chunk_length`` used.
        """
        chunk_length = self.draw_chunk_length()
        encoder_out = self.encoder(src_tokens, src_lengths, chunk_length=chunk_length)
        out: Dict[str, Any] = {"encoder_out": encoder_out, "chunk_length": chunk_length}
        out.update(self.ctc_outputs(encoder_out))
        padding = encoder_out["encoder_padding_mask"][0]
        enc_lengths = encoder_out["src_lengths"][0]
        out["encoder_lengths"] = enc_lengths
        cross_mask = None
        start = None
        if last_sentence_frame is not None:  # fbank frames -> encoder frames
            start = (last_sentence_frame.to(enc_lengths.device) * enc_lengths) // src_lengths.to(enc_lengths.device)
        if self.training and self.args.streaming_mt_mask and chunk_length != 0:
            with torch.no_grad():
                asr_counts = ctc_emission_counts(out["asr_logits"].detach(), padding)
                st_counts = ctc_emission_counts(out["st_logits"].detach(), padding)
                if start is not None:
                    asr_counts, st_counts = counts_from(asr_counts, start), counts_from(st_counts, start)
                cross_mask = streaming_mt_mask(
                    asr_counts,
                    st_counts,
                    prev_output_tokens.size(1),
                    enc_lengths,
                    self.args.k1,
                    self.args.n1,
                    self.encoder.backbone.chunk_length if chunk_length is None else chunk_length,
                )
        if start is not None:
            frames = torch.arange(padding.size(1), device=padding.device)
            visible = (frames.view(1, 1, -1) >= start.view(-1, 1, 1)).expand(-1, prev_output_tokens.size(1), -1)
            cross_mask = visible if cross_mask is None else cross_mask & visible
        mt_logits, extra = self.decoder(prev_output_tokens, encoder_out, cross_attention_mask=cross_mask)
        out["mt_logits"] = mt_logits
        text_lengths = prev_output_tokens.ne(self.decoder.padding_idx).sum(dim=1)
        n2 = None
        if self.training and self.args.unit_waitk_mask:
            n2 = self.args.n2
            if n2 == -1:  # a random stride per batch; a stride past the text length is offline
                n2 = int(torch.randint(1, prev_output_tokens.size(1) + 2, (1,)))
        out.update(self.text_to_units(extra["hidden"], text_lengths, self.args.k2, n2))
        return out

    def max_positions(self):
        return (self.args.max_source_positions, self.args.max_target_positions)


# -- architectures ------------------------------------------------------------------------------


def _default(args, name: str, value) -> None:
    if getattr(args, name, None) is None:
        setattr(args, name, value)


@register_model_architecture("echostream", "echostream_emformer")
def base_architecture(args) -> None:
    """StreamSpeech-sized: 12-layer d=256 encoder, 4-layer d=512 MT decoder, 2+2 layer T2U."""
    speech_encoder_defaults(args)
    _default(args, "attention_dropout", 0.0)
    _default(args, "activation_dropout", 0.0)
    _default(args, "st_ctc_layers", 2)
    _default(args, "st_ctc_left_context", 64)
    _default(args, "mt_decoder_layers", 4)
    _default(args, "mt_decoder_embed_dim", 512)
    _default(args, "mt_decoder_ffn_embed_dim", 2048)
    _default(args, "mt_decoder_attention_heads", 8)
    _default(args, "t2u_encoder_layers", 2)
    _default(args, "unit_decoder_layers", 2)
    _default(args, "unit_decoder_embed_dim", 512)
    _default(args, "unit_decoder_ffn_embed_dim", 2048)
    _default(args, "unit_decoder_attention_heads", 8)
    _default(args, "ctc_upsample_rate", 25)
    _default(args, "unit_decoder_positions", "sequence")
    _default(args, "freeze_parts", "")
    _default(args, "multichunk", True)
    _default(args, "multichunk_lengths", "4,8,16,32,0")
    _default(args, "streaming_mt_mask", True)
    _default(args, "k1", 0)
    _default(args, "n1", 1)
    _default(args, "unit_waitk_mask", True)
    _default(args, "k2", 0)
    _default(args, "n2", -1)


@register_model_architecture("echostream", "echostream_conformer")
def conformer_architecture(args) -> None:
    """The baseline: StreamSpeech's chunk Conformer encoder, same decoders."""
    _default(args, "encoder_type", "conformer")
    base_architecture(args)


@register_model_architecture("echostream", streamspeech_names.ARCH[0])
def streamspeech_architecture(args) -> None:
    """StreamSpeech's ``--arch streamspeech``: its chunk Conformer and decoders, our baseline
    (``echostream_conformer``)."""
    conformer_architecture(args)


def _tiny(args) -> None:
    _default(args, "conv_channels", 256)
    _default(args, "encoder_embed_dim", 144)
    _default(args, "encoder_ffn_embed_dim", 576)
    _default(args, "encoder_layers", 6)
    _default(args, "encoder_attention_heads", 4)
    _default(args, "depthwise_conv_kernel_size", 15)
    _default(args, "st_ctc_layers", 2)
    _default(args, "mt_decoder_layers", 2)
    _default(args, "mt_decoder_embed_dim", 144)
    _default(args, "mt_decoder_ffn_embed_dim", 576)
    _default(args, "mt_decoder_attention_heads", 4)
    _default(args, "t2u_encoder_layers", 1)
    _default(args, "unit_decoder_layers", 2)
    _default(args, "unit_decoder_embed_dim", 144)
    _default(args, "unit_decoder_ffn_embed_dim", 576)
    _default(args, "unit_decoder_attention_heads", 4)


@register_model_architecture("echostream", "echostream_emformer_tiny")
def emformer_tiny_architecture(args) -> None:
    """CPU-sized Emformer model (about 3M parameters): trains on the synthetic corpus in minutes."""
    _tiny(args)
    base_architecture(args)


@register_model_architecture("echostream", "echostream_emformer_conv_tiny")
def emformer_conv_tiny_architecture(args) -> None:
    """``echostream_emformer_tiny`` with the Conformer's causal convolution module (kernel 15) in
    every Emformer layer: at equal training time its CTC heads learn as fast as the Conformer's
    (docs/results/2026-12-06-encoder-comparison.md)."""
    _default(args, "emformer_conv_kernel_size", 15)
    emformer_tiny_architecture(args)


@register_model_architecture("echostream", "echostream_conformer_tiny")
def conformer_tiny_architecture(args) -> None:
    """CPU-sized chunk-Conformer baseline, the same sizes as ``echostream_emformer_tiny``."""
    _default(args, "encoder_type", "conformer")
    _tiny(args)
    base_architecture(args)


def _zipformer(args) -> None:
    _default(args, "encoder_type", "zipformer")
    # one fbank frame of delay lets each 320 ms chunk give its frames as it arrives, not one
    # chunk late (docs/encoders.md, the subsampler)
    _default(args, "subsampler_delay_frames", 1)


@register_model_architecture("echostream", "echostream_zipformer")
def zipformer_architecture(args) -> None:
    """Zipformer encoder (about icefall's small sizes, 256-dim output), the same decoders."""
    _zipformer(args)
    base_architecture(args)


@register_model_architecture("echostream", "echostream_zipformer_tiny")
def zipformer_tiny_architecture(args) -> None:
    """CPU-sized Zipformer model: the decoders of ``echostream_emformer_tiny`` and an encoder of
    about the same parameter count."""
    _zipformer(args)
    _default(args, "stack_dims", "64,80,96,128,96,80")
    _default(args, "stack_layers", "1,1,2,2,2,1")
    _default(args, "stack_heads", "4,4,4,4,4,4")
    _default(args, "stack_ffn_dims", "128,160,192,256,192,160")
    _default(args, "stack_conv_kernels", "15,15,7,7,7,15")
    _default(args, "query_head_dim", 16)
    _default(args, "value_head_dim", 12)
    _tiny(args)
    base_architecture(args)
