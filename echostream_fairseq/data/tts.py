"""Offline speech synthesis with espeak-ng, driven through ctypes.

The library and its language data come from the ``espeakng-loader`` wheel. espeak-ng runs in
synchronous mode: ``espeak_Synth`` returns once the whole text is spoken, and our callback has
collected its int16 samples (22050 Hz).

Reproducibility. espeak-ng keeps counters in C statics that no API call resets: the pitch
"flutter" position, the glottal cycle count that drives "roughness", the klatt synthesiser's
filters, and an automatic gain that drops after a clipped sample. With its stock voices the same
text therefore comes out slightly different depending on what was spoken before in the process.
Our voices come from variant files that we write, with flutter and roughness off and the formant
synthesiser only; the volume leaves headroom so no sample clips; the random generators used for
noise (espeak-ng's and the C library's) are re-seeded and the voice is re-loaded before every
utterance. An utterance's samples then depend only on (text, voice, rate, pitch), whatever was
synthesised before; ``tests/data/test_prep_tts.py`` checks it.

The variant files live in a private copy of espeak-ng's data folder made of symbolic links to the
wheel's files plus our own ``voices/!v/`` folder.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from echostream_fairseq.common.audio import SAMPLE_RATE, resample

__all__ = [
    "TtsError",
    "Voice",
    "VARIANTS",
    "VOLUME",
    "SOURCE_LANGUAGE",
    "SOURCE_VOICES",
    "GENERATED_VOICES",
    "QUALITY_VOICES",
    "generated_variant",
    "TARGET_VOICE",
    "ESPEAK_SAMPLE_RATE",
    "Synthesizer",
    "get_synthesizer",
]

ESPEAK_SAMPLE_RATE = 22050
# espeak-ng's amplitude (default 100). Lower, so that no utterance saturates int16: on overflow its
# automatic gain control lowers a gain that then carries over into the next utterance.
VOLUME = 70

# espeak-ng's C enums (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE, _PARAM_PUNCTUATION, _PARAM_CAPITALS, _PARAM_WORDGAP = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
)

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


_LIBC = ctypes.CDLL(None)


class TtsError(RuntimeError):
    """espeak-ng is missing or failed."""


# Our voice variants: espeak-ng voice-file lines. Each differs in pitch band, formant scaling
# (vocal tract length), breathiness, consonant strength or echo. All of them use the formant
# synthesiser with ``flutter 0`` and ``roughness 8`` (= off): flutter and roughness both read
# counters that survive from one utterance to the next (see the module docstring). The klatt
# synthesiser is not used for the same reason: its filters keep state across utterances.
VARIANTS: Dict[str, List[str]] = {
    "es-plain": ["gender male", "flutter 0", "roughness 8"],
    "es-deep": [
        "gender male",
        "flutter 0",
        "roughness 8",
        "pitch 68 104",
        "formant 1 93 100 100",
        "formant 2 94 100 100",
        "formant 3 95 100 100",
        "formant 4 96 100 100",
    ],
    "es-bright": [
        "gender female",
        "flutter 0",
        "roughness 8",
        "pitch 150 235",
        "formant 0 104 90 130",
        "formant 1 114 85 130",
        "formant 2 112 85 130",
        "formant 3 109 85 130",
        "formant 4 108 90 130",
        "formant 5 108 90 130",
    ],
    "es-breathy": [
        "gender female",
        "flutter 0",
        "roughness 8",
        "pitch 135 205",
        "formant 1 110 90 120",
        "formant 2 108 90 120",
        "formant 3 106 90 120",
        "breath 0 3 4 4 3 3 2 2",
        "breathw 150 150 200 200 400 400",
    ],
    "es-small": [
        "gender female",
        "flutter 0",
        "roughness 8",
        "pitch 200 290",
        "formant 1 120 80 140",
        "formant 2 118 80 140",
        "formant 3 115 85 140",
        "formant 4 112 90 140",
    ],
    "es-crisp": [
        "gender male",
        "flutter 0",
        "roughness 8",
        "pitch 105 150",
        "consonants 150 150",
        "formant 2 103 110 90",
        "formant 3 104 110 90",
    ],
    "es-echo": ["gender male", "flutter 0", "roughness 8", "pitch 100 150", "echo 25 18", "formant 3 104 100 100"],
}


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: base language voice plus one of our :data:`VARIANTS`.

    Attributes:
        language: espeak-ng voice name of the language (``"fr"``, ``"en-us"``).
        variant: a key of :data:`VARIANTS`.
        rate: speaking rate in words per minute (espeak-ng accepts 80..450).
        pitch: base pitch, 0..100 (50 is the voice's own).
        pitch_range: intonation range, 0..100 (50 is the voice's own).
    """

    language: str
    variant: str
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50

    def describe(self) -> str:
        return f"{self.language}+{self.variant} rate={self.rate} pitch={self.pitch} range={self.pitch_range}"


# Generated voices: more speakers for training, each a fixed function of its name. The plain
# family (es-genNN) varies the two axes on which speakers differ most: vocal tract length, which
# scales every formant, and pitch band; it never uses breath, consonant strength or echo, so the
# hand-written variants that do (es-breathy, es-crisp, es-echo) stay qualities a model trained on
# it has not heard. The qualities family (es-gqNN) draws those three as well.
NUM_GENERATED_VOICES = 32
GENERATED_VOICES: Tuple[str, ...] = tuple(f"es-gen{i:02d}" for i in range(1, NUM_GENERATED_VOICES + 1))
QUALITY_VOICES: Tuple[str, ...] = tuple(f"es-gq{i:02d}" for i in range(1, NUM_GENERATED_VOICES + 1))
# formant frequencies as a factor of espeak-ng's own (vocal tract length), by the gender of the voice
_GENERATED_TRACT_RANGE = {"male": (0.88, 1.04), "female": (1.04, 1.20)}


def generated_variant(name: str) -> List[str]:
    """The espeak-ng variant lines of a generated voice (``es-genNN``, ``es-gqNN``): a function of the name.

    Odd numbers are female voices, even numbers male, so any first N are balanced.
    """
    if name not in GENERATED_VOICES and name not in QUALITY_VOICES:
        raise TtsError(
            f"unknown generated voice {name!r}; known: es-gen01 .. {GENERATED_VOICES[-1]}, "
            f"es-gq01 .. {QUALITY_VOICES[-1]}"
        )
    rng = random.Random(f"echostream-voice:{name}")
    female = int(name[-2:]) % 2 == 1
    tract = rng.uniform(*_GENERATED_TRACT_RANGE["female" if female else "male"])
    low = rng.randint(140, 215) if female else rng.randint(65, 120)
    high = int(low * rng.uniform(1.35, 1.6))
    lines = [f"gender {'female' if female else 'male'}", "flutter 0", "roughness 8", f"pitch {low} {high}"]
    for formant in range(1, 6):
        frequency = round(100 * tract + rng.uniform(-3, 3))
        lines.append(f"formant {formant} {frequency} {rng.randint(85, 110)} {rng.randint(85, 130)}")
    if name in QUALITY_VOICES:
        lines.append(f"consonants {rng.randint(70, 160)} {rng.randint(70, 160)}")
        if rng.random() < 0.5:  # breath noise in each formant band, and its band widths
            lines.append("breath " + " ".join(str(rng.randint(0, 5)) for _ in range(8)))
            lines.append("breathw " + " ".join(str(rng.randint(120, 450)) for _ in range(6)))
        if rng.random() < 0.3:
            lines.append(f"echo {rng.randint(10, 40)} {rng.randint(8, 25)}")
    return lines


# the hand-written variants: what a corpus uses unless --extra-voices adds generated ones
SOURCE_VOICES: Tuple[str, ...] = tuple(VARIANTS)
VARIANTS.update({name: generated_variant(name) for name in GENERATED_VOICES + QUALITY_VOICES})

SOURCE_LANGUAGE = "fr"
# The single canonical target voice: target units are a function of the English text alone.
TARGET_VOICE = Voice("en-us", "es-plain", rate=165, pitch=50, pitch_range=50)


def _variant_file_text(name: str, lines: List[str]) -> str:
    return "\n".join(["language variant", f"name {name}", *lines]) + "\n"


def _make_private_data_dir(bundled: str) -> str:
    """A folder holding ``espeak-ng-data/`` = links to the bundled data + our ``voices/!v``."""
    root = tempfile.mkdtemp(prefix="echostream-espeak-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    data = os.path.join(root, "espeak-ng-data")
    os.makedirs(os.path.join(data, "voices", "!v"))
    for entry in os.listdir(bundled):
        if entry != "voices":
            os.symlink(os.path.join(bundled, entry), os.path.join(data, entry))
    for name, lines in VARIANTS.items():
        with open(os.path.join(data, "voices", "!v", name), "w", encoding="utf-8") as f:
            f.write(_variant_file_text(name, lines))
    return root


class Synthesizer:
    """One initialised espeak-ng library (it is a process-wide singleton: use :func:`get_synthesizer`).

    Not thread-safe: espeak-ng keeps global state. Processes each get their own.
    """

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise TtsError(
                "espeak-ng is not installed: `pip install espeakng-loader` (it bundles libespeak-ng and its data)"
            ) from None
        library_path = espeakng_loader.get_library_path()
        try:
            lib = ctypes.CDLL(library_path)
            bundled_data = espeakng_loader.get_data_path()
        except (OSError, RuntimeError) as e:
            raise TtsError(f"cannot load espeak-ng from {library_path}: {e}") from None

        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p

        self._data_root = _make_private_data_dir(bundled_data)
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self._data_root.encode(), 0)
        if rate != ESPEAK_SAMPLE_RATE:
            raise TtsError(f"espeak-ng failed to initialise from {self._data_root} (returned {rate})")
        self._lib = lib
        self._chunks: List[np.ndarray] = []

        def collect(samples, count, events):  # called by espeak-ng with each block of audio
            if count > 0:
                self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
            return 0

        self._callback = _SYNTH_CALLBACK(collect)  # keep a reference: ctypes must not free it
        lib.espeak_SetSynthCallback(self._callback)
        self.version = lib.espeak_Info(None).decode()

    def _set_voice(self, voice: Voice) -> None:
        if voice.variant not in VARIANTS:
            raise TtsError(f"unknown voice variant {voice.variant!r}; known: {sorted(VARIANTS)}")
        # Set the voice for every utterance, even an unchanged one: loading a voice resets the
        # wave generator's per-voice state (echo buffer, pitch), which would otherwise carry over.
        status = self._lib.espeak_SetVoiceByName(f"{voice.language}+{voice.variant}".encode())
        if status != 0:
            raise TtsError(f"espeak-ng has no voice {voice.language}+{voice.variant} (status {status})")
        for parameter, value in (
            (_PARAM_RATE, voice.rate),
            (_PARAM_PITCH, voice.pitch),
            (_PARAM_RANGE, voice.pitch_range),
            (_PARAM_VOLUME, VOLUME),
            (_PARAM_WORDGAP, 0),
            (_PARAM_PUNCTUATION, 0),
            (_PARAM_CAPITALS, 0),
        ):
            self._lib.espeak_SetParameter(parameter, int(value), 0)

    def synthesize_int16(self, text: str, voice: Voice) -> np.ndarray:
        """Speak ``text``; returns ``[num_samples]`` int16 at :data:`ESPEAK_SAMPLE_RATE`."""
        if not text.strip():
            raise TtsError("cannot synthesise empty text")
        self._set_voice(voice)
        self._lib.espeak_ng_SetRandSeed(1)  # noise sources restart identically for every utterance
        _LIBC.srand(1)
        self._chunks = []
        encoded = text.encode("utf-8") + b"\0"
        status = self._lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if status != 0:
            raise TtsError(f"espeak-ng failed on {text!r} with {voice.describe()} (status {status})")
        if not self._chunks:
            raise TtsError(f"espeak-ng produced no audio for {text!r} with {voice.describe()}")
        return np.concatenate(self._chunks)

    def synthesize(self, text: str, voice: Voice, sample_rate: int = SAMPLE_RATE) -> Tensor:
        """Speak ``text``; returns ``[num_samples]`` float32 in [-1, 1] at ``sample_rate``."""
        samples = torch.from_numpy(self.synthesize_int16(text, voice).astype(np.float32) / 32768.0)
        return resample(samples, ESPEAK_SAMPLE_RATE, sample_rate).clamp_(-1.0, 1.0)


_SYNTHESIZER: Optional[Synthesizer] = None


def get_synthesizer() -> Synthesizer:
    """The process's espeak-ng synthesiser (initialised on first use)."""
    global _SYNTHESIZER
    if _SYNTHESIZER is None:
        _SYNTHESIZER = Synthesizer()
    return _SYNTHESIZER
