"""Sentence ends in long-form mode, for
:class:`~echostream_fairseq.streaming.translator.SimultaneousTranslator`: when a sentence ends
(the ASR CTC's sentence-end mark, or a pause, a short one confirmed by the MT decoder), how it is
completed, and how the target side starts the next one while the encoder streams on.

A mixin of the translator (its attributes: ``model``, ``config``, ``tgt_dict``, and its MT and
speech steps), kept apart so each file stays small. See ``docs/longform.md``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from echostream_fairseq.common.audio import ENCODER_FRAME_SAMPLES
from echostream_fairseq.modules.ctc import CTC_BLANK
from echostream_fairseq.streaming.policy import PolicyState
from echostream_fairseq.streaming.translator_state import TranslatorState

__all__ = ["SentenceEnds"]


class SentenceEnds:
    """The translator's long-form steps (see the module docstring)."""

    def _sentence_ends_before_writes(
        self, states: Sequence[TranslatorState], finishes: Sequence[bool]
    ) -> List[Optional[bool]]:
        """Before the writes, whether each stream's sentence ends in this chunk: ``True`` whatever
        the MT decoder says (the ASR CTC's sentence-end mark, a long pause: its last write goes to
        the end of the sentence at once), ``None`` if the decoder must confirm a short pause (the
        stream looks ahead in the write batch), ``False`` otherwise. A finishing stream's sentence
        is completed by its finish instead."""
        return [
            False if finish else self._sentence_end_without_decoder(state) for state, finish in zip(states, finishes)
        ]

    def _short_pauses_confirmed(
        self, items: Sequence[Tuple[TranslatorState, Optional[Tuple[Tensor, Tensor]], bool]]
    ) -> List[Optional[Tensor]]:
        """After the writes, for ``(state, the decoder's next step, finish)`` each (the step from the
        stream's write: scores ``[V]`` and state ``[1, 1, D]`` after its subwords): where a short
        pause ends the sentence because the decoder's best next subword is the end of sentence, that
        decoder state (the sentence's last text state, as a write to :data:`FINISH` would hand it
        on); ``None`` for the others."""
        confirmed: List[Optional[Tensor]] = []
        for state, next_step, finish in items:
            if finish or self._sentence_end_without_decoder(state) is not None:
                confirmed.append(None)
                continue
            if next_step is None:  # the writes look ahead for every stream in a short pause
                raise RuntimeError("a stream in a short pause has no look ahead from its write")
            logits, eos_state = next_step
            confirmed.append(eos_state if self._ends_with(logits) else None)
        return confirmed

    def _sentence_end_without_decoder(self, state: TranslatorState) -> Optional[bool]:
        """Whether the sentence ends, or ``None`` when the MT decoder must confirm a short pause."""
        cfg = self.config
        if not cfg.sentence_pause_frames:
            return False
        if state.sentence_mark is not None and state.sentence_mark[0] >= max(1, cfg.sentence_min_tokens):
            return True
        if len(state.asr_tokens) < max(1, cfg.sentence_min_tokens):
            return False
        if state.asr_blank_frames >= cfg.sentence_pause_frames:
            return True
        short = cfg.sentence_confirmed_pause_frames
        if not short or state.asr_blank_frames < short or not cfg.translate or not state.target_tokens:
            return False
        return None

    def _ends_with(self, logits: Tensor) -> bool:
        logits = logits.clone()
        logits[self.tgt_banned] = float("-inf")
        return int(logits.argmax()) == self.tgt_dict.eos()

    def _is_fragment(self, state: TranslatorState) -> bool:
        """Long-form mode: what is left after the last ended sentence is too short to translate."""
        cfg = self.config
        return (
            bool(cfg.sentence_pause_frames)
            and state.sentences > 0
            and not state.target_tokens
            and len(state.asr_tokens) < cfg.sentence_min_tokens
        )

    def _sentence_limit(self, state: TranslatorState) -> Optional[int]:
        """Subwords a completed sentence may get in long-form mode (None: ``max_len``)."""
        cfg = self.config
        if not cfg.sentence_pause_frames:
            return None
        return min(cfg.max_len, cfg.sentence_max_len + int(cfg.sentence_max_len_ratio * len(state.st_tokens)))

    def _next_sentence(self, state: TranslatorState, enc_new: Optional[Tensor]) -> TranslatorState:
        """Once a sentence's translation is complete (its last subwords, written to the end of
        sentence or confirmed by the decoder's look ahead, and its units, which the caller runs with
        every stream's in the tick), the state that starts the
        next sentence's target side afresh while the encoder streams on."""
        cfg = self.config
        # what the ASR CTC wrote after a mark starts the next sentence (its ST CTC subwords, fewer
        # and later, start afresh)
        mark = state.sentence_mark
        asr_next, frames_next = (state.asr_tokens[mark[0] :], mark[1]) if mark is not None else ((), 0)
        memory = None
        if frames_next and enc_new is not None and not cfg.reencode:
            memory = self._extend_mt_memory(None, enc_new[:, enc_new.size(1) - frames_next :])
        state = replace(
            state,
            asr_tokens=asr_next,
            st_tokens=(),
            mt_memory=memory,
            target_tokens=(),
            policy=PolicyState(),
            t2u_caches=None,
            unit_caches=None,
            voiced_state_count=0,
            unit_last=CTC_BLANK,
            all_units=(),
            unit_pending=None,
            sentences=state.sentences + 1,
            sentence_mark=None,
        )
        if cfg.reencode:  # StreamSpeech's prefix starts again at the sentence end, so its cost stops growing
            keep = (frames_next + self.model.encoder.right_context_length) * ENCODER_FRAME_SAMPLES if mark else 0
            state = replace(
                state,
                source_samples=state.source_samples[len(state.source_samples) - keep :] if keep else torch.zeros(0),
                encoder_frames=0,
                asr_tokens=(),
                asr_searched=frames_next,
            )  # the kept frames were read by the ASR search already
        return state
