"""What each stream writes in a chunk: the READ/WRITE policy's decision
(:func:`~echostream_fairseq.streaming.policy.ctc_policy`) joined with what the sentence ends say.

A sentence known to end here (the ASR CTC's mark, a long pause) is written to its end at once:
greedy decoding gives the same subwords as writing to the policy's target and then finishing
(within the sentence's limit of subwords, which a target passes only beyond ``max_len``). A stream
in a short pause asks whether the MT decoder would end its sentence: its write (a look ahead alone
when the policy reads) gives the decoder's next step after its subwords.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

from echostream_fairseq.streaming.policy import FINISH, ctc_policy
from echostream_fairseq.streaming.sentence_ends import SentenceEnds
from echostream_fairseq.streaming.translator_state import TranslatorConfig, TranslatorState

__all__ = ["WritePlan", "CtcPolicy", "WritePlanner"]


@dataclass(frozen=True)
class WritePlan:
    """Attributes:
    state: the stream's state (its policy state updated).
    target: ``None``: no write; :data:`~echostream_fairseq.streaming.policy.FINISH`: write to the
        end of the sentence; otherwise the subwords to have in total after writing (the subwords
        written already: the look ahead alone).
    limit: the most new subwords the write may add.
    sentence_end: ``True``: the sentence ends in this chunk; ``None``: a short pause, which the MT
        decoder's look ahead confirms or not; ``False``: it goes on.
    """

    state: TranslatorState
    target: Optional[int]
    limit: int
    sentence_end: Optional[bool]


class CtcPolicy:
    """StreamSpeech's READ/WRITE decision for one stream (a stream that does not translate reads).

    Args:
        config: the policy's settings and whether the stream translates at all.
        sentence_ends: long-form mode's sentence ends (a fragment after the last one is not written).
    """

    def __init__(self, config: TranslatorConfig, sentence_ends: SentenceEnds) -> None:
        self.config = config
        self.sentence_ends = sentence_ends

    def decide(self, state: TranslatorState, finish: bool) -> Tuple[TranslatorState, Optional[int]]:
        """``(state with the policy's state, target)``: ``None`` reads, :data:`FINISH` writes to the
        end of the sentence, otherwise the subwords to have in total."""
        if not self.config.translate:
            return state, None
        target, policy_state = ctc_policy(
            self.config.policy,
            state.policy,
            len(state.asr_tokens),
            len(state.st_tokens),
            len(state.target_tokens),
            finish,
        )
        state = replace(state, policy=policy_state)
        if (target == FINISH and self.sentence_ends.is_fragment(state)) or state.encoder_frames == 0:
            target = None
        return state, target


class WritePlanner:
    """Args:
    config: whether the stream translates.
    sentence_ends: long-form mode's sentence ends.
    policy: the READ/WRITE decision (default :class:`CtcPolicy`); anything with its ``decide``.
    """

    def __init__(self, config: TranslatorConfig, sentence_ends: SentenceEnds, policy=None) -> None:
        self.config = config
        self.sentence_ends = sentence_ends
        self.policy = policy if policy is not None else CtcPolicy(config, sentence_ends)

    def plan(self, state: TranslatorState, finish: bool) -> WritePlan:
        """The plan of one stream whose MT memory holds the chunk's frames already."""
        state, target = self.policy.decide(state, finish)
        sentence_end = self.sentence_ends.before_write(state, finish)
        if self.config.translate:
            if sentence_end:
                target = FINISH
            elif target is None and sentence_end is None:
                target = len(state.target_tokens)
        return self.to_target(state, target, sentence_end)

    def to_target(
        self, state: TranslatorState, target: Optional[int], sentence_end: Optional[bool] = False
    ) -> WritePlan:
        """The plan that writes to ``target`` (``None``: no write), with its limit."""
        if target is None:
            limit = 0
        elif target == FINISH:
            limit = self.sentence_ends.finish_limit(state)
        else:
            limit = target - len(state.target_tokens)
        return WritePlan(state, target, limit, sentence_end)
