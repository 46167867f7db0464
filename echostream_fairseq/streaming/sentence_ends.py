"""Sentence ends in long-form mode: when a sentence ends (the ASR CTC's sentence-end mark, or a
pause, a short one confirmed by the MT decoder), how far its translation may run, and how the
target side starts the next one while the encoder streams on. See ``docs/longform.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

from torch import Tensor

from echostream_fairseq.modules.ctc import CTCMark
from echostream_fairseq.streaming.setup import TokenRules
from echostream_fairseq.streaming.translator_state import TranslatorConfig, TranslatorState, fresh_target_side

__all__ = ["SentenceEnds", "NextSentence"]


@dataclass(frozen=True)
class NextSentence:
    """The state whose target side starts afresh, and the encoder frames heard after the ASR CTC's
    mark (``carried_frames``; those of this chunk, its last, are what the next sentence's MT memory
    starts with)."""

    state: TranslatorState
    carried_frames: int


class SentenceEnds:
    """Args:
    config: the sentence settings (``sentence_pause_frames`` > 0 turns long-form mode on).
    rules: the target dictionary's end of sentence and banned subwords.
    """

    def __init__(self, config: TranslatorConfig, rules: TokenRules) -> None:
        self.config = config
        self.rules = rules

    def before_write(self, state: TranslatorState, finish: bool) -> Optional[bool]:
        """Before the write, whether the sentence ends in this chunk: ``True`` whatever the MT
        decoder says (the ASR CTC's sentence-end mark, a long pause: its last write goes to the end
        of the sentence at once), ``None`` if the decoder must confirm a short pause (the write
        looks ahead), ``False`` otherwise. A finishing stream's sentence is completed by its
        finish instead."""
        return False if finish else self._without_decoder(state)

    def confirmed(
        self, state: TranslatorState, look_ahead: Optional[Tuple[Tensor, Tensor]], finish: bool
    ) -> Optional[Tensor]:
        """After the write (``look_ahead``: the decoder's scores ``[V]`` and state ``[1, 1, D]``
        after the written subwords): where a short pause ends the sentence because the decoder's
        best next subword is the end of sentence, that decoder state (the sentence's last text
        state, as a write to the end would hand it on); ``None`` otherwise."""
        if finish or self._without_decoder(state) is not None:
            return None
        if look_ahead is None:  # the writes look ahead for every stream in a short pause
            raise RuntimeError("a stream in a short pause has no look ahead from its write")
        scores, eos_state = look_ahead
        scores = scores.clone()
        scores[self.rules.target_banned] = float("-inf")
        return eos_state if int(scores.argmax()) == self.rules.target_eos else None

    def _without_decoder(self, state: TranslatorState) -> Optional[bool]:
        """Whether the sentence ends, or ``None`` when the MT decoder must confirm a short pause."""
        cfg = self.config
        if not cfg.sentence_pause_frames:
            return False
        if self.ending_mark(state) is not None:
            return True
        if len(state.asr_tokens) < max(1, cfg.sentence_min_tokens):
            return False
        if state.asr_blank_frames >= cfg.sentence_pause_frames:
            return True
        short = cfg.sentence_confirmed_pause_frames
        if not short or state.asr_blank_frames < short or not cfg.translate or not state.target_tokens:
            return False
        return None

    def ending_mark(self, state: TranslatorState) -> Optional[CTCMark]:
        """Long-form mode: the first of the chunk's marks that ends the sentence (``None``: none).
        A mark ends it after enough ASR subwords, between words (a mark inside one, "aujour <mark>
        d'hui", is not a sentence end: the ASR subword after it, if any, must start a word), and
        followed by a pause of ``sentence_mark_pause_frames`` ("grises <mark> aujourd'hui" runs on
        without one). One still short of its pause may end it at a later chunk; the others leave
        its end to the pause rules."""
        cfg = self.config
        for mark in state.sentence_marks:
            after = state.asr_tokens[mark.tokens_before : mark.tokens_before + 1]
            if (
                mark.tokens_before >= max(1, cfg.sentence_min_tokens)
                and (not after or self.rules.source_word_start[after[0]])
                and mark.pause_frames >= cfg.sentence_mark_pause_frames
            ):
                return mark
        return None

    def _remainder(self, asr_tokens) -> bool:
        """ASR subwords too few for a sentence, or the tail of a word ("d'hui" after "aujour")."""
        starts = self.rules.source_word_start
        return len(asr_tokens) < self.config.sentence_min_tokens or not any(starts[t] for t in asr_tokens)

    def is_fragment(self, state: TranslatorState) -> bool:
        """Long-form mode: what is left after the last ended sentence is too short to translate."""
        cfg = self.config
        return (
            bool(cfg.sentence_pause_frames)
            and state.sentences > 0
            and not state.target_tokens
            and len(state.asr_tokens) < cfg.sentence_min_tokens
        )

    def finish_limit(self, state: TranslatorState) -> int:
        """The most subwords a write to the end of the sentence adds: ``max_len``, or in long-form
        mode up to the sentence's limit (a bound on a runaway decoder)."""
        cfg = self.config
        if not cfg.sentence_pause_frames:
            return cfg.max_len
        if state.sentences > 0 and self._remainder(state.asr_tokens):
            # the rest of a sentence cut too early (a mark or a pause inside it): what is written
            # stays, but it is not padded out into a sentence of its own
            return 0
        limit = min(cfg.max_len, cfg.sentence_max_len + int(cfg.sentence_max_len_ratio * len(state.st_tokens)))
        return max(0, limit - len(state.target_tokens))

    def next_sentence(self, state: TranslatorState) -> NextSentence:
        """Once a sentence's translation is complete (its last subwords and units included), the
        state that starts the next sentence's target side afresh while the encoder streams on."""
        # what the ASR CTC wrote after the mark starts the next sentence (its ST CTC subwords, fewer
        # and later, start afresh), with a later mark still waiting for its pause; a pause ends the
        # sentence after all it heard
        mark = self.ending_mark(state)
        asr_next, carried, marks = (), 0, ()
        if mark is not None:
            asr_next, carried = state.asr_tokens[mark.tokens_before :], mark.frames_after
            last = state.sentence_marks[-1]
            if last is not mark and last.tokens_before == len(state.asr_tokens):  # no subword after it yet
                marks = (last.shifted(-mark.tokens_before),)
        state = replace(
            state,
            asr_tokens=asr_next,
            **fresh_target_side(),
            sentences=state.sentences + 1,
            sentence_marks=marks,
        )
        return NextSentence(state, carried)
