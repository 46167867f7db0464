"""An EchoStream speech processor for FBK's simulstream (``pip install simulstream``, or the
``simulstream`` extra of this package).

simulstream serves one processor per connection from a pool and scores long-form output
(StreamLAAL, resegmented BLEU). Its YAML names this class and our settings::

    type: echostream_fairseq.agents.simulstream_processor.EchoStreamSpeechProcessor
    model_path: results/demo/echostream_emformer_tiny/checkpoint_last.pt
    data_bin: results/synthetic/corpus
    speech_chunk_size: 0.32          # seconds, simulstream's chunk (also our encoder's)
    output: text                     # text (speech-to-text translation) or asr
    # any other key is a translator option (TranslatorOptions): max_len, sentence_pause_ms, device, ...

simulstream's protocol carries text, so the processor writes text: translated words (or the
transcript) as they are completed. The model is loaded once per configuration and shared by every
processor of the pool; each processor holds one :class:`~echostream_fairseq.streaming.api.Stream`.
Nothing written is ever taken back, so ``deleted_tokens`` is always empty.
"""

from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace
from typing import Dict, List, Optional, Tuple

import numpy as np
from simulstream.server.speech_processors import SAMPLE_RATE, SpeechProcessor
from simulstream.server.speech_processors.incremental_output import IncrementalOutput

from echostream_fairseq.streaming.api import EchoStream, Event
from echostream_fairseq.streaming.options import TranslatorOptions

__all__ = ["EchoStreamSpeechProcessor"]

# keys of the YAML that are simulstream's (or ours, read here), not translator options
_OWN_KEYS = {"type", "model_path", "data_bin", "speech_chunk_size", "output", "latency_unit", "detokenizer"}


def _options(config: SimpleNamespace) -> Dict:
    return {k: v for k, v in vars(config).items() if k not in _OWN_KEYS}


class EchoStreamSpeechProcessor(SpeechProcessor):
    """simulstream's processor interface over one EchoStream stream (see the module docstring)."""

    _systems: Dict[Tuple, EchoStream] = {}

    @classmethod
    def _key(cls, config: SimpleNamespace) -> Tuple:
        return (
            config.model_path,
            config.data_bin,
            getattr(config, "output", "text"),
            int(round(float(config.speech_chunk_size) * 1000)),
            tuple(sorted(_options(config).items())),
        )

    @classmethod
    def load_model(cls, config: SimpleNamespace) -> None:
        for name in ("model_path", "data_bin", "speech_chunk_size"):
            if not hasattr(config, name):
                raise ValueError(f"the simulstream config needs {name!r} for the EchoStream processor")
        output = getattr(config, "output", "text")
        if output not in ("text", "asr"):
            raise ValueError(f"output must be text or asr (simulstream carries text), got {output!r}")
        key = cls._key(config)
        if key not in cls._systems:
            options = _options(config)
            # the chunk is simulstream's speech_chunk_size, the output its own key
            unknown = sorted(
                set(options) - ({f.name for f in fields(TranslatorOptions)} - {"source_segment_size", "output"})
            )
            if unknown:
                raise ValueError(
                    f"not an EchoStream setting: {', '.join(map(repr, unknown))} (the simulstream config "
                    "takes model_path, data_bin, speech_chunk_size, output and the translator's options)"
                )
            cls._systems[key] = EchoStream.load(
                config.model_path, config.data_bin, output=output, chunk_ms=key[3], **options
            )

    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__(config)
        self.load_model(config)
        self.system = self._systems[self._key(config)]
        self.kind = "source_text" if getattr(config, "output", "text") == "asr" else "target_text"
        self.stream = None
        self.started = False

    def _output(self, events: List[Event]) -> IncrementalOutput:
        words = " ".join(e.text for e in events if e.kind == self.kind and e.text)
        if not words:
            return IncrementalOutput([], "", [], "")
        text = (" " if self.started else "") + words
        self.started = True
        return IncrementalOutput(words.split(), text, [], "")

    def process_chunk(self, waveform: np.ndarray) -> IncrementalOutput:
        if self.stream is None:
            self.stream = self.system.open(SAMPLE_RATE)
        return self._output(self.stream.feed(np.asarray(waveform, dtype=np.float32)))

    def end_of_stream(self) -> IncrementalOutput:
        if self.stream is None:
            return IncrementalOutput([], "", [], "")
        output = self._output(self.stream.finish())
        self.stream.close()
        self.stream = None
        return output

    def tokens_to_string(self, tokens: List[str]) -> str:
        return " ".join(tokens)

    def set_source_language(self, language: Optional[str]) -> None:
        """One language pair per model: the language tags are accepted and not needed."""

    def set_target_language(self, language: Optional[str]) -> None:
        """One language pair per model: the language tags are accepted and not needed."""

    def clear(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream = None
        self.started = False
