"""StreamSpeech's own agent, the baseline (``--reencode``): every chunk recomputes fbank, the
encoder and the CTC heads over the whole prefix, re-runs the MT decoder over every written subword,
recomputes the units of the whole text and re-synthesises all of them, keeping only the new part.

Its per-chunk cost grows with the stream: it is the baseline of the long-stream benchmark, and the
only way to run ``echostream_conformer`` checkpoints, whose encoder has no bounded state. It shares
the incremental translator's interface, its setup, policy and sentence ends; its state
(:class:`PrefixState`) adds the prefix it re-reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from echostream_fairseq.common.audio import ENCODER_FRAME_SAMPLES, SAMPLE_RATE
from echostream_fairseq.modules.ctc import CTC_BLANK, ctc_blank_run, ctc_greedy, ctc_greedy_marks
from echostream_fairseq.modules.ctc_lexicon import CtcLexiconDecoder
from echostream_fairseq.streaming.encoding import Heard, receive, search_asr
from echostream_fairseq.streaming.features import FbankStream
from echostream_fairseq.streaming.mt_writing import MTWriter, Written
from echostream_fairseq.streaming.planning import WritePlan, WritePlanner
from echostream_fairseq.streaming.policy import FINISH
from echostream_fairseq.streaming.sentence_ends import SentenceEnds
from echostream_fairseq.streaming.setup import Dictionaries, TranslatorSetup
from echostream_fairseq.streaming.speaking import Speech
from echostream_fairseq.streaming.stage_clock import StageClock
from echostream_fairseq.streaming.translator import check_requests, step_output
from echostream_fairseq.streaming.translator_state import StepOutput, TranslatorConfig, TranslatorState
from echostream_fairseq.streaming.units import Units
from echostream_fairseq.vocoder.incremental import IncrementalVocoder

__all__ = ["PrefixState", "ReencodingTranslator"]


@dataclass(frozen=True)
class PrefixState(TranslatorState):
    """A baseline stream's state: :class:`TranslatorState` (its encoder, CTC, MT, T2U and unit
    caches unused) and the prefix it re-reads every chunk."""

    source_samples: Tensor = field(default_factory=lambda: torch.zeros(0))  # every 16 kHz sample of the sentence
    all_units: Tuple[int, ...] = ()  # the sentence's units so far
    asr_searched: int = 0  # frames of the current prefix the ASR search has read


class ReencodingTranslator:
    """The same arguments and interface as
    :class:`~echostream_fairseq.streaming.translator.SimultaneousTranslator`, for any encoder."""

    def __init__(
        self,
        model,
        dictionaries: Dictionaries,
        cmvn,
        config: TranslatorConfig,
        vocoder: Optional[IncrementalVocoder] = None,
        asr_decoder: Optional[CtcLexiconDecoder] = None,
    ) -> None:
        self.setup = setup = TranslatorSetup.build(model, dictionaries, cmvn, config, vocoder, asr_decoder)
        self.fbank = FbankStream(setup.cmvn)
        self.sentence_ends = SentenceEnds(config, setup.rules)
        self.planner = WritePlanner(config, self.sentence_ends)
        self.mt = MTWriter(setup)

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

    def with_config(self, **changes) -> "ReencodingTranslator":
        s = self.setup
        return ReencodingTranslator(
            s.model, s.dictionaries, s.cmvn, replace(s.config, **changes), s.vocoder, s.asr_decoder
        )

    def initial_state(self, source_rate: int = SAMPLE_RATE) -> PrefixState:
        """A fresh stream whose audio arrives at ``source_rate`` Hz (no encoder state: it re-encodes)."""
        return self.setup.initial_state(source_rate, self.fbank.initial_state(), None, PrefixState)

    @torch.inference_mode()
    def step(self, samples, state: PrefixState, finish: bool = False) -> Tuple[StepOutput, PrefixState]:
        return self.step_batch([(samples, state, finish)])[0]

    @torch.inference_mode()
    def step_batch(self, requests: Sequence[Tuple[object, PrefixState, bool]]) -> List[Tuple[StepOutput, PrefixState]]:
        """Each stream alone (the baseline batches nothing)."""
        check_requests(requests, PrefixState)
        return [self._step(samples, state, finish) for samples, state, finish in requests]

    def _step(self, samples, state: PrefixState, finish: bool) -> Tuple[StepOutput, PrefixState]:
        config = self.config
        clock = StageClock(1, config.time_stages)
        with clock.stage("encoder"):
            audio, state = receive(samples, state, finish)
            heard = self._encode_prefix(state, audio, finish)
        with clock.stage("mt"):
            plan = self.planner.plan(heard.state, finish)
            written = self._write(plan, heard.frames) if plan.target is not None else Written([], None, plan.state)
        wrote = bool(written.target_new) or plan.target == FINISH
        ending = plan.sentence_end is True
        eos_state = self.sentence_ends.confirmed(written.state, written.look_ahead, finish)
        if eos_state is not None:
            text = written.text_states
            written = replace(written, text_states=eos_state if text is None else torch.cat([text, eos_state], 1))
            wrote = ending = True
        units, speech = Units([], [], written.state), None
        if config.translate and config.speech_output:
            with clock.stage("units"):
                if written.text_states is not None:
                    units = self._units(written.state, heard.frames, finish or ending)
            with clock.stage("vocoder"):
                speech = self._speech(units, finish)
        speech = speech or Speech(torch.zeros(0), units.state)
        state = self._next_sentence(speech.state) if ending else speech.state
        return step_output(self.setup, heard, written, units, speech, state, wrote, finish, ending, clock.seconds[0])

    def _encode_prefix(self, state: PrefixState, audio: Tensor, finish: bool) -> Heard:
        """fbank, encoder and CTC over the whole prefix."""
        setup, model, rules = self.setup, self.setup.model, self.setup.rules
        setup.encoder()
        samples = torch.cat([state.source_samples, audio])
        features, _ = self.fbank.step(samples, self.fbank.initial_state())
        if features.size(0) == 0:
            return Heard([], [], None, replace(state, source_samples=samples))
        features = features.to(setup.device, setup.dtype).unsqueeze(0)
        out = model.encoder(features, torch.tensor([features.size(1)], device=setup.device))
        frames = out["encoder_out"][0].transpose(0, 1)  # [1, T, D]
        if not finish:  # an unfinished prefix has no end-of-utterance look-ahead frames to trust
            frames = frames[:, : max(0, frames.size(1) - model.encoder.right_context_length)]
        length = torch.tensor([frames.size(1)], device=setup.device)
        asr_logits = model.asr_ctc(frames)
        # the prefix is the sentence: its marks and the pauses after them (those an earlier chunk
        # judged are judged the same again, so the first that ends the sentence is the incremental
        # translator's)
        asr, _, marks = ctc_greedy_marks(asr_logits[0], CTC_BLANK, rules.source_banned, rules.asr_mark)
        blanks = ctc_blank_run(asr_logits[0], 0, rules.source_banned)
        st = ctc_greedy(model.st_ctc(frames), length, rules.st_banned)[0]
        asr_new, st_new = asr[len(state.asr_tokens) :], st[len(state.st_tokens) :]
        state = search_asr(setup, state, asr_logits[0, state.asr_searched :])
        return Heard(
            asr_new,
            st_new,
            frames,
            replace(
                state,
                source_samples=samples,
                encoder_frames=frames.size(1),
                asr_searched=frames.size(1),
                asr_tokens=tuple(asr),
                st_tokens=tuple(st),
                asr_blank_frames=blanks,
                sentence_marks=marks,
            ),
        )

    def _write(self, plan: WritePlan, frames: Optional[Tensor]) -> Written:
        """Re-decode the written prefix against the whole current source, then write on; nothing is
        kept between chunks."""
        state, eos = plan.state, self.setup.rules.target_eos
        prefix = state.target_tokens
        decoded = self.mt.decode(self.mt.memory_of(frames), [eos, *prefix], prefix, plan.target == FINISH, plan.limit)
        state = replace(state, mt_memory=None, target_tokens=prefix + tuple(decoded.target_new))
        return Written(decoded.target_new, decoded.text_states, state, decoded.look_ahead)

    def _units(self, state: PrefixState, frames: Tensor, flush: bool) -> Units:
        """Decoder states, T2U and units of the whole text (the last ``unit_lookahead`` text states'
        units wait, as in the incremental translator)."""
        setup, model = self.setup, self.setup.model
        eos, k = setup.rules.target_eos, self.config.unit_lookahead
        tokens = list(state.target_tokens) if flush else list(state.target_tokens[:-1])
        prev = torch.tensor([[eos] + tokens], device=setup.device)
        enc = {"encoder_out": [frames.transpose(0, 1)], "encoder_padding_mask": []}
        hidden, _ = model.decoder(prev, enc, features_only=True)
        logits = model.text_to_units(hidden, torch.tensor([prev.size(1)], device=setup.device), k, 1)["unit_logits"]
        ready = prev.size(1) if flush else max(0, prev.size(1) - k)
        logits = logits[:, : ready * model.unit_decoder.upsample_rate]
        lengths = torch.tensor([logits.size(1)], device=setup.device)
        units = ctc_greedy(logits.float(), lengths, setup.rules.unit_banned)[0]
        new = units[len(state.all_units) :]
        return Units(new, setup.rules.vocoder_ids(new), replace(state, all_units=tuple(units)))

    def _speech(self, units: Units, finish: bool) -> Speech:
        """Re-synthesise every unit and keep the audio of the new ones (StreamSpeech's vocoder call)."""
        state, new_ids = units.state, units.vocoder_ids
        if not new_ids:
            return Speech(torch.zeros(0), state)
        incremental = self.setup.vocoder
        vocoder = incremental.vocoder
        all_ids = torch.tensor(self.setup.rules.vocoder_ids(state.all_units))
        if incremental.dur_prediction:
            durations = vocoder.durations(all_ids)
            frames = torch.repeat_interleave(all_ids, durations)
            new_frames = int(durations[-len(new_ids) :].sum())
        else:
            frames, new_frames = all_ids, len(new_ids)
        wave = vocoder.synthesize_frames(frames)
        audio = wave[wave.numel() - new_frames * vocoder.frame_hop :]
        return Speech(audio, replace(state, units_emitted=state.units_emitted + len(new_ids)))

    def _next_sentence(self, state: PrefixState) -> PrefixState:
        """The prefix starts again at the sentence end, so its cost stops growing."""
        at_mark = self.sentence_ends.ending_mark(state) is not None
        nxt = self.sentence_ends.next_sentence(state)
        frames_next = nxt.carried_frames
        keep = (frames_next + self.model.encoder.right_context_length) * ENCODER_FRAME_SAMPLES if at_mark else 0
        return replace(
            nxt.state,
            all_units=(),
            source_samples=state.source_samples[len(state.source_samples) - keep :] if keep else torch.zeros(0),
            encoder_frames=0,
            asr_tokens=(),
            asr_searched=frames_next,  # the kept frames were read by the ASR search already
        )
