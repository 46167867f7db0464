"""The Python streaming API: one loaded system, any number of independent streams.

::

    from echostream_fairseq.streaming.api import EchoStream

    system = EchoStream.load("ckpt/checkpoint_last.pt", "corpus", vocoder="voc/generator.pt",
                             vocoder_cfg="voc/config.json")
    stream = system.open(sample_rate=48000)          # any rate, mono or [samples, channels]
    for piece in microphone_pieces():                # pieces of any length
        for event in stream.feed(piece):
            print(event.kind, event.text, None if event.audio is None else event.audio.shape)
    events = stream.finish()                         # flush: the rest of the translation

A stream cuts what it is fed into chunks of ``chunk_ms`` and steps the translator once per chunk;
:meth:`Stream.feed` steps its own stream at once. A server with many streams instead
:meth:`Stream.push`-es audio as it arrives and calls :meth:`EchoStream.step` on every tick, which
steps every stream that has a whole chunk waiting as one batch
(:meth:`~echostream_fairseq.streaming.translator.SimultaneousTranslator.step_batch`).

Events (:class:`Event`, ``kind``): ``source_text`` (new words of the streaming transcript),
``target_text`` (new translated words), ``target_units`` (new discrete units of the translated
speech, the vocoder's unit numbers), ``target_speech`` (new samples of translated speech,
float32 mono at :attr:`EchoStream.output_sample_rate`), ``sentence_end`` (the sentence's
translation is complete; the next one starts) and ``finished``. Words are whole: a word is sent
once the next subword starts a new word, at a sentence end, or at the end.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.data.text import split_complete_words
from echostream_fairseq.streaming.features import to_mono
from echostream_fairseq.streaming.loading import (
    MAX_PADDING,
    Translator,
    load_translator,
    load_vocoder,
    translator_for_chunk,
)
from echostream_fairseq.streaming.options import VOCODER_LEFT_CONTEXT, TranslatorOptions
from echostream_fairseq.streaming.translator_state import StepOutput

__all__ = ["EVENT_KINDS", "Event", "Stream", "EchoStream"]

EVENT_KINDS = ("source_text", "target_text", "target_units", "target_speech", "sentence_end", "finished")


@dataclass(frozen=True)
class Event:
    """One thing a stream produced.

    Attributes:
        kind: one of :data:`EVENT_KINDS`.
        text: the new words (``source_text``, ``target_text``), space-joined.
        units: ``target_units``: the new units (the numbers the vocoder knows them by).
        audio: ``target_speech``: float32 ``[n]`` samples at the system's output rate.
        source_seconds: seconds of source audio the stream had consumed when it was produced.
    """

    kind: str
    text: str = ""
    units: Tuple[int, ...] = ()
    audio: Optional[np.ndarray] = None
    source_seconds: float = 0.0


def _as_samples(audio):
    """Any piece of audio -> (float32 mono ``[n]``, non-finite samples made silence); 16-bit
    integers are scaled to [-1, 1)."""
    array = np.asarray(audio)
    if array.dtype == np.int16:
        array = array.astype(np.float32) / 32768.0
    elif array.dtype.kind not in "fiu" and array.size:
        raise ValueError(f"audio must be numbers (float or int16 samples), got dtype {array.dtype}")
    return to_mono(array)


class Stream:
    """One source stream and its translation. Made by :meth:`EchoStream.open`."""

    def __init__(self, system: "EchoStream", translator: Translator, sample_rate: int, stream_id: int):
        self.system, self.translator, self.id = system, translator, stream_id
        self.sample_rate = sample_rate
        self.chunk_ms = translator.config.source_segment_size
        self.chunk_samples = max(1, sample_rate * self.chunk_ms // 1000)
        self._state = translator.initial_state(sample_rate)
        self._pieces: Deque[torch.Tensor] = deque()
        self._buffered = 0
        self._finish_requested = False
        self._lock = threading.Lock()
        self._pending_source: List[int] = []
        self._pending_target: List[int] = []
        self.consumed_samples = 0
        self.nonfinite_samples = 0
        self.last_step_seconds: Dict[str, float] = {}  # the last step's wall time per stage (time_stages)
        self.closed = False

    # -- input ------------------------------------------------------------------------------------

    def push(self, audio) -> None:
        """Queue ``audio`` (``[n]`` or ``[n, channels]`` at the stream's rate) without stepping."""
        if self.closed or self._finish_requested:
            raise ValueError(f"stream {self.id} is {'closed' if self.closed else 'finishing'}: it takes no more audio")
        samples, bad = _as_samples(audio)
        with self._lock:
            self.nonfinite_samples += bad
            if samples.numel():
                self._pieces.append(samples)
                self._buffered += samples.numel()

    def request_finish(self) -> None:
        """Mark the source as ended: the next step takes what is left and completes the translation."""
        if self.closed:
            raise ValueError(f"stream {self.id} is closed")
        self._finish_requested = True

    @property
    def finish_requested(self) -> bool:
        """The source has ended (:meth:`request_finish` or :meth:`finish`)."""
        return self._finish_requested

    @property
    def ready(self) -> bool:
        """A whole chunk is waiting, or the source has ended and the stream has not finished."""
        return (
            not self.closed and not self.finished and (self._buffered >= self.chunk_samples or self._finish_requested)
        )

    @property
    def finished(self) -> bool:
        return self._state is not None and self._state.finished

    @property
    def source_seconds(self) -> float:
        return self.consumed_samples / self.sample_rate

    @property
    def buffered_seconds(self) -> float:
        """Audio received and not yet stepped."""
        return self._buffered / self.sample_rate

    @property
    def state(self):
        """The translator state (:class:`TranslatorState`; ``None`` once closed)."""
        return self._state

    def take_chunk(self):
        """``(samples, finish)`` for the next step: one chunk, or everything left when finishing.

        Only the pieces that make up the chunk are touched (a long piece is cut, not copied), so a
        step costs the same however much audio is waiting.
        """
        with self._lock:
            last = self._finish_requested and self._buffered <= self.chunk_samples
            need = self._buffered if last else self.chunk_samples
            taken: List[torch.Tensor] = []
            while need > 0:
                piece = self._pieces.popleft()
                if piece.numel() > need:
                    self._pieces.appendleft(piece[need:])
                    piece = piece[:need]
                taken.append(piece)
                need -= piece.numel()
            chunk = torch.cat(taken) if len(taken) > 1 else (taken[0] if taken else torch.zeros(0))
            self._buffered -= chunk.numel()
        return chunk, last

    # -- output -----------------------------------------------------------------------------------

    def apply(self, samples: torch.Tensor, out: StepOutput, state) -> List[Event]:
        """Take a step's result (from :meth:`EchoStream.step`) and turn it into events."""
        if self.closed:  # closed while its step ran: the result is dropped with the stream
            return []
        self._state = state
        self.last_step_seconds = out.stage_seconds
        self.consumed_samples += samples.numel()
        t = self.translator
        now = self.source_seconds
        events: List[Event] = []
        complete = out.finished or out.sentence_end
        if out.asr_words is not None:  # the lexicon search writes whole words itself
            words = out.asr_words
        else:
            words, self._pending_source = split_complete_words(
                t.dictionaries.source, self._pending_source + out.asr_tokens, complete
            )
        if words:
            events.append(Event("source_text", " ".join(words), source_seconds=now))
        if t.config.translate:
            words, self._pending_target = split_complete_words(
                t.dictionaries.target, self._pending_target + out.target_tokens, complete
            )
            if words:
                events.append(Event("target_text", " ".join(words), source_seconds=now))
        units = tuple(t.setup.rules.vocoder_ids(out.units))
        if units:
            events.append(Event("target_units", units=units, source_seconds=now))
        if out.audio.numel():
            events.append(Event("target_speech", audio=out.audio.float().numpy(), source_seconds=now))
        if out.sentence_end:
            events.append(Event("sentence_end", source_seconds=now))
        if out.finished:
            events.append(Event("finished", source_seconds=now))
        return events

    def feed(self, audio) -> List[Event]:
        """Push ``audio`` and step this stream over every whole chunk now waiting."""
        self.push(audio)
        return self._drain()

    def finish(self) -> List[Event]:
        """End the source: step what is left and flush the translation and its speech."""
        self.request_finish()
        return self._drain()

    def _drain(self) -> List[Event]:
        events: List[Event] = []
        while self.ready:
            events.extend(self.system.step([self]).get(self, []))
        return events

    def close(self) -> None:
        """Free the stream's state (it may be unfinished); the system forgets it."""
        self.closed = True
        self._state = None
        self._pieces, self._buffered = deque(), 0
        self.system._forget(self)


class EchoStream:
    """A loaded system (model, dictionaries, vocoder) shared by every stream it opens.

    Args:
        translator: the system at its default chunk size (see :meth:`load`).
    """

    def __init__(self, translator: Translator) -> None:
        self.translator = translator
        self._translators: Dict[int, Translator] = {translator.config.source_segment_size: translator}
        self._streams: Dict[int, Stream] = {}
        self._next_id = 0
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model_path: str,
        data_bin: str,
        *,
        vocoder: Optional[str] = None,
        vocoder_cfg: Optional[str] = None,
        vocoder_type: str = "code_hifigan",
        dur_prediction: bool = True,
        vocoder_left_context: int = VOCODER_LEFT_CONTEXT,
        output: Optional[str] = None,
        chunk_ms: int = 320,
        **options,
    ) -> "EchoStream":
        """Load a checkpoint with its data folder and (for speech output) its vocoder.

        ``output`` defaults to ``speech`` when a vocoder is given, else ``text``; ``options`` are
        :class:`~echostream_fairseq.streaming.options.TranslatorOptions`' (the agents' flags).
        """
        output = output or ("speech" if vocoder else "text")
        settings = TranslatorOptions.of(**options, output=output, source_segment_size=chunk_ms)
        unit_vocoder = None
        if output == "speech":
            # many streams share the vocoder's calls, up to sub_batch_limit's number each (or fewer, as
            # warm-up finds), calls up to MAX_PADDING frames shorter padded to join them
            unit_vocoder = load_vocoder(
                vocoder,
                vocoder_cfg,
                vocoder_type,
                dur_prediction,
                vocoder_left_context,
                settings.model_dtype,
                max_batch=None,
                max_padding=MAX_PADDING,
            )
        return cls(load_translator(model_path, data_bin, settings, unit_vocoder))

    @property
    def output_sample_rate(self) -> Optional[int]:
        """The rate of ``target_speech`` samples (``None`` without speech output)."""
        vocoder = self.translator.vocoder
        return vocoder.vocoder.sample_rate if vocoder is not None and self.translator.config.speech_output else None

    @property
    def streams(self) -> List[Stream]:
        """The open streams."""
        return list(self._streams.values())

    def open(self, sample_rate: int = SAMPLE_RATE, chunk_ms: Optional[int] = None) -> Stream:
        """A new stream whose audio arrives at ``sample_rate`` Hz, stepped every ``chunk_ms``."""
        if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
        chunk_ms = self.translator.config.source_segment_size if chunk_ms is None else chunk_ms
        with self._lock:
            translator = self._translators.get(chunk_ms)
            if translator is None:
                translator = translator_for_chunk(self.translator, chunk_ms)
                self._translators[chunk_ms] = translator
            stream = Stream(self, translator, sample_rate, self._next_id)
            self._streams[stream.id] = stream
            self._next_id += 1
        return stream

    def _forget(self, stream: Stream) -> None:
        with self._lock:
            self._streams.pop(stream.id, None)

    def step(self, streams: Optional[Iterable[Stream]] = None) -> Dict[Stream, List[Event]]:
        """One tick: every stream given (default: every open one) that is :attr:`Stream.ready` is
        stepped by one chunk, all of a chunk size as one batch. Returns each stepped stream's events."""
        streams = self.streams if streams is None else list(streams)
        by_translator: Dict[int, List[Stream]] = {}
        for stream in streams:
            if stream.system is not self:
                raise ValueError(f"stream {stream.id} belongs to another EchoStream")
            if stream.ready:
                by_translator.setdefault(id(stream.translator), []).append(stream)
        events: Dict[Stream, List[Event]] = {}
        for group in by_translator.values():
            chunks = [stream.take_chunk() for stream in group]
            results = group[0].translator.step_batch(
                [(samples, stream.state, last) for stream, (samples, last) in zip(group, chunks)]
            )
            for stream, (samples, _), (out, state) in zip(group, chunks, results):
                events[stream] = stream.apply(samples, out, state)
        return events
