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

from echostream_fairseq.common import streamspeech_names
from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.evaluation.simuleval_compat import keep_speech_elapsed_times
from echostream_fairseq.streaming.api import EchoStream, Event
from echostream_fairseq.streaming.loading import translator_from_args
from echostream_fairseq.streaming.options import add_translator_args

logger = logging.getLogger(__name__)

__all__ = ["add_agent_args", "add_streamspeech_agent_args", "EchoStreamAgentMixin", "OUTPUT_FILES"]

# what --extra-output-dir holds, one line per instance (with StreamSpeech's names: AGENT_OUTPUT_FILES)
OUTPUT_FILES = ("asr.txt", "translation.txt", "units.txt")


def add_agent_args(parser: argparse.ArgumentParser, speech_output: bool) -> None:
    """The translator's flags (:func:`~echostream_fairseq.streaming.options.add_translator_args`) and
    the agents' own: what they write beside SimulEval's outputs."""
    add_translator_args(parser, speech_output)
    parser.add_argument(
        "--extra-output-dir",
        default=None,
        help="write asr.txt, translation.txt (and units.txt) here, one line per instance",
    )
    parser.add_argument(
        "--output-asr-translation",
        nargs="?",
        const=True,
        default=False,
        type=_true_or_false,
        help="log the streaming ASR and translation text as they grow (StreamSpeech's form "
        "'--output-asr-translation True' is taken too)",
    )
    parser.add_argument(
        "--extra-output-names",
        choices=("echostream", "streamspeech"),
        default="echostream",
        help="the files of --extra-output-dir: asr.txt, translation.txt, units.txt, or StreamSpeech's "
        "asr.txt, st.txt, unit.txt",
    )
    add_streamspeech_agent_args(parser)


def _true_or_false(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def add_streamspeech_agent_args(parser: argparse.ArgumentParser) -> None:
    """StreamSpeech's agent flags that ours take as they are: those its agents never read, and its
    feature settings, which must be ours."""
    for flag in streamspeech_names.AGENT_FLAGS_UNUSED:
        parser.add_argument(flag, default=None, help="StreamSpeech's; its agents never read it, nor do ours")
    parser.add_argument("--force-finish", action="store_true", help="StreamSpeech's; its agents never read it")
    parser.add_argument("--shift-size", type=int, choices=(10,), help="StreamSpeech's: the fbank shift is 10 ms here")
    parser.add_argument("--window-size", type=int, choices=(25,), help="StreamSpeech's: the fbank window is 25 ms")
    parser.add_argument("--feature-dim", type=int, choices=(80,), help="StreamSpeech's: 80 fbank bins here")
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=None,
        help="StreamSpeech's input rate; here each segment's own rate is read, so it changes nothing",
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
            translator_from_args(args, speech_output=self.output == "speech", translate=self.output != "asr")
        )
        self.log_text = args.output_asr_translation
        self.extra_output_dir = Path(args.extra_output_dir) if args.extra_output_dir else None
        streamspeech = getattr(args, "extra_output_names", "echostream") == "streamspeech"
        self.output_files = {n: streamspeech_names.AGENT_OUTPUT_FILES[n] if streamspeech else n for n in OUTPUT_FILES}
        if self.extra_output_dir is not None:
            self.extra_output_dir.mkdir(parents=True, exist_ok=True)
            for name in self.output_files.values():
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
            with open(self.extra_output_dir / self.output_files[name], "a", encoding="utf-8") as f:
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
