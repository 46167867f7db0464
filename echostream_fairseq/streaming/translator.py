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

The translator composes the model's own incremental steps (the encoder's, the ST CTC head's, the
MT decoder's, the T2U encoder's and the unit decoder's ``step``) with the READ/WRITE policy of
:mod:`~echostream_fairseq.streaming.policy`. With ``time_stages`` each :class:`StepOutput` carries
the wall time of the chunk split into :data:`STAGES` (off, the clock is never read).

:meth:`SimultaneousTranslator.step_batch` steps many independent streams at once: the encoder and
CTC heads as one batch per group of stackable states (:mod:`~echostream_fairseq.modules.batching`),
the MT writes in lockstep over padded caches (:mod:`~echostream_fairseq.streaming.mt_writing`),
T2U and units packed together, and the vocoder once for all (:mod:`~echostream_fairseq.streaming.speaking`);
each stream's result equals its :meth:`~SimultaneousTranslator.step` alone (to float rounding).

``reencode=True`` reproduces StreamSpeech's agent instead: every chunk recomputes fbank, the
encoder and the CTC heads over the whole prefix, re-runs the MT decoder over every written token,
recomputes the units of the whole text and re-synthesises all of them, keeping only the new part.
Its per-chunk cost grows with the stream; it is the baseline of the long-stream benchmark, and
the only mode for ``echostream_conformer`` checkpoints, whose encoder has no bounded state.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from echostream_fairseq.common.audio import ENCODER_FRAME_MS, SAMPLE_RATE
from echostream_fairseq.data.text import WORD_START
from echostream_fairseq.modules.batching import group_by_layout, split_state, stack_states, state_layout
from echostream_fairseq.modules.ctc import (
    CTC_BLANK,
    ctc_blank_frames,
    ctc_blank_run,
    ctc_collapse,
    ctc_greedy,
    ctc_greedy_marks,
    ctc_labels,
)
from echostream_fairseq.modules.ctc_lexicon import CtcLexiconDecoder
from echostream_fairseq.streaming.features import FbankStream, ResampleStream, to_mono
from echostream_fairseq.streaming.mt_writing import MTWriting
from echostream_fairseq.streaming.policy import FINISH, PolicyState, ctc_policy
from echostream_fairseq.streaming.sentence_ends import SentenceEnds
from echostream_fairseq.streaming.speaking import Speaking
from echostream_fairseq.streaming.stage_clock import STAGES, StageClock, credit_share
from echostream_fairseq.streaming.translator_state import StepOutput, TranslatorConfig, TranslatorState
from echostream_fairseq.vocoder.incremental import IncrementalVocoder

__all__ = ["SimultaneousTranslator", "STAGES"]


class SimultaneousTranslator(MTWriting, Speaking, SentenceEnds):
    """Args:
    model: an ``EchoStreamModel`` (``eval()`` is set here).
    src_dict, st_dict, tgt_dict, unit_dict: the source (ASR CTC), ST CTC, MT and unit dictionaries.
    cmvn: ``(mean, std)`` of the training fbank.
    config: see :class:`TranslatorConfig`.
    vocoder: an :class:`IncrementalVocoder` (required with ``config.speech_output``).
    asr_decoder: a :class:`CtcLexiconDecoder` for the source transcript (``None``: greedy
        CTC subwords only); the READ/WRITE policy counts greedy subwords either way.
    """

    def __init__(
        self,
        model,
        src_dict,
        st_dict,
        tgt_dict,
        unit_dict,
        cmvn,
        config: TranslatorConfig,
        vocoder: Optional[IncrementalVocoder] = None,
        asr_decoder: Optional[CtcLexiconDecoder] = None,
    ) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device  # audio, fbank and the vocoder stay on the CPU
        # the activations' dtype (bf16 under --model-dtype bf16; int8 models keep fp32 activations)
        self.dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
        self.src_dict, self.st_dict, self.tgt_dict, self.unit_dict = src_dict, st_dict, tgt_dict, unit_dict
        self.config = config
        encoder = model.encoder
        if encoder.encoder_type == "conformer" and not config.reencode:
            raise ValueError(
                "this checkpoint's encoder is the chunk Conformer, which has no bounded streaming state: "
                "run it with --reencode (StreamSpeech's behaviour)"
            )
        if config.speech_output and vocoder is None:
            raise ValueError("speech output needs a vocoder")
        if config.source_segment_size < ENCODER_FRAME_MS:
            raise ValueError(
                f"--source-segment-size must be at least {ENCODER_FRAME_MS} ms (one encoder frame), "
                f"got {config.source_segment_size}"
            )
        self.chunk_length = self._encoder_chunk_length(model, config)
        try:  # the Zipformer's chunks must split evenly at every stack rate
            encoder.set_chunk_length(self.chunk_length)
        except ValueError as err:
            flag = "--encoder-chunk-ms" if config.encoder_chunk_ms else "--source-segment-size"
            value = config.encoder_chunk_ms or config.source_segment_size
            raise ValueError(f"{flag} {value} does not fit this encoder: {err}") from None
        self.cmvn = cmvn
        self.fbank = FbankStream(cmvn)
        self.vocoder = vocoder
        self.asr_decoder = asr_decoder
        self.src_banned = self._specials(src_dict)
        # the ASR CTC's sentence-end mark, when it is read (its eos; never chosen otherwise)
        self.asr_mark = src_dict.eos() if config.asr_sentence_ends else None
        self.st_banned = self._specials(st_dict)
        self.tgt_banned = [tgt_dict.pad(), tgt_dict.unk()]
        self.unit_banned = self._specials(unit_dict)
        if config.force_writing:
            self.tgt_banned.append(tgt_dict.eos())
            self.unit_banned.append(CTC_BLANK)
        # unit dictionary index -> vocoder unit id (the symbol is the unit number)
        self.unit_ids = {
            i: int(unit_dict[i]) for i in range(unit_dict.nspecial, len(unit_dict)) if unit_dict[i].isdigit()
        }
        self.word_start = [tgt_dict[i].startswith(WORD_START) for i in range(len(tgt_dict))]

    @staticmethod
    def _encoder_chunk_length(model, config: TranslatorConfig) -> int:
        """Encoder frames per encoder step. StreamSpeech sets its encoder's chunk to the source
        chunk; a longer encoder chunk than the model was trained with reads worse, though
        multi-chunk training drew 4, 8, 16 and 32 frames (docs/decisions.md), so by default the
        encoder keeps its own, or the source chunk when that is shorter."""
        if config.encoder_chunk_ms:
            if config.encoder_chunk_ms < ENCODER_FRAME_MS or config.encoder_chunk_ms % ENCODER_FRAME_MS:
                raise ValueError(
                    f"--encoder-chunk-ms must be a positive multiple of {ENCODER_FRAME_MS} ms "
                    f"(one encoder frame), got {config.encoder_chunk_ms}"
                )
            return config.encoder_chunk_ms // ENCODER_FRAME_MS
        return min(max(1, config.source_segment_size // ENCODER_FRAME_MS), model.encoder.trained_chunk_length)

    def with_config(self, **changes) -> "SimultaneousTranslator":
        """A translator on the same model, dictionaries and vocoder with some
        :class:`TranslatorConfig` fields changed (e.g. ``time_stages=True``)."""
        return SimultaneousTranslator(
            self.model,
            self.src_dict,
            self.st_dict,
            self.tgt_dict,
            self.unit_dict,
            self.cmvn,
            replace(self.config, **changes),
            self.vocoder,
            self.asr_decoder,
        )

    @staticmethod
    def _specials(d) -> List[int]:
        return [d.pad(), d.eos(), d.unk()]

    # -- state ------------------------------------------------------------------------------------

    def initial_state(self, source_rate: int = SAMPLE_RATE) -> TranslatorState:
        """A fresh stream whose audio arrives at ``source_rate`` Hz."""
        enc = None if self.config.reencode else self.model.encoder.initial_state()
        return TranslatorState(
            source_rate=source_rate,
            resample=ResampleStream(source_rate).initial_state(),
            fbank=self.fbank.initial_state(),
            encoder=enc,
            source_samples=torch.zeros(0),
            encoder_frames=0,
            asr_tokens=(),
            asr_last=CTC_BLANK,
            st_caches=None,
            st_tokens=(),
            st_last=CTC_BLANK,
            mt_memory=None,
            target_tokens=(),
            policy=PolicyState(),
            t2u_caches=None,
            unit_caches=None,
            voiced_state_count=0,
            unit_last=CTC_BLANK,
            units_emitted=0,
            all_units=(),
            vocoder=self.vocoder.initial_state() if self.vocoder is not None else None,
            asr_search=self.asr_decoder.initial_state() if self.asr_decoder is not None else None,
        )

    # -- one chunk --------------------------------------------------------------------------------

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

        The encoder and both CTC heads run as one batch over every group of streams whose states
        share a layout (:mod:`~echostream_fairseq.modules.batching`: in steady state, all streams
        of this translator), so their per-stream cost falls with the number of streams; the
        streams that write then decode in lockstep, T2U and the unit decoder run over all streams'
        new text at once, and the vocoder synthesises every stream's new units in shared calls. The
        results equal :meth:`step` per stream (to float rounding: products over more rows may round
        differently).
        """
        for _, state, _ in requests:
            if not isinstance(state, TranslatorState):
                raise ValueError(
                    f"state must be a TranslatorState (samples first, then the state), got {type(state).__name__}"
                )
            if state.finished:
                raise ValueError("this stream is finished; start a new one with initial_state()")
        clocks: List[Optional[StageClock]] = []
        states, audios = [], []
        for samples, state, finish in requests:
            clocks.append(StageClock() if self.config.time_stages else None)
            audio, n_bad = to_mono(samples)
            audio, resample_state = ResampleStream(state.source_rate).step(audio, state.resample, finish)
            states.append(replace(state, resample=resample_state, nonfinite_samples=state.nonfinite_samples + n_bad))
            audios.append(audio)
            if clocks[-1]:
                clocks[-1].mark("encoder")
        finishes = [finish for _, _, finish in requests]
        if self.config.reencode:
            encoded = []
            for state, audio, finish, clock in zip(states, audios, finishes, clocks):
                if clock:
                    clock.restart()
                encoded.append(self._encode_prefix(state, audio, finish))
                if clock:
                    clock.mark("encoder")
        else:
            encoded = self._encode_increments(states, audios, finishes, clocks)
        # the policy of every stream, then the MT writes (batched where they can be), then the rest
        if self.config.translate and not self.config.reencode:  # every stream's MT memory in one pass
            started = time.perf_counter()
            extended = self._extend_mt_memories([state for *_, state in encoded], [enc for _, _, enc, _ in encoded])
            encoded = [(asr, st, enc, state) for (asr, st, enc, _), state in zip(encoded, extended)]
            credit_share(clocks, range(len(encoded)), "mt", started)
        plans = []
        for (_, _, enc_new, state), finish, clock in zip(encoded, finishes, clocks):
            if clock:
                clock.restart()
            plans.append(self._plan(state, finish))
            if clock:
                clock.mark("mt")
        # a sentence known to end here (the ASR CTC's mark, a long pause) is written to its end at once:
        # greedy decoding gives the same subwords as writing to the policy's target and then finishing
        # (within the sentence's limit of subwords, which a target passes only beyond max_len).
        # A stream in a short pause asks whether the MT decoder would end its sentence: its write
        # (a look ahead alone when the policy reads) gives the decoder's next step after its subwords
        verdicts = self._sentence_ends_before_writes([state for state, _ in plans], finishes)
        if self.config.translate:
            plans = [
                (
                    state,
                    FINISH if verdict else len(state.target_tokens) if target is None and verdict is None else target,
                )
                for (state, target), verdict in zip(plans, verdicts)
            ]
        writes = self._write_all(
            [(state, enc, target) for (state, target), (_, _, enc, _) in zip(plans, encoded)], clocks
        )
        written = [self._written(state, target, w) for (state, target), w in zip(plans, writes)]
        # where the decoder would end the sentence, the state that says so is its last text state (a
        # write to FINISH would add no subword)
        confirmed = self._short_pauses_confirmed(
            [(state, next_step, finish) for (_, _, state, _, next_step), finish in zip(written, finishes)]
        )
        for i, eos_state in enumerate(confirmed):
            if eos_state is not None:
                target_new, text_states, state, _, _ = written[i]
                text_states = eos_state if text_states is None else torch.cat([text_states, eos_state], dim=1)
                written[i] = (target_new, text_states, state, True, None)  # the sentence is complete
        ending = [
            i
            for i, (verdict, eos_state) in enumerate(zip(verdicts, confirmed))
            if verdict is True or eos_state is not None
        ]
        # the units of every stream's new text at once (an ended sentence's text is complete), then
        # the speech of all in shared calls
        if self.config.translate and self.config.speech_output:
            for clock in clocks:
                if clock:
                    clock.restart()
            spoken = self._units_batch(
                [
                    (state, text_states, enc_new, finish or i in ending)
                    for i, ((_, text_states, state, *_), (_, _, enc_new, _), finish) in enumerate(
                        zip(written, encoded, finishes)
                    )
                ],
                clocks,
            )
        else:
            spoken = [([], [], state) for _, _, state, *_ in written]
        if self.config.translate and self.config.speech_output:
            speech = self._speech([(ids, state, finish) for (_, ids, state), finish in zip(spoken, finishes)], clocks)
        else:
            speech = [(torch.zeros(0), state) for _, _, state in spoken]
        # then the ended sentences' target side starts afresh (after the speech: --reencode speaks
        # from the sentence's units)
        ends = set(ending)
        speech = [
            (wave, self._next_sentence(state, encoded[i][2]) if i in ends else state)
            for i, (wave, state) in enumerate(speech)
        ]
        results = []
        for i, (
            (asr_new, _, enc_new, _),
            (target_new, _, _, wrote, _),
            (units_new, _, _),
            (wave, state),
            finish,
            clock,
        ) in enumerate(zip(encoded, written, spoken, speech, finishes, clocks)):
            if clock:
                clock.restart()
            results.append(
                self._complete(state, asr_new, enc_new, target_new, units_new, wave, wrote, finish, clock, i in ends)
            )
        return results

    def _plan(self, state: TranslatorState, finish: bool):
        """The READ/WRITE decision (the MT memory already holds the new frames): ``(state, target)``
        (target ``None``: no write)."""
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
        if target == FINISH and self._is_fragment(state):
            target = None
        if state.encoder_frames == 0:
            target = None
        return state, target

    def _write_all(self, plans, clocks):
        """``_write`` for every stream that writes: one batched decoding for the streams whose MT
        memory holds frames (finishing ones included), one by one for the rest (``--reencode``, an
        empty memory). Returns ``(new subwords, text states, state, the decoder's next step)`` (see
        :meth:`_write`) or ``None`` each."""
        results: List = [None] * len(plans)
        batch, alone = [], []
        for i, (state, _, target) in enumerate(plans):
            if target is None:
                continue
            memory = state.mt_memory
            batchable = not self.config.reencode and memory is not None and memory[0].cross_key is not None
            (batch if batchable else alone).append(i)
        if len(batch) == 1:
            alone, batch = alone + batch, []
        for i in alone:
            started = time.perf_counter()
            results[i] = self._write(*plans[i])
            if clocks[i]:
                clocks[i].seconds["mt"] += time.perf_counter() - started
        if batch:
            started = time.perf_counter()
            for i, written in zip(batch, self._write_batch([plans[i][0] for i in batch], [plans[i][2] for i in batch])):
                results[i] = written
            credit_share(clocks, batch, "mt", started)
        return results

    @staticmethod
    def _written(state: TranslatorState, target, written) -> tuple:
        """A stream's MT write (``None``: it did not write): ``(new subwords, text states, state,
        wrote, the decoder's next step)`` (see :meth:`_write`)."""
        if written is None:
            return [], None, state, False, None
        target_new, text_states, state, next_step = written
        return target_new, text_states, state, bool(target_new) or target == FINISH, next_step

    def _complete(
        self,
        state: TranslatorState,
        asr_new: List[int],
        enc_new: Optional[Tensor],
        target_new: List[int],
        units_new: List[int],
        wave: Tensor,
        wrote: bool,
        finish: bool,
        clock: Optional[StageClock],
        sentence_end: bool,
    ) -> Tuple[StepOutput, TranslatorState]:
        """After the speech: the step's output (``sentence_end``: a sentence ended here, its last
        subwords and units among ``target_new`` and ``units_new``)."""
        asr_words = None
        if self.asr_decoder is not None:
            asr_words = list(state.asr_final) + (self.asr_decoder.finish(state.asr_search) if finish else [])
        out = StepOutput(
            asr_new,
            target_new,
            units_new,
            wave,
            finish,
            wrote,
            sentence_end,
            enc_new,
            clock.seconds if clock else {},
            asr_words,
        )
        return out, replace(state, finished=finish)

    # -- encoder and CTC --------------------------------------------------------------------------

    def _encoder(self):
        """The model's encoder set to this translator's chunk length (translators of other chunk
        sizes may share the model)."""
        encoder = self.model.encoder
        if encoder.backbone.chunk_length != self.chunk_length:
            encoder.set_chunk_length(self.chunk_length)
        return encoder

    def _encode_increments(
        self,
        states: List[TranslatorState],
        audios: List[Tensor],
        finishes: List[bool],
        clocks: List[Optional[StageClock]],
    ):
        """fbank of every stream as one batch, then the encoder and the CTC heads once per group of
        stackable states."""
        encoder = self._encoder()
        started = time.perf_counter()
        features, fbank_states = self.fbank.step_batch(audios, [state.fbank for state in states])
        features = [frames.to(self.device, self.dtype) for frames in features]
        credit_share(clocks, range(len(states)), "encoder", started)
        if len(states) == 1:  # one stream (the agents, a lone feed): nothing to group
            groups = [[0]]
        else:
            groups = group_by_layout(
                [
                    (f.shape, finish, state_layout(s.encoder), state_layout(s.st_caches))
                    for f, finish, s in zip(features, finishes, states)
                ]
            )
        results: List = [None] * len(states)
        for group in groups:
            started = time.perf_counter()
            enc_state = stack_states([states[i].encoder for i in group])
            st_caches = stack_states([states[i].st_caches for i in group])
            batch = torch.stack([features[i] for i in group])
            frames, enc_state = encoder.step(batch, enc_state, finishes[group[0]])
            st_logits, st_caches = self.model.st_ctc.step(frames, st_caches)
            asr_logits = self.model.asr_ctc(frames)
            # every stream's best labels in one product per head (the ASR labels once more with the
            # sentence-end mark banned, for the pause count, when marks are read)
            asr_labels = ctc_labels(asr_logits, [b for b in self.src_banned if b != self.asr_mark])
            blank_labels = asr_labels if self.asr_mark is None else ctc_labels(asr_logits, self.src_banned)
            st_labels = ctc_labels(st_logits, self.st_banned)
            sizes = [1] * len(group)
            encoders = split_state(enc_state, sizes, like=[states[i].encoder for i in group])
            for row, (i, enc, st) in enumerate(zip(group, encoders, split_state(st_caches, sizes))):
                results[i] = self._ctc_extend(
                    replace(states[i], fbank=fbank_states[i], encoder=enc, st_caches=st),
                    frames[row : row + 1],
                    asr_logits[row],
                    (asr_labels[row], blank_labels[row], st_labels[row]),
                )
            credit_share(clocks, group, "encoder", started)  # each stream is credited its share of the batch
        return results

    def _ctc_extend(self, state: TranslatorState, frames: Tensor, asr_logits: Tensor, labels: Tuple[list, list, list]):
        """The CTC heads' new tokens from the new frames' best labels: ASR (the mark allowed), ASR
        (the mark banned) and ST."""
        asr_labels, blank_labels, st_labels = labels
        asr_new, asr_last, mark = ctc_collapse(asr_labels, state.asr_last, self.asr_mark)
        if mark is not None:
            mark = (len(state.asr_tokens) + mark[0], mark[1])
        st_new, st_last, _ = ctc_collapse(st_labels, state.st_last)
        blanks = ctc_blank_frames(blank_labels, state.asr_blank_frames)
        state = self._search_asr(state, asr_logits)
        return (
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
                sentence_mark=mark,
            ),
        )

    def _search_asr(self, state: TranslatorState, asr_logits: Tensor) -> TranslatorState:
        """The lexicon search over new frames' ASR CTC scores ``[t, V]`` (when there is one)."""
        if self.asr_decoder is None:
            return state
        words, search = self.asr_decoder.step(state.asr_search, asr_logits.float().log_softmax(dim=-1))
        return replace(state, asr_search=search, asr_final=tuple(words))

    def _encode_prefix(self, state: TranslatorState, audio: Tensor, finish: bool):
        """StreamSpeech's way: fbank, encoder and CTC over the whole prefix, every chunk."""
        self._encoder()
        samples = torch.cat([state.source_samples, audio])
        features, _ = self.fbank.step(samples, self.fbank.initial_state())
        if features.size(0) == 0:
            return [], [], None, replace(state, source_samples=samples)
        features = features.to(self.device, self.dtype).unsqueeze(0)
        out = self.model.encoder(features, torch.tensor([features.size(1)], device=self.device))
        frames = out["encoder_out"][0].transpose(0, 1)  # [1, T, D]
        if not finish:  # an unfinished prefix has no end-of-utterance look-ahead frames to trust
            frames = frames[:, : max(0, frames.size(1) - self.model.encoder.right_context_length)]
        length = torch.tensor([frames.size(1)], device=self.device)
        asr_logits = self.model.asr_ctc(frames)
        asr, _, mark = ctc_greedy_marks(asr_logits[0], CTC_BLANK, self.src_banned, self.asr_mark)
        if mark is not None and mark[1] >= frames.size(1) - state.encoder_frames:
            mark = None  # written in an earlier chunk (and not enough for a sentence then)
        blanks = ctc_blank_run(asr_logits[0], 0, self.src_banned)
        st = ctc_greedy(self.model.st_ctc(frames), length, self.st_banned)[0]
        asr_new, st_new = asr[len(state.asr_tokens) :], st[len(state.st_tokens) :]
        state = self._search_asr(state, asr_logits[0, state.asr_searched :])
        return (
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
                sentence_mark=mark,
            ),
        )
