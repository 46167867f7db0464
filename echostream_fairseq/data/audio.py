"""Reading speech audio and computing the model's input features.

The training task and ``echostream-prep`` share these functions, so the features that prep
measures (frame counts, CMVN statistics) are exactly the ones the model sees:

* :func:`read_audio`: any file libsndfile reads (wav, flac, ogg, mp3, ...), downmixed to mono and
  resampled to the requested rate, as float32 in [-1, 1].
* :func:`fbank`: 80-bin kaldi-compatible log-mel filterbank, 25 ms window, 10 ms shift, no
  dither, on the waveform scaled to the int16 range (what fairseq's speech-to-text data does);
  :class:`LogMelFilterbank` is its computation on frames, for the frames of many streams at once.
* :func:`num_fbank_frames`: the number of :func:`fbank` frames for a number of samples, without
  computing them.
* :func:`write_wav`: 16-bit mono PCM wav.
* :func:`stored_features` and :func:`read_stored_features`: features stored in an uncompressed zip
  and named by byte range, ``features.zip:OFFSET:LENGTH`` (fairseq's ``get_zip_manifest``, so
  StreamSpeech's prepared ``src_fbank80.zip``).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import NamedTuple, Optional, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio.compliance.kaldi as kaldi
from torch import Tensor

from echostream_fairseq.common.audio import SAMPLE_RATE, resample

__all__ = [
    "AudioError",
    "FBANK_FRAME_LENGTH_MS",
    "FBANK_FRAME_SHIFT_MS",
    "read_audio",
    "fbank",
    "LogMelFilterbank",
    "log_mel_filterbank",
    "num_fbank_frames",
    "write_wav",
    "audio_format_hint",
    "StoredFeatures",
    "stored_features",
    "read_stored_features",
]

FBANK_FRAME_LENGTH_MS = 25.0
FBANK_FRAME_SHIFT_MS = 10.0
INT16_SCALE = 32768.0  # fairseq feeds kaldi fbank int16-range samples

PathLike = Union[str, "os.PathLike[str]"]


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file."""


class StoredFeatures(NamedTuple):
    """An ``.npy`` array at ``offset`` in an uncompressed zip, ``length`` bytes long."""

    zip_path: Path
    offset: int
    length: int


_STORED = re.compile(r"^(?P<path>.+\.zip):(?P<offset>\d+):(?P<length>\d+)$")


def stored_features(spec: str, root: Optional[Path] = None) -> Optional[StoredFeatures]:
    """``ZIP:OFFSET:LENGTH`` -> its parts (a relative zip path under ``root``); ``None`` for
    anything else (an audio or ``.npy`` path)."""
    match = _STORED.match(spec)
    if match is None:
        return None
    path = Path(match["path"])
    if not path.is_absolute() and root is not None:
        path = root / path
    return StoredFeatures(path, int(match["offset"]), int(match["length"]))


def read_stored_features(stored: StoredFeatures) -> np.ndarray:
    """The array a byte range of a zip holds (fairseq stores each utterance's fbank uncompressed,
    so the range is the ``.npy`` file itself)."""
    where = f"{stored.zip_path}:{stored.offset}:{stored.length}"
    if not stored.zip_path.is_file():
        raise AudioError(f"{where}: feature zip not found")
    with open(stored.zip_path, "rb") as f:
        f.seek(stored.offset)
        data = f.read(stored.length)
    if len(data) != stored.length:
        raise AudioError(f"{where}: the zip ends before this byte range ({len(data)} of {stored.length} bytes)")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        raise AudioError(f"{where}: not a stored .npy array ({e}); was the zip written compressed?") from None


def read_audio(path: PathLike, sample_rate: int = SAMPLE_RATE) -> Tensor:
    """Read an audio file as mono float32 at ``sample_rate``.

    Multichannel audio is downmixed by averaging the channels; other rates are resampled with
    :func:`echostream_fairseq.common.audio.resample`.

    Args:
        path: any file libsndfile reads (wav, flac, ogg/vorbis, opus, mp3 with libsndfile >= 1.1).
        sample_rate: rate of the returned waveform.

    Returns:
        ``[num_samples]`` float32 tensor in [-1, 1].

    Raises:
        AudioError: the file is missing, unreadable, empty or holds NaN/inf samples.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(f"{path}: audio file not found")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        # always_2d: [frames, channels] whatever the channel count
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(f"{path}: cannot read audio ({e}){audio_format_hint(path)}") from None
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"{path}: audio has no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio contains NaN or inf samples")
    waveform = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)))
    return resample(waveform, file_rate, sample_rate).clamp_(-1.0, 1.0)


def audio_format_hint(path: str) -> str:
    """Why libsndfile may refuse a file that is fine: an mp3 with a libsndfile older than 1.1."""
    if path.lower().endswith(".mp3") and "MP3" not in sf.available_formats():
        return (
            f"; this libsndfile ({sf.__libsndfile_version__}) cannot decode mp3: install soundfile>=0.12 "
            "(it bundles libsndfile>=1.1) or convert the clips to wav/flac"
        )
    return ""


def _fbank_window(sample_rate: int) -> tuple[int, int]:
    """(window length, shift) of :func:`fbank` in samples, rounded as kaldi rounds them."""
    return (
        int(sample_rate * FBANK_FRAME_LENGTH_MS * 0.001),
        int(sample_rate * FBANK_FRAME_SHIFT_MS * 0.001),
    )


def num_fbank_frames(num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of frames :func:`fbank` returns for ``num_samples`` samples (kaldi ``snip_edges``)."""
    window, shift = _fbank_window(sample_rate)
    if num_samples < window:
        return 0
    return 1 + (num_samples - window) // shift


def fbank(waveform: Tensor, sample_rate: int = SAMPLE_RATE, num_mel_bins: int = 80) -> Tensor:
    """Kaldi-compatible log-mel filterbank of one mono waveform.

    Args:
        waveform: ``[num_samples]`` float in [-1, 1].
        sample_rate: rate of ``waveform``.
        num_mel_bins: number of mel bins.

    Returns:
        ``[num_frames, num_mel_bins]`` float32 with
        ``num_frames == num_fbank_frames(num_samples, sample_rate)`` (0 rows for audio shorter than
        one 25 ms window).
    """
    if waveform.dim() != 1:
        raise AudioError(f"fbank expects a mono waveform [num_samples], got shape {list(waveform.shape)}")
    filterbank = log_mel_filterbank(sample_rate, num_mel_bins)
    return filterbank(filterbank.frames(waveform))


class LogMelFilterbank:
    """The computation of :func:`fbank` split in two, so that the frames of many waveforms (many
    live streams) go through it as one batch, and the window and mel matrix are built once.

    It is ``torchaudio.compliance.kaldi.fbank`` with :func:`fbank`'s settings (povey window, DC
    removal, pre-emphasis 0.97, power spectrum over a 512-point FFT, mel bins from 20 Hz to
    Nyquist, log floored at float32 epsilon), each frame on its own.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, num_mel_bins: int = 80) -> None:
        self.window_length, self.shift = _fbank_window(sample_rate)
        self.num_mel_bins = num_mel_bins
        self.fft_length = 1 << (self.window_length - 1).bit_length()
        # kaldi's povey window, on samples at the int16 scale (what fairseq feeds kaldi)
        self.window = torch.hann_window(self.window_length, periodic=False).pow(0.85) * INT16_SCALE
        banks, _ = kaldi.get_mel_banks(num_mel_bins, self.fft_length, float(sample_rate), 20.0, 0.0, 100.0, -500.0, 1.0)
        # the Nyquist bin gets no weight, as in kaldi
        self.mel_t = torch.nn.functional.pad(banks.float(), (0, 1)).t().contiguous()  # [fft_length // 2 + 1, mel]
        self.floor = torch.tensor(torch.finfo(torch.float32).eps)

    def frames(self, waveform: Tensor) -> Tensor:
        """``[num_samples]`` -> ``[num_fbank_frames, window_length]`` (a view; kaldi's ``snip_edges``)."""
        if waveform.numel() < self.window_length:
            return waveform.new_zeros(0, self.window_length, dtype=torch.float32)
        return waveform.float().unfold(0, self.window_length, self.shift)

    def __call__(self, frames: Tensor) -> Tensor:
        """``[m, window_length]`` samples in [-1, 1] -> ``[m, num_mel_bins]`` log-mel energies."""
        if frames.size(0) == 0:
            return frames.new_zeros(0, self.num_mel_bins)
        # DC removal commutes with pre-emphasis (x[j] - 0.97 x[j-1], the first sample against
        # itself): both are linear and pre-emphasis maps a constant c to 0.03 c
        x = torch.empty_like(frames)
        torch.sub(frames[:, 1:], frames[:, :-1], alpha=0.97, out=x[:, 1:])
        torch.mul(frames[:, :1], 1.0 - 0.97, out=x[:, :1])
        device = frames.device  # the constants live on the CPU; a GPU waveform gets copies
        x = (x - (1.0 - 0.97) * frames.mean(dim=1, keepdim=True)) * self.window.to(device)
        spectrum = torch.view_as_real(torch.fft.rfft(x, n=self.fft_length))
        power = spectrum.pow(2).sum(dim=-1)
        return torch.max(power @ self.mel_t.to(device), self.floor.to(device)).log()


_FILTERBANKS: dict = {}


def log_mel_filterbank(sample_rate: int = SAMPLE_RATE, num_mel_bins: int = 80) -> LogMelFilterbank:
    """The shared :class:`LogMelFilterbank` of these settings (built on first use)."""
    key = (int(sample_rate), int(num_mel_bins))
    if key not in _FILTERBANKS:
        _FILTERBANKS[key] = LogMelFilterbank(*key)
    return _FILTERBANKS[key]


def write_wav(path: PathLike, waveform: Tensor, sample_rate: int = SAMPLE_RATE) -> None:
    """Write ``[num_samples]`` float audio in [-1, 1] as 16-bit mono PCM wav (not atomic)."""
    if waveform.dim() != 1:
        raise AudioError(f"{os.fspath(path)}: write_wav expects [num_samples], got shape {list(waveform.shape)}")
    samples = waveform.detach().float().clamp(-1.0, 1.0).numpy()
    # quantise ourselves with the scale libsndfile reads back with (1/32768), so a round trip
    # through write_wav and read_audio changes each sample by at most half a step
    pcm = np.clip(np.round(samples * INT16_SCALE), -32768, 32767).astype(np.int16)
    sf.write(os.fspath(path), pcm, sample_rate, subtype="PCM_16", format="WAV")
