"""Simultaneous translation of a stream (or many), chunk by chunk, with explicit state.

:class:`SimultaneousTranslator` runs StreamSpeech's pipeline on an ``echostream`` model::

    audio chunk -> resample -> fbank (+CMVN) -> subsampler + encoder step -> ASR CTC, ST CTC step
      -> CTC READ/WRITE policy -> MT decoder (greedy, incremental) -> T2U + unit CTC (incremental)
      -> incremental vocoder

Everything is incremental: each stage keeps only what its next step needs
(:class:`TranslatorState`, a frozen dataclass passed in and returned), so a chunk costs the same
wherever it falls in the stream. Attention windows bound the states that would otherwise grow
with the stream: ``mt_source_window`` encoder frames for the MT decoder's cross-attention and
``target_window`` target subwords for the MT decoder's, the T2U encoder's and the unit decoder's
self-attention (both larger than a training sentence, so sentence-length input is unaffected).

Each stage is an object built from the :class:`~echostream_fairseq.streaming.setup.TranslatorSetup`
that returns a small named result: :class:`~echostream_fairseq.streaming.encoding.EncoderStage`
(:class:`~echostream_fairseq.streaming.encoding.Heard`),
:class:`~echostream_fairseq.streaming.planning.WritePlanner`
(:class:`~echostream_fairseq.streaming.planning.WritePlan`),
:class:`~echostream_fairseq.streaming.mt_writing.MTWriter`
(:class:`~echostream_fairseq.streaming.mt_writing.Written`),
:class:`~echostream_fairseq.streaming.sentence_ends.SentenceEnds`,
:class:`~echostream_fairseq.streaming.units.UnitWriter`
(:class:`~echostream_fairseq.streaming.units.Units`) and
:class:`~echostream_fairseq.streaming.speaking.Speaker`
(:class:`~echostream_fairseq.streaming.speaking.Speech`). :meth:`SimultaneousTranslator.step_batch`
is the list of them (docs/architecture.md); every stage runs once for all the streams of a call,
and each stream's result equals its :meth:`~SimultaneousTranslator.step` alone (to float rounding).
With ``time_stages`` each :class:`StepOutput` carries the wall time of the chunk split into
:data:`STAGES`.

StreamSpeech's own agent, which re-encodes the whole prefix every chunk, is
:class:`~echostream_fairseq.streaming.reencoding.ReencodingTranslator` (``--reencode``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

import torch

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.modules.ctc_lexicon import CtcLexiconDecoder
from echostream_fairseq.streaming.encoding import EncoderStage, Heard, receive
from echostream_fairseq.streaming.graph_decoder import GraphMTDecoder
from echostream_fairseq.streaming.graph_encoder import GraphEncoder
from echostream_fairseq.streaming.graph_units import GraphT2UEncoder, GraphUnitDecoder
from echostream_fairseq.streaming.graphs import Graphs
from echostream_fairseq.streaming.mt_writing import MTWriter, Written
from echostream_fairseq.streaming.planning import WritePlanner
from echostream_fairseq.streaming.policy import FINISH
from echostream_fairseq.streaming.sentence_ends import SentenceEnds
from echostream_fairseq.streaming.setup import Dictionaries, TranslatorSetup
from echostream_fairseq.streaming.speaking import Speaker, Speech, SpeechRequest
from echostream_fairseq.streaming.stage_clock import STAGES, StageClock
from echostream_fairseq.streaming.translator_state import StepOutput, TranslatorConfig, TranslatorState
from echostream_fairseq.streaming.units import UnitRequest, Units, UnitWriter
from echostream_fairseq.vocoder.incremental import IncrementalVocoder

__all__ = ["SimultaneousTranslator", "STAGES", "check_requests", "step_output"]


def check_requests(requests: Sequence[Tuple[object, TranslatorState, bool]], state_type: type) -> None:
    """Refuse a request whose state is not a live state of ``state_type`` (exactly: the baseline's
    state extends the incremental one, and neither translator can step the other's)."""
    for _, state, _ in requests:
        if type(state) is not state_type:
            raise ValueError(
                f"state must be a {state_type.__name__} (samples first, then the state), got {type(state).__name__}"
            )
        if state.finished:
            raise ValueError("this stream is finished; start a new one with initial_state()")


def step_output(
    setup: TranslatorSetup,
    heard: Heard,
    written: Written,
    units: Units,
    speech: Speech,
    state: TranslatorState,
    wrote: bool,
    finish: bool,
    sentence_end: bool,
    stage_seconds: dict,
) -> Tuple[StepOutput, TranslatorState]:
    """What a chunk produced (``sentence_end``: a sentence ended here, its last subwords and units
    among the new ones), and the stream's state after it."""
    asr_words = None
    if setup.asr_decoder is not None:
        asr_words = list(state.asr_final) + (setup.asr_decoder.finish(state.asr_search) if finish else [])
    out = StepOutput(
        heard.asr_new,
        written.target_new,
        units.units,
        speech.audio,
        finish,
        wrote,
        sentence_end,
        heard.frames,
        stage_seconds,
        asr_words,
    )
    return out, replace(state, finished=finish)


class SimultaneousTranslator:
    """Args:
    model: an ``EchoStreamModel`` whose encoder has a bounded streaming state (``eval()`` is set here).
    dictionaries: its :class:`~echostream_fairseq.streaming.setup.Dictionaries`.
    cmvn: ``(mean, std)`` of the training fbank.
    config: see :class:`TranslatorConfig`.
    vocoder: an :class:`IncrementalVocoder` (required with ``config.speech_output``).
    asr_decoder: a :class:`CtcLexiconDecoder` for the source transcript (``None``: greedy
        CTC subwords only); the READ/WRITE policy counts greedy subwords either way.
    graphs: the model's exported graphs under onnxruntime (``--runtime onnx``: the encoder stage
        on :class:`~echostream_fairseq.streaming.graph_encoder.GraphEncoder`, the MT decoder on
        :class:`~echostream_fairseq.streaming.graph_decoder.GraphMTDecoder`, T2U and the unit
        decoder on :mod:`~echostream_fairseq.streaming.graph_units`'s); ``None``: torch.
    unit_refiner: a :class:`~echostream_fairseq.models.unit_refiner.UnitRefiner` that predicts
        again the units the unit CTC is less sure of than ``config.unit_refiner_threshold``
        (``None``: the CTC's units as they are); torch only.
    """

    def __init__(
        self,
        model,
        dictionaries: Dictionaries,
        cmvn,
        config: TranslatorConfig,
        vocoder: Optional[IncrementalVocoder] = None,
        asr_decoder: Optional[CtcLexiconDecoder] = None,
        graphs: Optional[Graphs] = None,
        unit_refiner=None,
    ) -> None:
        if model.encoder.encoder_type == "conformer":
            raise ValueError(
                "this checkpoint's encoder is the chunk Conformer, which has no bounded streaming state: "
                "run it with --reencode (StreamSpeech's behaviour)"
            )
        self.setup = setup = TranslatorSetup.build(model, dictionaries, cmvn, config, vocoder, asr_decoder)
        if unit_refiner is not None and graphs is not None:
            raise ValueError("--unit-refiner runs in torch; it cannot join --runtime onnx")
        self.graphs, self.unit_refiner = graphs, unit_refiner
        graphs = graphs or Graphs()
        self.encoding = EncoderStage(setup, None if graphs.encoder is None else GraphEncoder(setup, graphs.encoder))
        self.sentence_ends = SentenceEnds(config, setup.rules)
        self.planner = WritePlanner(config, self.sentence_ends)
        self.mt = MTWriter(
            setup, None if graphs.mt_decoder is None else GraphMTDecoder(model.decoder, graphs.mt_decoder)
        )
        if graphs.t2u is None:
            self.units = UnitWriter(setup, refiner=unit_refiner)
        else:
            self.units = UnitWriter(
                setup,
                GraphT2UEncoder(model.t2u_encoder, graphs.t2u),
                GraphUnitDecoder(model.unit_decoder, graphs.unit_decoder),
            )
        self.speaker = Speaker(vocoder) if vocoder is not None else None

    @property
    def config(self) -> TranslatorConfig:
        return self.setup.config

    @property
    def model(self):
        return self.setup.model

    @property
    def vocoder(self) -> Optional[IncrementalVocoder]:
        return self.setup.vocoder

    @property
    def dictionaries(self) -> Dictionaries:
        return self.setup.dictionaries

    @property
    def chunk_length(self) -> int:
        """Encoder frames per encoder step."""
        return self.setup.chunk_length

    def with_config(self, **changes) -> "SimultaneousTranslator":
        """A translator on the same model, dictionaries and vocoder with some
        :class:`TranslatorConfig` fields changed (e.g. ``time_stages=True``)."""
        s = self.setup
        return SimultaneousTranslator(
            s.model,
            s.dictionaries,
            s.cmvn,
            replace(s.config, **changes),
            s.vocoder,
            s.asr_decoder,
            self.graphs,
            self.unit_refiner,
        )

    def initial_state(self, source_rate: int = SAMPLE_RATE) -> TranslatorState:
        """A fresh stream whose audio arrives at ``source_rate`` Hz."""
        return self.setup.initial_state(
            source_rate, self.encoding.fbank.initial_state(), self.encoding.runtime.initial_state()
        )

    @torch.inference_mode()
    def step(self, samples, state: TranslatorState, finish: bool = False) -> Tuple[StepOutput, TranslatorState]:
        """Feed one chunk of audio (``[N]`` or ``[N, channels]`` at the state's rate; may be empty)
        to the stream whose state is ``state``.

        ``finish=True`` ends the source: the translation is completed and the speech flushed.
        """
        return self.step_batch([(samples, state, finish)])[0]

    @torch.inference_mode()
    def step_batch(
        self, requests: Sequence[Tuple[object, TranslatorState, bool]]
    ) -> List[Tuple[StepOutput, TranslatorState]]:
        """:meth:`step` for several independent streams at once: ``(samples, state, finish)`` each.

        The stages in order, each once for all streams (docs/architecture.md lists them): the
        encoder and both CTC heads as one batch per group of stackable states, the MT memories in
        one projection, the plans, the MT writes in lockstep, the sentence ends, T2U and the unit
        decoder over all streams' new text, the vocoder in shared calls. The results equal
        :meth:`step` per stream (to float rounding: products over more rows may round differently).
        """
        check_requests(requests, TranslatorState)
        config = self.config
        finishes = [finish for _, _, finish in requests]
        clock = StageClock(len(requests), config.time_stages)
        # 1-2. the audio in (16 kHz mono), then fbank, the encoder step and the CTC heads
        with clock.stage("encoder"):
            received = [receive(samples, state, finish) for samples, state, finish in requests]
            heard = self.encoding.step_batch([s for _, s in received], [a for a, _ in received], finishes)
        states = [h.state for h in heard]
        # 3. the MT memories take the new frames; 4. each stream's plan
        with clock.stage("mt"):
            if config.translate:
                states = self.mt.extend_memories(states, [h.frames for h in heard])
            plans = [self.planner.plan(state, finish) for state, finish in zip(states, finishes)]
        # 5. the writes
        writers = [i for i, plan in enumerate(plans) if plan.target is not None]
        with clock.stage("mt", writers):
            written = self.mt.write_all(plans)
        # 6. short pauses the decoder's look ahead confirms: that state is the sentence's last text state
        wrote = [bool(w.target_new) or p.target == FINISH for w, p in zip(written, plans)]
        ending = [p.sentence_end is True for p in plans]
        for i, finish in enumerate(finishes):
            eos_state = self.sentence_ends.confirmed(written[i].state, written[i].look_ahead, finish)
            if eos_state is not None:
                text = written[i].text_states
                written[i] = replace(
                    written[i], text_states=eos_state if text is None else torch.cat([text, eos_state], 1)
                )
                wrote[i] = ending[i] = True
        # 7. the units of every stream's new text (an ended sentence's text is complete); 8. the speech
        if config.translate and config.speech_output:
            with clock.stage("units"):
                units = self.units.step_batch(
                    [UnitRequest(w.state, w.text_states, f or e) for w, f, e in zip(written, finishes, ending)]
                )
            with clock.stage("vocoder"):
                speech = self.speaker.step_batch(
                    [SpeechRequest(u.vocoder_ids, u.state, f) for u, f in zip(units, finishes)]
                )
        else:
            units = [Units([], [], w.state) for w in written]
            speech = [Speech(torch.zeros(0), u.state) for u in units]
        # 9. the ended sentences' target side starts afresh, its MT memory from the frames after the mark
        states = [s.state for s in speech]
        for i in (i for i, e in enumerate(ending) if e):
            nxt = self.sentence_ends.next_sentence(states[i])
            state, frames = nxt.state, heard[i].frames
            if nxt.carried_frames and frames is not None:  # a mark of an earlier chunk: all of this one
                carried = frames[:, max(0, frames.size(1) - nxt.carried_frames) :]
                state = replace(state, mt_memory=self.mt.memory_of(carried))
            states[i] = state
        # 10. what each stream's chunk produced
        return [
            step_output(
                self.setup,
                heard[i],
                written[i],
                units[i],
                speech[i],
                states[i],
                wrote[i],
                finishes[i],
                ending[i],
                clock.seconds[i],
            )
            for i in range(len(requests))
        ]
