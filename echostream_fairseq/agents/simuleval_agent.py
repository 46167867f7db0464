"""What the SimulEval agents in ``agents/`` share: flags, loading, and the push/policy glue.

The agents are thin adapters over the streaming API (:mod:`echostream_fairseq.streaming.api`):
an agent holds one :class:`~echostream_fairseq.streaming.api.EchoStream` (the model, loaded
once) and opens one stream per SimulEval instance. ``push`` keeps the new samples of a source
segment (SimulEval's default keeps every sample of the stream in a Python list), and ``policy``
feeds them to the stream (one segment is one chunk) and writes what came back:

* speech (``output = "speech"``): the new audio;
* text (``"text"``): the translated words, complete (the next subword starts a new word, a
  sentence ended, or the source did), so SimulEval's word-level latency sees whole words;
* source text (``"asr"``): the streaming ASR transcript, complete words likewise.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List

from simuleval.agents.actions import ReadAction, WriteAction
from simuleval.data.segments import SpeechSegment

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.evaluation.simuleval_compat import keep_speech_elapsed_times
from echostream_fairseq.modules.precision import DTYPES
from echostream_fairseq.streaming.api import EchoStream, Event
from echostream_fairseq.streaming.loading import (
    UNIT_LOOKAHEAD,
    VOCODER_LEFT_CONTEXT,
    VOCODER_TYPES,
    load_translator,
    load_vocoder,
)
from echostream_fairseq.streaming.translator import SimultaneousTranslator

logger = logging.getLogger(__name__)

__all__ = ["add_agent_args", "build_translator", "EchoStreamAgentMixin"]


def add_agent_args(parser: argparse.ArgumentParser, speech_output: bool) -> None:
    """The flags of StreamSpeech's agents (same names), plus ours."""
    parser.add_argument("--model-path", required=True, help="echostream checkpoint (fairseq-train output)")
    parser.add_argument("--data-bin", required=True, help="corpus folder: config YAMLs, dictionaries, gcmvn")
    parser.add_argument("--config-yaml", default="config.yaml", help="data config, relative to --data-bin")
    parser.add_argument(
        "--multitask-config-yaml", default="config_multitask.yaml", help="multitask config, relative to --data-bin"
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu", "cuda"), help="where the model runs")
    # not --dtype: SimulEval owns that flag (fp16/fp32) and rejects other values before an agent loads
    parser.add_argument(
        "--model-dtype",
        default="fp32",
        choices=DTYPES,
        help="inference precision: fp32, bf16 (every weight and activation, the CodeHiFiGAN's too "
        "where oneDNN runs bf16) or int8 (int8 linear layers, needs AVX2; the vocoder stays "
        "fp32); what each needs from the CPU: docs/speed.md",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--lagging-k1", type=int, default=0, help="target subwords kept behind the ST CTC prefix")
    parser.add_argument(
        "--stride-n", type=int, default=1, help="CTC prefix growth needed before a write, and the write granularity"
    )
    parser.add_argument(
        "--whole-word",
        choices=("auto", "on", "off"),
        default="auto",
        help="write whole words only (auto: on for --source-segment-size >= 640, as StreamSpeech)",
    )
    parser.add_argument(
        "--encoder-chunk-ms",
        type=int,
        default=0,
        help="source per encoder step, a multiple of 40 ms (0: the chunk the checkpoint was "
        "trained with, or --source-segment-size when shorter); the policy still decides "
        "once per source segment",
    )
    parser.add_argument("--max-len", type=int, default=200, help="target subwords written after the source ends")
    parser.add_argument(
        "--mt-source-window",
        type=int,
        default=512,
        help="encoder frames (40 ms) the MT decoder attends, the most recent (0: all)",
    )
    parser.add_argument(
        "--target-window",
        type=int,
        default=64,
        help="target subwords the MT decoder, T2U and unit decoder attend back (0: all)",
    )
    parser.add_argument(
        "--sentence-pause-ms",
        type=int,
        default=480,
        help="long-form: a pause this long after recognised speech (ASR CTC blank) ends the "
        "sentence and the target side starts the next one (0: off, one sentence per stream)",
    )
    parser.add_argument(
        "--sentence-confirmed-pause-ms",
        type=int,
        default=240,
        help="long-form: a shorter pause that ends the sentence when the MT decoder also predicts its end (0: off)",
    )
    parser.add_argument(
        "--asr-sentence-ends",
        choices=("auto", "on", "off"),
        default="auto",
        help="long-form: also end a sentence where the ASR CTC writes its sentence-end mark "
        "(auto: if the model was trained with --asr-sentence-ends)",
    )
    parser.add_argument(
        "--no-repeat-ngram",
        type=int,
        default=0,
        help="never write a subword that repeats an n-gram of this size in the sentence (0: off)",
    )
    parser.add_argument(
        "--asr-beam",
        type=int,
        default=0,
        help="the source transcript from a CTC beam search of N hypotheses over the training "
        "transcripts' words with a word trigram (as fairseq-generate --asr-beam; 0: greedy)",
    )
    parser.add_argument("--asr-lm-weight", type=float, default=0.5, help="with --asr-beam: the trigram's weight")
    parser.add_argument("--asr-word-bonus", type=float, default=2.0, help="with --asr-beam: score added per word")
    parser.add_argument(
        "--reencode",
        action="store_true",
        help="StreamSpeech's behaviour: re-encode and re-decode the whole prefix every chunk "
        "(the baseline; required for echostream_conformer checkpoints)",
    )
    parser.add_argument(
        "--extra-output-dir",
        default=None,
        help="write asr.txt, translation.txt (and units.txt) here, one line per instance",
    )
    parser.add_argument(
        "--output-asr-translation", action="store_true", help="log the streaming ASR and translation text as they grow"
    )
    if speech_output:
        parser.add_argument(
            "--vocoder",
            default=None,
            help="CodeHiFiGAN generator checkpoint, or DATA/units/kmeans.pt with --vocoder-type griffin_lim",
        )
        parser.add_argument("--vocoder-cfg", default=None, help="the CodeHiFiGAN checkpoint's config.json")
        parser.add_argument(
            "--vocoder-type",
            choices=VOCODER_TYPES,
            default="code_hifigan",
            help="griffin_lim: the training-free fallback for log-mel k-means units",
        )
        parser.add_argument(
            "--dur-prediction",
            action="store_true",
            help="predict durations of the de-duplicated units (what the model emits)",
        )
        parser.add_argument(
            "--vocoder-left-context",
            type=int,
            default=VOCODER_LEFT_CONTEXT,
            help="unit frames re-synthesised as context by the incremental vocoder",
        )
        parser.add_argument(
            "--unit-lookahead",
            type=int,
            default=UNIT_LOOKAHEAD,
            help="target subwords (text states) a subword's units wait for: its sound depends "
            "on the next one (0: units at once)",
        )


def build_translator(args, speech_output: bool, translate: bool = True) -> SimultaneousTranslator:
    """The translator the flags describe (:func:`~echostream_fairseq.streaming.loading.load_translator`)."""
    vocoder = None
    if speech_output:
        vocoder = load_vocoder(
            args.vocoder,
            args.vocoder_cfg,
            args.vocoder_type,
            args.dur_prediction,
            args.vocoder_left_context,
            args.model_dtype,
        )
    return load_translator(
        args.model_path,
        args.data_bin,
        output="speech" if speech_output else ("text" if translate else "asr"),
        vocoder=vocoder,
        source_segment_size=int(getattr(args, "source_segment_size", 320)),
        encoder_chunk_ms=getattr(args, "encoder_chunk_ms", 0),
        device=args.device,
        model_dtype=args.model_dtype,
        threads=args.threads,
        config_yaml=args.config_yaml,
        multitask_config_yaml=args.multitask_config_yaml,
        lagging_k1=args.lagging_k1,
        stride_n=args.stride_n,
        whole_word=args.whole_word,
        max_len=args.max_len,
        mt_source_window=args.mt_source_window,
        target_window=args.target_window,
        sentence_pause_ms=args.sentence_pause_ms,
        sentence_confirmed_pause_ms=args.sentence_confirmed_pause_ms,
        asr_sentence_ends=args.asr_sentence_ends,
        no_repeat_ngram=args.no_repeat_ngram,
        asr_beam=args.asr_beam,
        asr_lm_weight=args.asr_lm_weight,
        asr_word_bonus=args.asr_word_bonus,
        reencode=args.reencode,
        unit_lookahead=getattr(args, "unit_lookahead", UNIT_LOOKAHEAD),
    )


class EchoStreamAgentMixin:
    """SimulEval glue for the three agents (see the module docstring). Subclasses set ``output``
    and inherit from the matching SimulEval agent class."""

    output = "speech"

    def __init__(self, args) -> None:
        # SimulEval builds the agent before its instances: the fix of the computation-aware latency
        # of speech output (evaluation/simuleval_compat.py) is in place before any is scored
        keep_speech_elapsed_times()
        self.system = EchoStream(
            build_translator(args, speech_output=self.output == "speech", translate=self.output != "asr")
        )
        self.log_text = args.output_asr_translation
        self.extra_output_dir = Path(args.extra_output_dir) if args.extra_output_dir else None
        if self.extra_output_dir is not None:
            self.extra_output_dir.mkdir(parents=True, exist_ok=True)
            for name in ("asr.txt", "translation.txt", "units.txt"):
                (self.extra_output_dir / name).write_text("")
        super().__init__(args)

    # SimulEval calls build_states() once and reset() per instance
    def reset(self) -> None:
        super().reset()
        if getattr(self.states, "stream", None) is not None:
            self.states.stream.close()
        self.states.stream = None
        self.states.new_samples = []
        # the whole instance's words and units, for --extra-output-dir and the log only
        self.states.words = {"source_text": [], "target_text": [], "target_units": []}

    def push(self, source_segment, states=None, upstream_states=None) -> None:
        states = self.states if states is None else states
        states.source_finished = source_segment.finished
        states.update_config(source_segment.config)
        content = getattr(source_segment, "content", None)
        if content:
            states.new_samples.append(content)
            states.source_sample_rate = source_segment.sample_rate

    def _advance(self) -> List[Event]:
        """Feed the samples pushed since the last call to the instance's stream (SimulEval's
        segments are one chunk each), and finish it with the source."""
        states = self.states
        if states.stream is None:
            states.stream = self.system.open(int(states.source_sample_rate or SAMPLE_RATE))
        stream = states.stream
        samples = [s for chunk in states.new_samples for s in chunk]
        states.new_samples = []
        events = stream.feed(samples) if samples else []
        if states.source_finished:
            events += stream.finish()
            if stream.nonfinite_samples:
                logger.warning("%d NaN/inf source samples were read as silence", stream.nonfinite_samples)
        if self.extra_output_dir is not None or self.log_text:
            for e in events:
                if e.kind in states.words:
                    states.words[e.kind].extend(e.units if e.kind == "target_units" else [e.text])
        if self.log_text and any(e.kind in ("source_text", "target_text") for e in events):
            logger.info(
                "ASR: %s | translation: %s",
                " ".join(states.words["source_text"]),
                " ".join(states.words["target_text"]),
            )
        if stream.finished:
            self._write_extra_outputs()
        return events

    def _write_extra_outputs(self) -> None:
        if self.extra_output_dir is None:
            return
        words = self.states.words
        lines = {
            "asr.txt": " ".join(words["source_text"]),
            "translation.txt": " ".join(words["target_text"]),
            "units.txt": " ".join(map(str, words["target_units"])),
        }
        for name, line in lines.items():
            with open(self.extra_output_dir / name, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    def write_words(self):
        """The text agents' policy: feed the new audio, then write the words it completed."""
        if self.finished_stream():
            return WriteAction("", finished=True)
        if not self.states.new_samples and not self.states.source_finished:
            return ReadAction()
        events = self._advance()
        kind = "source_text" if self.output == "asr" else "target_text"
        words = [e.text for e in events if e.kind == kind]
        finished = self.finished_stream()
        if not words and not finished:
            return ReadAction()
        return WriteAction(" ".join(words), finished=finished)

    def speak(self):
        """The speech agent's policy: feed the new audio, then write the speech it made."""
        if self.finished_stream():
            return WriteAction(
                SpeechSegment(content=[], sample_rate=self.system.output_sample_rate, finished=True), finished=True
            )
        if not self.states.new_samples and not self.states.source_finished:
            return ReadAction()
        events = self._advance()
        audio = [x for e in events if e.kind == "target_speech" for x in e.audio.tolist()]
        finished = self.finished_stream()
        if not audio and not finished:
            return ReadAction()
        return WriteAction(
            SpeechSegment(content=audio, sample_rate=self.system.output_sample_rate, finished=finished),
            finished=finished,
        )

    def finished_stream(self) -> bool:
        s = self.states.stream
        return s is not None and s.finished
