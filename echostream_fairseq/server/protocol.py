"""The stream protocol of ``echostream-serve`` (written down in ``docs/server.md``).

One WebSocket per stream. The client sends a ``start`` text message (JSON), then binary messages
of PCM audio, then a ``finish`` text message. The server answers ``ready``, then events as they
happen (``source_text``, ``target_text``, ``target_speech`` followed by one binary message of
float32 little-endian samples, ``sentence_end``, ``progress``), and ``finished`` before it closes.
Anything wrong gets one ``error`` message (a code and a sentence) and the socket is closed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence

import numpy as np

__all__ = [
    "PROTOCOL_VERSION",
    "AUDIO_FORMATS",
    "ERROR_CODES",
    "ProtocolError",
    "StartMessage",
    "parse_text_message",
    "parse_start",
    "decode_audio",
    "encode_speech",
]

PROTOCOL_VERSION = 1
# sample formats of client audio: little-endian float32 in [-1, 1], or signed 16-bit
AUDIO_FORMATS = {"f32le": np.dtype("<f4"), "s16le": np.dtype("<i2")}
# error code -> WebSocket close code the server closes with
ERROR_CODES = {
    "bad_message": 1008,  # not JSON, an unknown type, a field missing or of the wrong type, out of order
    "bad_audio": 1008,  # binary data that is not whole samples of the declared format and channels
    "unauthorized": 1008,  # the server has a token and the start message does not carry it
    "too_large": 1009,  # a message over --max-message-bytes
    "too_long": 1008,  # the stream went past --max-stream-seconds
    "rate_mismatch": 1008,  # audio arrives faster than the declared rate allows (--max-speed)
    "busy": 1013,  # --max-streams streams are open; try again later
    "draining": 1012,  # the server is shutting down (SIGTERM) and takes no new streams
    "shutting_down": 1001,  # the server shut down after --drain-seconds with this stream still open
    "server_error": 1011,  # the model failed on this stream's batch
}


class ProtocolError(Exception):
    """A client mistake or a limit: ``code`` (a key of :data:`ERROR_CODES`) and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        self.code, self.message = code, message

    def as_message(self) -> Dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message}


@dataclass(frozen=True)
class StartMessage:
    sample_rate: int
    audio_format: str
    channels: int
    chunk_ms: int
    token: Optional[str] = field(default=None, repr=False)  # a secret: never in a log line


def parse_text_message(text: str) -> Dict[str, Any]:
    """A client text message -> its JSON object (with a string ``type``)."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProtocolError("bad_message", f"text messages must be JSON objects: {e}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("bad_message", 'text messages must be JSON objects with a "type" string')
    return message


def _int_field(message: Dict[str, Any], name: str, default: Optional[int]) -> int:
    value = message.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError("bad_message", f'"{name}" must be an integer, got {value!r}')
    return value


def parse_start(
    message: Dict[str, Any],
    chunk_sizes: Sequence[int],
    default_chunk_ms: int,
    min_rate: int = 8000,
    max_rate: int = 192000,
) -> StartMessage:
    """Check a ``start`` message against what the server offers."""
    if message.get("type") != "start":
        raise ProtocolError(
            "bad_message", f'the first message must be {{"type": "start", ...}}, got type {message.get("type")!r}'
        )
    rate = _int_field(message, "sample_rate", None) if "sample_rate" in message else None
    if rate is None:
        raise ProtocolError("bad_message", '"sample_rate" (Hz of the audio you will send) is required')
    if not min_rate <= rate <= max_rate:
        raise ProtocolError("bad_message", f'"sample_rate" must be between {min_rate} and {max_rate} Hz, got {rate}')
    audio_format = message.get("format", "f32le")
    if audio_format not in AUDIO_FORMATS:
        raise ProtocolError("bad_message", f'"format" must be one of {sorted(AUDIO_FORMATS)}, got {audio_format!r}')
    channels = _int_field(message, "channels", 1)
    if not 1 <= channels <= 8:
        raise ProtocolError("bad_message", f'"channels" must be between 1 and 8, got {channels}')
    chunk_ms = _int_field(message, "chunk_ms", default_chunk_ms)
    if chunk_ms not in chunk_sizes:
        raise ProtocolError("bad_message", f'"chunk_ms" must be one of {list(chunk_sizes)}, got {chunk_ms}')
    token = message.get("token")
    if token is not None and not isinstance(token, str):
        raise ProtocolError("bad_message", '"token" must be a string')
    return StartMessage(rate, audio_format, channels, chunk_ms, token)


def decode_audio(data: bytes, start: StartMessage) -> np.ndarray:
    """A binary message -> ``[frames, channels]`` float32 samples (``[frames]`` when mono)."""
    dtype = AUDIO_FORMATS[start.audio_format]
    frame_bytes = dtype.itemsize * start.channels
    if len(data) % frame_bytes:
        raise ProtocolError(
            "bad_audio",
            f"binary messages must hold whole {start.audio_format} frames of "
            f"{start.channels} channel(s) ({frame_bytes} bytes each); got {len(data)} bytes",
        )
    samples = np.frombuffer(data, dtype=dtype)
    if start.audio_format == "s16le":
        samples = samples.astype(np.float32) / 32768.0
    else:
        samples = samples.astype(np.float32)
    return samples.reshape(-1, start.channels) if start.channels > 1 else samples


def encode_speech(audio: np.ndarray) -> bytes:
    """Target speech samples -> the binary message that follows ``target_speech``."""
    return np.asarray(audio, dtype="<f4").tobytes()
