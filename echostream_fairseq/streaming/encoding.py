"""The first stages of a chunk: the audio to 16 kHz mono, then fbank, the encoder step and both CTC
heads for many streams at once.

:func:`receive` takes a chunk of any rate and layout to 16 kHz mono samples. :class:`EncoderStage`
runs fbank for every stream as one batch, then the encoder and the CTC heads once per group of
streams whose states stack (:mod:`~echostream_fairseq.modules.batching`: in steady state, all
streams of a translator); each stream's frames and tokens equal those of the stream alone.

The encoder and the heads run in one of two runtimes with the same interface (``initial_state``,
``step`` -> :class:`EncodedChunk`): :class:`TorchEncoder`, the model's own modules, or
:class:`~echostream_fairseq.streaming.graph_encoder.GraphEncoder`, an exported graph under
onnxruntime (``--runtime onnx``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from echostream_fairseq.models.speech_encoder import EncoderStreamState
from echostream_fairseq.modules.batching import group_by_layout, split_state, stack_states, state_layout
from echostream_fairseq.modules.ctc import ctc_blank_frames, ctc_collapse, ctc_labels, ctc_lead_frames
from echostream_fairseq.modules.transformer_layer import LayerCache
from echostream_fairseq.streaming.features import FbankStream, ResampleStream, to_mono
from echostream_fairseq.streaming.setup import TranslatorSetup
from echostream_fairseq.streaming.translator_state import TranslatorState

__all__ = ["Heard", "EncodedChunk", "EncoderStage", "TorchEncoder", "TorchEncoderState", "receive", "search_asr"]


@dataclass(frozen=True)
class Heard:
    """What the encoder stage made of one stream's chunk.

    Attributes:
        asr_new: new greedy ASR CTC subwords.
        st_new: new greedy ST CTC subwords.
        frames: ``[1, t, D]`` the new encoder frames (the re-encoding baseline: the whole prefix;
            ``None`` when it has none yet).
        state: the stream's state with them.
    """

    asr_new: List[int]
    st_new: List[int]
    frames: Optional[Tensor]
    state: TranslatorState


@dataclass(frozen=True)
class EncodedChunk:
    """An encoder runtime's step on a batch of streams: the new encoder frames ``[B, t, D]``, the
    ASR and ST CTC heads' logits on them ``[B, t, V]``, and the runtime's next state."""

    frames: Tensor
    asr_logits: Tensor
    st_logits: Tensor
    state: Any


@dataclass(frozen=True)
class TorchEncoderState:
    """:class:`TorchEncoder`'s state: the speech encoder's, and the ST CTC layers' caches."""

    speech: EncoderStreamState
    st_caches: Optional[List[LayerCache]]


class TorchEncoder:
    """The speech encoder's step and both CTC heads, the model's own modules in torch."""

    def __init__(self, setup: TranslatorSetup) -> None:
        self.setup = setup

    def initial_state(self) -> TorchEncoderState:
        return TorchEncoderState(self.setup.model.encoder.initial_state(), None)

    def step(self, features: Tensor, state: TorchEncoderState, finish: bool) -> EncodedChunk:
        """fbank frames ``[B, t, C]`` -> :class:`EncodedChunk`."""
        model = self.setup.model
        frames, speech = self.setup.encoder().step(features, state.speech, finish)
        st_logits, st_caches = model.st_ctc.step(frames, state.st_caches)
        return EncodedChunk(frames, model.asr_ctc(frames), st_logits, TorchEncoderState(speech, st_caches))


def receive(samples, state: TranslatorState, finish: bool) -> Tuple[Tensor, TranslatorState]:
    """A chunk (``[N]`` or ``[N, channels]`` at the stream's rate) as 16 kHz mono samples; a
    non-finite sample becomes silence and is counted in the state."""
    audio, n_bad = to_mono(samples)
    audio, resample_state = ResampleStream(state.source_rate).step(audio, state.resample, finish)
    return audio, replace(state, resample=resample_state, nonfinite_samples=state.nonfinite_samples + n_bad)


def search_asr(setup: TranslatorSetup, state: TranslatorState, asr_logits: Tensor) -> TranslatorState:
    """The lexicon search over new frames' ASR CTC scores ``[t, V]`` (when there is one)."""
    if setup.asr_decoder is None:
        return state
    words, search = setup.asr_decoder.step(state.asr_search, asr_logits.float().log_softmax(dim=-1))
    return replace(state, asr_search=search, asr_final=tuple(words))


class EncoderStage:
    """fbank, the encoder's step and the CTC heads' (see the module docstring).

    Args:
        setup: the translator's :class:`TranslatorSetup`.
        runtime: what runs the encoder and the heads (``None``: :class:`TorchEncoder`).
    """

    def __init__(self, setup: TranslatorSetup, runtime=None) -> None:
        self.setup = setup
        self.fbank = FbankStream(setup.cmvn)
        self.runtime = TorchEncoder(setup) if runtime is None else runtime

    def step_batch(
        self, states: Sequence[TranslatorState], audios: Sequence[Tensor], finishes: Sequence[bool]
    ) -> List[Heard]:
        """One chunk of 16 kHz samples for each stream."""
        setup, rules = self.setup, self.setup.rules
        features, fbank_states = self.fbank.step_batch(list(audios), [state.fbank for state in states])
        features = [frames.to(setup.device, setup.dtype) for frames in features]
        if len(states) == 1:  # one stream (the agents, a lone feed): nothing to group
            groups = [[0]]
        else:
            groups = group_by_layout(
                [(f.shape, finish, state_layout(s.encoder)) for f, finish, s in zip(features, finishes, states)]
            )
        results: List[Optional[Heard]] = [None] * len(states)
        for group in groups:
            batch = torch.stack([features[i] for i in group])
            encoded = self.runtime.step(batch, stack_states([states[i].encoder for i in group]), finishes[group[0]])
            frames, asr_logits, st_logits = encoded.frames, encoded.asr_logits, encoded.st_logits
            # every stream's best labels in one product per head (the ASR labels once more with the
            # sentence-end mark banned, for the pause count, when marks are read)
            asr_labels = ctc_labels(asr_logits, [b for b in rules.source_banned if b != rules.asr_mark])
            blank_labels = asr_labels if rules.asr_mark is None else ctc_labels(asr_logits, rules.source_banned)
            st_labels = ctc_labels(st_logits, rules.st_banned)
            sizes = [1] * len(group)
            encoders = split_state(encoded.state, sizes, like=[states[i].encoder for i in group])
            for row, (i, enc) in enumerate(zip(group, encoders)):
                results[i] = self._heard(
                    replace(states[i], fbank=fbank_states[i], encoder=enc),
                    frames[row : row + 1],
                    asr_logits[row],
                    (asr_labels[row], blank_labels[row], st_labels[row]),
                )
        return results

    def _heard(
        self, state: TranslatorState, frames: Tensor, asr_logits: Tensor, labels: Tuple[list, list, list]
    ) -> Heard:
        """The CTC heads' new tokens from the new frames' best labels: ASR (the mark allowed), ASR
        (the mark banned) and ST."""
        asr_labels, blank_labels, st_labels = labels
        asr_mark = self.setup.rules.asr_mark
        asr_new, asr_last, seen = ctc_collapse(asr_labels, state.asr_last, asr_mark)
        marks = [m.shifted(len(state.asr_tokens)) for m in seen]
        # an earlier mark no subword has followed: its pause goes on until one comes
        waiting = [m for m in state.sentence_marks if m.tokens_before == len(state.asr_tokens)]
        if waiting:
            lead = ctc_lead_frames(asr_labels, state.asr_last, asr_mark)
            if marks and marks[0].tokens_before == waiting[0].tokens_before:
                marks = marks[1:]  # the same mark again after silence
            marks = [waiting[0].heard(len(asr_labels), lead)] + marks
        st_new, st_last, _ = ctc_collapse(st_labels, state.st_last)
        blanks = ctc_blank_frames(blank_labels, state.asr_blank_frames)
        state = search_asr(self.setup, state, asr_logits)
        return Heard(
            asr_new,
            st_new,
            frames,
            replace(
                state,
                encoder_frames=state.encoder_frames + frames.size(1),
                asr_tokens=state.asr_tokens + tuple(asr_new),
                asr_last=asr_last,
                st_tokens=state.st_tokens + tuple(st_new),
                st_last=st_last,
                asr_blank_frames=blanks,
                sentence_marks=tuple(marks),
            ),
        )
