"""What every translator is built from, checked once: the model, its four dictionaries and the
tokens each head may choose, the features' normalisation, the settings, the vocoder and the ASR
search. Both translators (the incremental one and the re-encoding baseline) and each of their
stages take their dependencies from a :class:`TranslatorSetup`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from echostream_fairseq.common.audio import ENCODER_FRAME_MS
from echostream_fairseq.data.text import WORD_START
from echostream_fairseq.modules.ctc import CTC_BLANK
from echostream_fairseq.modules.ctc_lexicon import CtcLexiconDecoder
from echostream_fairseq.streaming.features import FbankState, ResampleStream
from echostream_fairseq.streaming.translator_state import TranslatorConfig, TranslatorState, fresh_target_side
from echostream_fairseq.vocoder.incremental import IncrementalVocoder

__all__ = ["Dictionaries", "TokenRules", "TranslatorSetup"]


@dataclass(frozen=True, eq=False)
class Dictionaries:
    """The model's four fairseq dictionaries.

    Attributes:
        source: the ASR CTC head's subwords (StreamSpeech's ``source_unigram``).
        st: the ST CTC head's subwords (``ctc_target_unigram``).
        target: the MT decoder's subwords (``target_unigram``).
        unit: the unit decoder's discrete units (the task's target dictionary).
    """

    source: object
    st: object
    target: object
    unit: object

    @classmethod
    def of_task(cls, task) -> "Dictionaries":
        """The dictionaries of an ``echostream_speech_to_speech`` task."""
        d = task.multitask_dictionaries
        return cls(d["source_unigram"], d["ctc_target_unigram"], d["target_unigram"], task.target_dictionary)


def _specials(d) -> List[int]:
    return [d.pad(), d.eos(), d.unk()]


@dataclass(frozen=True, eq=False)
class TokenRules:
    """Which tokens each head may choose, and what a chosen token means.

    Attributes:
        source_banned, st_banned, target_banned, unit_banned: indices a head never chooses.
        asr_mark: the ASR CTC's sentence-end mark, when it is read (its eos; never chosen otherwise).
        source_word_start: per ASR subword, whether it starts a word.
        target_eos: the MT decoder's end of sentence (also its first input).
        word_start: per target subword, whether it starts a word.
        unit_ids: unit dictionary index -> the vocoder's unit number.
    """

    source_banned: List[int]
    asr_mark: Optional[int]
    source_word_start: List[bool]
    st_banned: List[int]
    target_banned: List[int]
    unit_banned: List[int]
    target_eos: int
    word_start: List[bool]
    unit_ids: Dict[int, int]

    def vocoder_ids(self, units) -> List[int]:
        """The vocoder's unit numbers of ``units`` (unit dictionary indices; specials dropped)."""
        return [self.unit_ids[u] for u in units if u in self.unit_ids]

    @classmethod
    def build(cls, dictionaries: Dictionaries, config: TranslatorConfig) -> "TokenRules":
        src, tgt, unit = dictionaries.source, dictionaries.target, dictionaries.unit
        target_banned = [tgt.pad(), tgt.unk()]
        unit_banned = _specials(unit)
        if config.force_writing:  # every stage works on every chunk: no end of sentence, no unit blank
            target_banned.append(tgt.eos())
            unit_banned.append(CTC_BLANK)
        return cls(
            source_banned=_specials(dictionaries.source),
            asr_mark=dictionaries.source.eos() if config.asr_sentence_ends else None,
            source_word_start=[src[i].startswith(WORD_START) for i in range(len(src))],
            st_banned=_specials(dictionaries.st),
            target_banned=target_banned,
            unit_banned=unit_banned,
            target_eos=tgt.eos(),
            word_start=[tgt[i].startswith(WORD_START) for i in range(len(tgt))],
            unit_ids={i: int(unit[i]) for i in range(unit.nspecial, len(unit)) if unit[i].isdigit()},
        )


def encoder_chunk_length(model, config: TranslatorConfig) -> int:
    """Encoder frames per encoder step. StreamSpeech sets its encoder's chunk to the source chunk;
    a longer encoder chunk than the model was trained with reads worse, though multi-chunk training
    drew 4, 8, 16 and 32 frames (docs/decisions.md), so by default the encoder keeps its own, or the
    source chunk when that is shorter."""
    if config.encoder_chunk_ms:
        if config.encoder_chunk_ms < ENCODER_FRAME_MS or config.encoder_chunk_ms % ENCODER_FRAME_MS:
            raise ValueError(
                f"--encoder-chunk-ms must be a positive multiple of {ENCODER_FRAME_MS} ms "
                f"(one encoder frame), got {config.encoder_chunk_ms}"
            )
        return config.encoder_chunk_ms // ENCODER_FRAME_MS
    return min(max(1, config.source_segment_size // ENCODER_FRAME_MS), model.encoder.trained_chunk_length)


@dataclass(frozen=True, eq=False)
class TranslatorSetup:
    """Attributes:
    model: an ``EchoStreamModel`` in ``eval()`` mode.
    dictionaries: its :class:`Dictionaries`.
    cmvn: ``(mean, std)`` of the training fbank.
    config: see :class:`~echostream_fairseq.streaming.translator_state.TranslatorConfig`.
    vocoder: an :class:`IncrementalVocoder` (required with ``config.speech_output``).
    asr_decoder: a :class:`CtcLexiconDecoder` for the source transcript (``None``: greedy CTC
        subwords only); the READ/WRITE policy counts greedy subwords either way.
    rules: :class:`TokenRules` of the dictionaries under ``config``.
    chunk_length: encoder frames per encoder step.
    device: where the model runs (audio, fbank and the vocoder stay on the CPU).
    dtype: the activations' dtype (bf16 under ``--model-dtype bf16``; int8 models keep fp32).
    """

    model: object
    dictionaries: Dictionaries
    cmvn: Tuple[Tensor, Tensor]
    config: TranslatorConfig
    vocoder: Optional[IncrementalVocoder]
    asr_decoder: Optional[CtcLexiconDecoder]
    rules: TokenRules
    chunk_length: int
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def build(
        cls,
        model,
        dictionaries: Dictionaries,
        cmvn: Tuple[Tensor, Tensor],
        config: TranslatorConfig,
        vocoder: Optional[IncrementalVocoder] = None,
        asr_decoder: Optional[CtcLexiconDecoder] = None,
    ) -> "TranslatorSetup":
        """Checks the settings against the model and sets its encoder's chunk length."""
        if config.speech_output and vocoder is None:
            raise ValueError("speech output needs a vocoder")
        if config.source_segment_size < ENCODER_FRAME_MS:
            raise ValueError(
                f"--source-segment-size must be at least {ENCODER_FRAME_MS} ms (one encoder frame), "
                f"got {config.source_segment_size}"
            )
        model = model.eval()
        chunk_length = encoder_chunk_length(model, config)
        try:  # the Zipformer's chunks must split evenly at every stack rate
            model.encoder.set_chunk_length(chunk_length)
        except ValueError as err:
            flag = "--encoder-chunk-ms" if config.encoder_chunk_ms else "--source-segment-size"
            value = config.encoder_chunk_ms or config.source_segment_size
            raise ValueError(f"{flag} {value} does not fit this encoder: {err}") from None
        return cls(
            model=model,
            dictionaries=dictionaries,
            cmvn=cmvn,
            config=config,
            vocoder=vocoder,
            asr_decoder=asr_decoder,
            rules=TokenRules.build(dictionaries, config),
            chunk_length=chunk_length,
            device=next(model.parameters()).device,
            dtype=next(p.dtype for p in model.parameters() if p.is_floating_point()),
        )

    def with_config(self, **changes) -> "TranslatorSetup":
        """The same model, dictionaries and vocoder with some config fields changed."""
        return TranslatorSetup.build(
            self.model, self.dictionaries, self.cmvn, replace(self.config, **changes), self.vocoder, self.asr_decoder
        )

    def initial_state(self, source_rate: int, fbank: FbankState, encoder, state_type: type = TranslatorState):
        """A fresh stream's ``state_type`` (the incremental translator's, or the baseline's that
        extends it) whose audio arrives at ``source_rate`` Hz, starting from these fbank and encoder
        states."""
        return state_type(
            source_rate=source_rate,
            resample=ResampleStream(source_rate).initial_state(),
            fbank=fbank,
            encoder=encoder,
            encoder_frames=0,
            asr_tokens=(),
            asr_last=CTC_BLANK,
            st_last=CTC_BLANK,
            units_emitted=0,
            vocoder=self.vocoder.initial_state() if self.vocoder is not None else None,
            asr_search=self.asr_decoder.initial_state() if self.asr_decoder is not None else None,
            **fresh_target_side(),
        )

    def encoder(self):
        """The model's encoder set to this setup's chunk length (translators of other chunk sizes
        may share the model)."""
        encoder = self.model.encoder
        if encoder.backbone.chunk_length != self.chunk_length:
            encoder.set_chunk_length(self.chunk_length)
        return encoder
