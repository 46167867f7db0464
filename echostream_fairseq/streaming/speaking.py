"""The last stage: each stream's new units through the incremental vocoder, many streams in shared
calls (:meth:`~echostream_fairseq.vocoder.incremental.IncrementalVocoder.step_batch`); each stream's
speech equals its speech alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Sequence

from torch import Tensor

from echostream_fairseq.streaming.translator_state import TranslatorState
from echostream_fairseq.vocoder.incremental import IncrementalVocoder

__all__ = ["SpeechRequest", "Speech", "Speaker"]


@dataclass(frozen=True)
class SpeechRequest:
    """Attributes: vocoder_ids (the new units' numbers), state, finish (flush the vocoder)."""

    vocoder_ids: List[int]
    state: TranslatorState
    finish: bool


@dataclass(frozen=True)
class Speech:
    """Attributes: audio (the new samples at the vocoder's rate), state."""

    audio: Tensor
    state: TranslatorState


class Speaker:
    def __init__(self, vocoder: IncrementalVocoder) -> None:
        self.vocoder = vocoder

    def step_batch(self, requests: Sequence[SpeechRequest]) -> List[Speech]:
        spoken = self.vocoder.step_batch([(r.vocoder_ids, r.state.vocoder, r.finish) for r in requests])
        return [
            Speech(
                audio, replace(r.state, vocoder=vocoder_state, units_emitted=r.state.units_emitted + len(r.vocoder_ids))
            )
            for r, (audio, vocoder_state) in zip(requests, spoken)
        ]
