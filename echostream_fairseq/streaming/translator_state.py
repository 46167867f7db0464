"""The simultaneous translator's settings, one stream's state and what a chunk produced.

Their own module, below the translators and their stages, which all read and return these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from torch import Tensor

from echostream_fairseq.modules.ctc import CTC_BLANK, CTCMark
from echostream_fairseq.modules.ctc_lexicon import LexiconSearchState
from echostream_fairseq.modules.transformer_layer import LayerCache
from echostream_fairseq.streaming.features import FbankState, ResampleState
from echostream_fairseq.streaming.policy import PolicyConfig, PolicyState
from echostream_fairseq.vocoder.incremental import VocoderState

__all__ = [
    "TranslatorConfig",
    "TranslatorState",
    "StepOutput",
    "UNIT_LOOKAHEAD",
    "fresh_target_side",
]

# text states a subword's units wait for by default (docs/decisions.md)
UNIT_LOOKAHEAD = 1


@dataclass(frozen=True)
class TranslatorConfig:
    """Attributes:
    source_segment_size: milliseconds of source per chunk: the policy decides once per chunk.
    encoder_chunk_ms: milliseconds of source per encoder step (0: the chunk length the
        checkpoint was trained with, or ``source_segment_size`` when that is shorter). A source
        chunk longer than the encoder's is encoded as several encoder steps: the encoder then
        computes what it computed in training and in ``fairseq-generate``, while the policy
        still waits for the whole source chunk (docs/agents.md).
    policy: READ/WRITE settings.
    max_len: target subwords written after the source ends, at most.
    mt_source_window: encoder frames the MT decoder attends, the most recent (0: all).
    target_window: target subwords the MT decoder, T2U encoder and unit decoder attend back (0: all).
    speech_output: run T2U, units and the vocoder (speech-to-speech).
    translate: run the MT decoder (off for the streaming-ASR agent).
    time_stages: return each chunk's wall time per stage (:attr:`StepOutput.stage_seconds`).
    force_writing: never end the sentence nor emit a unit blank, so every stage works on every
        chunk (a stress setting for benchmarks, not for translation).
    sentence_pause_frames: long-form mode when > 0: a sentence ends once the ASR CTC has been
        blank for this many encoder frames after recognising something; the translation of that
        sentence is completed and the target side (MT decoder and its source window, T2U, unit
        decoder, the policy) starts afresh while the encoder and the vocoder stream on.
    sentence_confirmed_pause_frames: a shorter pause (> 0: on) that also ends a sentence when
        the MT decoder, asked for its next subword, answers end of sentence.
    asr_sentence_ends: long-form mode: a sentence also ends where the ASR CTC writes its
        end-of-sentence mark (a model trained with ``--asr-sentence-ends``); the ASR subwords
        after the mark, and in incremental mode the encoder frames after it, start the next one.
    sentence_mark_pause_frames: a mark ends a sentence only once this many encoder frames after
        it are a pause (ASR CTC blank, or the mark repeated) before the next ASR subword, so a mark
        inside a sentence ("grises <mark> aujourd'hui") is not taken for its end (0, the default
        here: every mark; the flags' default, ``--sentence-mark-pause-ms`` 200, gives 5).
    sentence_min_tokens: ASR subwords a sentence needs before a pause or a mark can end it; at the end of
        the stream, a shorter remainder after an ended sentence that has nothing written is not
        translated (a fragment the decoder would only pad into an invented sentence).
    sentence_max_len: in long-form mode, subwords a sentence may get when it is completed, beyond
        ``sentence_max_len_ratio`` x its ST CTC prefix (a bound on a runaway decoder).
    no_repeat_ngram: never write a subword that would repeat an n-gram of this size already in
        the sentence (0: off; fairseq-generate's ``--no-repeat-ngram-size``).
    unit_lookahead: text states after a subword's own that its units wait for (0: none). The
        unit decoder was trained under wait-k masks of a random stride per batch (so of many
        lags), and a subword's sound depends on the next one: one state of lookahead gives the
        units of the whole text (docs/decisions.md).
    unit_refiner_threshold: with a unit refiner, the new units whose CTC confidence (their
        label's highest frame probability) is at or below this are masked and predicted again.
    """

    source_segment_size: int = 320
    encoder_chunk_ms: int = 0
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    max_len: int = 200
    mt_source_window: int = 512
    target_window: int = 64
    speech_output: bool = True
    translate: bool = True
    time_stages: bool = False
    force_writing: bool = False
    sentence_pause_frames: int = 0
    sentence_confirmed_pause_frames: int = 0
    asr_sentence_ends: bool = False
    sentence_mark_pause_frames: int = 0
    sentence_min_tokens: int = 3
    sentence_max_len: int = 10
    sentence_max_len_ratio: float = 2.0
    no_repeat_ngram: int = 0
    unit_lookahead: int = UNIT_LOOKAHEAD
    unit_refiner_threshold: float = 0.3


@dataclass(frozen=True)
class TranslatorState:
    """One stream's state (every tensor bounded; the re-encoding baseline extends it with its prefix).

    The token tuples hold the current sentence only (long-form mode starts them afresh at each
    sentence end); ``sentences`` counts the sentences ended before it.
    """

    source_rate: int
    resample: ResampleState
    fbank: FbankState
    encoder: Any  # the encoder runtime's state (streaming/encoding.py); None in the re-encoding baseline
    encoder_frames: int
    asr_tokens: Tuple[int, ...]
    asr_last: int
    st_tokens: Tuple[int, ...]
    st_last: int
    mt_memory: Optional[List[LayerCache]]  # MT decoder caches (cross keys/values, self keys/values)
    target_tokens: Tuple[int, ...]  # written target subwords
    policy: PolicyState
    t2u_caches: Optional[List[LayerCache]]
    unit_caches: Optional[List[LayerCache]]
    # text states (a subword's, or the sentence end's) turned into units: a count; text states are tensors
    voiced_state_count: int
    unit_last: int
    units_emitted: int  # units handed to the vocoder, a count (StepOutput.units lists a chunk's units)
    vocoder: Optional[VocoderState]
    finished: bool = False
    nonfinite_samples: int = 0
    asr_blank_frames: int = 0  # trailing encoder frames whose ASR CTC argmax is blank
    sentences: int = 0
    # the ASR CTC's sentence-end marks the sentence's end is decided on at this chunk (their
    # subwords counted in the sentence): the chunk's own, after an earlier one that no subword had
    # followed (the last may be waiting in turn: its tokens_before is len(asr_tokens))
    sentence_marks: Tuple[CTCMark, ...] = ()
    asr_search: Optional[LexiconSearchState] = None  # with an ASR lexicon search: its state
    asr_final: Tuple[str, ...] = ()  # the words it made final in the last chunk
    # with ``unit_lookahead``: T2U states [1, p, D] whose units wait for later text
    unit_pending: Optional[Tensor] = None
    # with a unit refiner: the sentence's T2U states [1, m, D] and units so far (its context)
    refiner_text: Optional[Tensor] = None
    refiner_units: Tuple[int, ...] = ()


def fresh_target_side() -> Dict[str, Any]:
    """The :class:`TranslatorState` fields of a target side that has not started (the ST CTC
    prefix, the MT decoder, T2U, the units and the policy): a new stream's, and in long-form mode
    each new sentence's, while the encoder streams on."""
    return dict(
        st_tokens=(),
        mt_memory=None,
        target_tokens=(),
        policy=PolicyState(),
        t2u_caches=None,
        unit_caches=None,
        voiced_state_count=0,
        unit_last=CTC_BLANK,
        unit_pending=None,
        refiner_text=None,
        refiner_units=(),
    )


@dataclass(frozen=True)
class StepOutput:
    """What one chunk produced (all lists are the new items only)."""

    asr_tokens: List[int]
    target_tokens: List[int]
    units: List[int]
    audio: Tensor
    finished: bool
    wrote: bool  # the translation advanced: new subwords, or its sentence (or source) completed
    sentence_end: bool = False  # a sentence ended in this chunk: its translation is complete
    encoder_out: Optional[Tensor] = None  # [1, t, D] new encoder frames (the re-encoding baseline: the whole prefix)
    stage_seconds: Dict[str, float] = field(default_factory=dict)  # per stage, with time_stages
    asr_words: Optional[List[str]] = None  # with an ASR lexicon search: the transcript's new words
