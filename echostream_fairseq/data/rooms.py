"""Rooms and noise for a speech corpus: a simulated room per utterance, then additive noise at a
drawn signal-to-noise ratio, every draw seeded by the utterance's id so that a corpus is the same
on every machine.

A room is a shoebox (pyroomacoustics' image source method): its size, its reverberation time
(RT60, turned into wall absorption by Sabine's formula), and the source and microphone positions
are drawn per utterance from an :class:`Acoustics` range. The noise is coloured (white, pink or
brown: power falling by 0, 3 or 6 dB per octave) or babble (other utterances the caller gives,
summed, each at its own level). :data:`TRAINING` is what training is to draw from;
:data:`TEST_ROOMS` draws larger rooms, longer reverberation and lower SNRs than training ever
does, for a test split of rooms a model has not met. Sabine's formula is exact for no real room:
the simulated rooms' measured reverberation (T30) is close to the drawn RT60 in small rooms and
up to half as long again in the largest.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "Acoustics",
    "RoomDraw",
    "TRAINING",
    "TEST_ROOMS",
    "NOISE_KINDS",
    "draw",
    "room_impulse_response",
    "coloured_noise",
    "mix_at_snr",
    "apply_room",
]

NOISE_KINDS = ("white", "pink", "brown", "babble")
# power spectral density slope of each colour: P(f) ~ f ** -exponent
_COLOUR_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}


@dataclass(frozen=True)
class Acoustics:
    """The ranges a room and its noise are drawn from (uniformly, each bound included).

    Attributes:
        size: ``((lo, hi), (lo, hi), (lo, hi))`` metres: length, width, height.
        rt60: reverberation time, seconds.
        snr_db: speech-to-noise power ratio, dB.
        noises: the kinds to choose from (:data:`NOISE_KINDS`).
        babble_talkers: how many other utterances a babble sums.
        wall_margin: metres between a source or microphone and the nearest wall.
    """

    size: Tuple[Tuple[float, float], Tuple[float, float], Tuple[float, float]]
    rt60: Tuple[float, float]
    snr_db: Tuple[float, float]
    noises: Tuple[str, ...] = NOISE_KINDS
    babble_talkers: Tuple[int, int] = (3, 6)
    wall_margin: float = 0.5

    def __post_init__(self) -> None:
        unknown = [n for n in self.noises if n not in NOISE_KINDS]
        if unknown or not self.noises:
            raise ValueError(f"noise kinds must be among {NOISE_KINDS}, got {list(self.noises)}")
        for name, (lo, hi) in (("rt60", self.rt60), ("snr_db", self.snr_db), *zip("lwh", self.size)):
            if lo > hi:
                raise ValueError(f"{name} range ({lo}, {hi}) is empty")
        if min(lo for lo, _ in self.size) <= 2 * self.wall_margin:
            raise ValueError(f"every room dimension must exceed twice the wall margin ({2 * self.wall_margin} m)")


# offices, classrooms and living rooms: 0.2-0.7 s of reverberation, 5-25 dB of noise
TRAINING = Acoustics(size=((3.0, 9.0), (3.0, 7.0), (2.4, 3.5)), rt60=(0.2, 0.7), snr_db=(5.0, 25.0))
# larger, more reverberant and noisier than training ever draws
TEST_ROOMS = Acoustics(size=((8.0, 14.0), (6.0, 10.0), (3.0, 4.5)), rt60=(0.75, 1.1), snr_db=(0.0, 5.0))


@dataclass(frozen=True)
class RoomDraw:
    """One utterance's room and noise (what :func:`draw` drew)."""

    size: Tuple[float, float, float]
    rt60: float
    source: Tuple[float, float, float]
    microphone: Tuple[float, float, float]
    snr_db: float
    noise: str
    talkers: int
    seed: int

    def describe(self) -> Dict[str, object]:
        return {
            "size_m": [round(x, 2) for x in self.size],
            "rt60_s": round(self.rt60, 3),
            "source_m": [round(x, 2) for x in self.source],
            "microphone_m": [round(x, 2) for x in self.microphone],
            "snr_db": round(self.snr_db, 2),
            "noise": self.noise,
            "talkers": self.talkers,
        }


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")


def draw(key: str, acoustics: Acoustics) -> RoomDraw:
    """The room and noise of the utterance ``key`` (its id; the same key draws the same room)."""
    seed = _seed(f"echostream-room:{key}")
    rng = np.random.default_rng(seed)
    size = tuple(float(rng.uniform(lo, hi)) for lo, hi in acoustics.size)
    m = acoustics.wall_margin

    def position() -> Tuple[float, float, float]:
        return tuple(float(rng.uniform(m, d - m)) for d in size)

    source, microphone = position(), position()
    noise = acoustics.noises[int(rng.integers(len(acoustics.noises)))]
    lo, hi = acoustics.babble_talkers
    return RoomDraw(
        size=size,
        rt60=float(rng.uniform(*acoustics.rt60)),
        source=source,
        microphone=microphone,
        snr_db=float(rng.uniform(*acoustics.snr_db)),
        noise=noise,
        talkers=int(rng.integers(lo, hi + 1)) if noise == "babble" else 0,
        seed=seed,
    )


def room_impulse_response(room: RoomDraw, sample_rate: int) -> np.ndarray:
    """The room's impulse response from the source to the microphone (float32), the direct path's
    delay removed so the speech keeps its timing, normalised to unit peak."""
    import pyroomacoustics as pra

    absorption, max_order = pra.inverse_sabine(room.rt60, list(room.size))
    shoebox = pra.ShoeBox(
        list(room.size),
        fs=sample_rate,
        materials=pra.Material(absorption),
        max_order=min(max_order, 60),  # the late tail's images change little past this, and cost much
        use_rand_ism=False,
    )
    shoebox.add_source(list(room.source))
    shoebox.add_microphone(list(room.microphone))
    shoebox.compute_rir()
    rir = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    distance = math.dist(room.source, room.microphone)
    direct = int(round(distance / shoebox.c * sample_rate))
    rir = rir[max(0, direct - 40) :]  # pyroomacoustics centres a 81-tap fractional delay filter
    return (rir / np.abs(rir).max()).astype(np.float32)


def coloured_noise(colour: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` samples of unit-power noise whose power spectrum falls as ``f ** -exponent``."""
    if colour not in _COLOUR_EXPONENT:
        raise ValueError(f"no such noise colour {colour!r}; use one of {tuple(_COLOUR_EXPONENT)}")
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.arange(spectrum.size, dtype=np.float64)
    frequencies[0] = 1.0  # the constant term keeps its white level
    spectrum *= frequencies ** (-_COLOUR_EXPONENT[colour] / 2)
    noise = np.fft.irfft(spectrum, n=length)
    noise -= noise.mean()
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech`` plus ``noise`` (as long) scaled so that their power ratio is ``snr_db``."""
    if noise.shape != speech.shape:
        raise ValueError(f"noise of {noise.shape} samples for speech of {speech.shape}")
    speech_power, noise_power = (
        float(np.mean(speech.astype(np.float64) ** 2)),
        float(np.mean(noise.astype(np.float64) ** 2)),
    )
    if speech_power == 0 or noise_power == 0:
        return speech.copy()
    scale = math.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    return (speech + scale * noise).astype(np.float32)


def _babble(talkers: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """Other utterances summed, each looped to ``length``, started at a random point, at its own level."""
    total = np.zeros(length, dtype=np.float64)
    for wave in talkers:
        wave = wave.astype(np.float64)
        power = np.mean(wave**2)
        if power == 0:
            continue
        looped = np.resize(np.roll(wave, -int(rng.integers(wave.size))), length)
        total += looped / np.sqrt(power) * 10 ** (rng.uniform(-6, 0) / 20)
    return total.astype(np.float32)


def apply_room(
    speech: np.ndarray, room: RoomDraw, sample_rate: int, babble_talkers: Optional[Sequence[np.ndarray]] = None
) -> np.ndarray:
    """``speech`` (float32 mono) in ``room``: convolved with its impulse response, then mixed with
    its noise at its SNR; as long as ``speech``, its peak kept at most that of ``speech`` (no clipping
    is added). Babble needs ``babble_talkers``: at least ``room.talkers`` other utterances."""
    from scipy.signal import fftconvolve

    if speech.ndim != 1:
        raise ValueError(f"speech must be mono [n], got shape {speech.shape}")
    reverberant = fftconvolve(speech.astype(np.float64), room_impulse_response(room, sample_rate))[: speech.size]
    rng = np.random.default_rng(room.seed + 1)
    if room.noise == "babble":
        if babble_talkers is None or len(babble_talkers) < room.talkers:
            given = 0 if babble_talkers is None else len(babble_talkers)
            raise ValueError(f"this room's babble needs {room.talkers} other utterances, got {given}")
        picks = rng.choice(len(babble_talkers), size=room.talkers, replace=False)
        noise = _babble([babble_talkers[i] for i in picks], speech.size, rng)
    else:
        noise = coloured_noise(room.noise, speech.size, rng)
    mixed = mix_at_snr(reverberant.astype(np.float32), noise, room.snr_db)
    peak, original = float(np.abs(mixed).max()), float(np.abs(speech).max())
    if peak > 0 and original > 0:
        mixed *= original / peak
    return mixed.astype(np.float32)
