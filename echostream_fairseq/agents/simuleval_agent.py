"""What the SimulEval agents in ``agents/`` share: flags, loading, and the push/policy glue.

An agent holds one :class:`~echostream_fairseq.streaming.translator.SimultaneousTranslator`
(the model, loaded once) and keeps each instance's :class:`TranslatorState` in its SimulEval
states. ``push`` hands the new samples of a source segment to the state without accumulating the
whole source (SimulEval's default keeps every sample of the stream in a Python list), and
``policy`` runs one translator step on them.

Outputs:

* speech (``EchoStreamAgentBase.output = "speech"``): the new audio of each step;
* text (``"text"``): target words once they are complete (the next subword starts a new word, or
  the source ended), so SimulEval's word-level latency sees whole words;
* source text (``"asr"``): the streaming ASR transcript, complete words likewise.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from simuleval.agents.actions import ReadAction, WriteAction

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.data.text import pieces_to_words, split_complete_words
from echostream_fairseq.evaluation.simuleval_compat import keep_speech_elapsed_times
from echostream_fairseq.streaming.loading import VOCODER_TYPES, load_translator, load_vocoder
from echostream_fairseq.streaming.translator import SimultaneousTranslator

logger = logging.getLogger(__name__)

__all__ = ["add_agent_args", "build_translator", "EchoStreamAgentMixin"]


def add_agent_args(parser: argparse.ArgumentParser, speech_output: bool) -> None:
    """The flags of StreamSpeech's agents (same names), plus ours."""
    parser.add_argument("--model-path", required=True, help="echostream checkpoint (fairseq-train output)")
    parser.add_argument("--data-bin", required=True, help="corpus folder: config YAMLs, dictionaries, gcmvn")
    parser.add_argument("--config-yaml", default="config.yaml", help="data config, relative to --data-bin")
    parser.add_argument("--multitask-config-yaml", default="config_multitask.yaml",
                        help="multitask config, relative to --data-bin")
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu", "cuda"), help="where the model runs")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--lagging-k1", type=int, default=0, help="target subwords kept behind the ST CTC prefix")
    parser.add_argument("--stride-n", type=int, default=1,
                        help="CTC prefix growth needed before a write, and the write granularity")
    parser.add_argument("--whole-word", choices=("auto", "on", "off"), default="auto",
                        help="write whole words only (auto: on for --source-segment-size >= 640, as StreamSpeech)")
    parser.add_argument("--max-len", type=int, default=200, help="target subwords written after the source ends")
    parser.add_argument("--mt-source-window", type=int, default=512,
                        help="encoder frames (40 ms) the MT decoder attends, the most recent (0: all)")
    parser.add_argument("--target-window", type=int, default=64,
                        help="target subwords the MT decoder, T2U and unit decoder attend back (0: all)")
    parser.add_argument("--sentence-pause-ms", type=int, default=480,
                        help="long-form: a pause this long after recognised speech (ASR CTC blank) ends the "
                             "sentence and the target side starts the next one (0: off, one sentence per stream)")
    parser.add_argument("--sentence-confirmed-pause-ms", type=int, default=240,
                        help="long-form: a shorter pause that ends the sentence when the MT decoder also "
                             "predicts its end (0: off)")
    parser.add_argument("--no-repeat-ngram", type=int, default=0,
                        help="never write a subword that repeats an n-gram of this size in the sentence (0: off)")
    parser.add_argument("--reencode", action="store_true",
                        help="StreamSpeech's behaviour: re-encode and re-decode the whole prefix every chunk "
                             "(the baseline; required for echostream_conformer checkpoints)")
    parser.add_argument("--extra-output-dir", default=None,
                        help="write asr.txt, translation.txt (and units.txt) here, one line per instance")
    parser.add_argument("--output-asr-translation", action="store_true",
                        help="log the streaming ASR and translation text as they grow")
    if speech_output:
        parser.add_argument("--vocoder", default=None,
                            help="CodeHiFiGAN generator checkpoint, or DATA/units/kmeans.pt with --vocoder-type griffin_lim")
        parser.add_argument("--vocoder-cfg", default=None, help="the CodeHiFiGAN checkpoint's config.json")
        parser.add_argument("--vocoder-type", choices=VOCODER_TYPES, default="code_hifigan",
                            help="griffin_lim: the training-free fallback for log-mel k-means units")
        parser.add_argument("--dur-prediction", action="store_true",
                            help="predict durations of the de-duplicated units (what the model emits)")
        parser.add_argument("--vocoder-left-context", type=int, default=16,
                            help="unit frames re-synthesised as context by the incremental vocoder")


def build_translator(args, speech_output: bool, translate: bool = True) -> SimultaneousTranslator:
    """The translator the flags describe (:func:`~echostream_fairseq.streaming.loading.load_translator`)."""
    vocoder = None
    if speech_output:
        vocoder = load_vocoder(args.vocoder, args.vocoder_cfg, args.vocoder_type, args.dur_prediction,
                               args.vocoder_left_context)
    return load_translator(
        args.model_path, args.data_bin, output="speech" if speech_output else ("text" if translate else "asr"),
        vocoder=vocoder, source_segment_size=int(getattr(args, "source_segment_size", 320)),
        device=args.device, threads=args.threads, config_yaml=args.config_yaml,
        multitask_config_yaml=args.multitask_config_yaml, lagging_k1=args.lagging_k1, stride_n=args.stride_n,
        whole_word=args.whole_word, max_len=args.max_len, mt_source_window=args.mt_source_window,
        target_window=args.target_window, sentence_pause_ms=args.sentence_pause_ms,
        sentence_confirmed_pause_ms=args.sentence_confirmed_pause_ms, no_repeat_ngram=args.no_repeat_ngram,
        reencode=args.reencode,
    )


class EchoStreamAgentMixin:
    """SimulEval glue for the three agents (see the module docstring). Subclasses set ``output``
    and inherit from the matching SimulEval agent class."""

    output = "speech"

    def __init__(self, args) -> None:
        # SimulEval builds the agent before its instances: the fix of the computation-aware latency
        # of speech output (evaluation/simuleval_compat.py) is in place before any is scored
        keep_speech_elapsed_times()
        self.translator = build_translator(args, speech_output=self.output == "speech",
                                           translate=self.output != "asr")
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
        self.states.stream = None
        self.states.new_samples = []
        self.states.pending_tokens = []  # text agents: subwords not yet written as words
        self.states.units = []  # units of the instance, for --extra-output-dir only
        # the whole instance's subwords, for --extra-output-dir and the log only (the translator
        # keeps the current sentence's)
        self.states.asr_tokens, self.states.target_tokens = [], []

    def push(self, source_segment, states=None, upstream_states=None) -> None:
        states = self.states if states is None else states
        states.source_finished = source_segment.finished
        states.update_config(source_segment.config)
        content = getattr(source_segment, "content", None)
        if content:
            states.new_samples.append(content)
            states.source_sample_rate = source_segment.sample_rate

    def _advance(self):
        """One translator step on the samples pushed since the last call."""
        states = self.states
        if states.stream is None:
            rate = int(states.source_sample_rate or SAMPLE_RATE)
            states.stream = self.translator.initial_state(rate)
        samples = [s for chunk in states.new_samples for s in chunk]
        states.new_samples = []
        out, states.stream = self.translator.step(samples, states.stream, finish=states.source_finished)
        if out.finished and states.stream.nonfinite_samples:
            logger.warning("%d NaN/inf source samples were read as silence", states.stream.nonfinite_samples)
        if self.extra_output_dir is not None or self.log_text:
            states.units.extend(out.units)
            states.asr_tokens.extend(out.asr_tokens)
            states.target_tokens.extend(out.target_tokens)
        if self.log_text and (out.asr_tokens or out.target_tokens):
            t = self.translator
            logger.info("ASR: %s | translation: %s",
                        " ".join(pieces_to_words(t.src_dict, states.asr_tokens)),
                        " ".join(pieces_to_words(t.tgt_dict, states.target_tokens)))
        if out.finished:
            self._write_extra_outputs()
        return out

    def _write_extra_outputs(self) -> None:
        if self.extra_output_dir is None:
            return
        t, s = self.translator, self.states
        lines = {
            "asr.txt": " ".join(pieces_to_words(t.src_dict, s.asr_tokens)),
            "translation.txt": " ".join(pieces_to_words(t.tgt_dict, s.target_tokens)),
            "units.txt": " ".join(t.unit_dict[u] for u in self.states.units),
        }
        for name, line in lines.items():
            with open(self.extra_output_dir / name, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    def write_words(self):
        """The text agents' policy: one translator step, then the words it completed."""
        if self.finished_stream():
            return WriteAction("", finished=True)
        if not self.states.new_samples and not self.states.source_finished:
            return ReadAction()
        out = self._advance()
        dictionary, new = ((self.translator.src_dict, out.asr_tokens) if self.output == "asr"
                           else (self.translator.tgt_dict, out.target_tokens))
        # a sentence end completes its last word too
        words, self.states.pending_tokens = split_complete_words(
            dictionary, self.states.pending_tokens + new, out.finished or out.sentence_end)
        if not words and not out.finished:
            return ReadAction()
        return WriteAction(" ".join(words), finished=out.finished)

    def finished_stream(self) -> bool:
        s = self.states.stream
        return s is not None and s.finished
