"""The training-free vocoder: unit -> its k-means centroid (a log-mel frame) -> Griffin-Lim.

Works for units made by ``echostream-prep``'s default log-mel k-means, whose centroids live in the
same 80-bin log-mel space the units were clustered in. Durations of de-duplicated units are
each unit's mean run length on the train split (``mean_duration`` in ``units/kmeans.pt``).
The mel -> linear step is the pseudo-inverse of the mel filterbank (clamped at zero); the phase
comes from Griffin-Lim with a fixed (zero-phase) start, so the output is deterministic.
"""

from __future__ import annotations

import os
from typing import Any, Dict

import torch
import torchaudio
from torch import Tensor

from echostream_fairseq.data.units import LogMelConfig, UnitError, load_unit_model, units_kind_of
from echostream_fairseq.vocoder.base import UnitVocoder
from echostream_fairseq.vocoder.config import VocoderError

__all__ = ["GriffinLimUnitVocoder"]


class GriffinLimUnitVocoder(UnitVocoder):
    """Centroid log-mel frames -> pseudo-inverse mel -> Griffin-Lim.

    Args:
        unit_model: the dict of ``units/kmeans.pt`` (see :mod:`echostream_fairseq.data.units`).
        num_iterations: Griffin-Lim iterations (32 is what the measurements in docs/benchmarks.md use).
    """

    has_duration_predictor = True

    def __init__(self, unit_model: Dict[str, Any], num_iterations: int = 32, where: str = "unit model") -> None:
        super().__init__()
        if unit_model.get("extractor") != "logmel":
            raise VocoderError(
                f"{where}: Griffin-Lim needs log-mel k-means units; these units come from "
                f"{unit_model.get('extractor')!r} features, whose centroids are not spectra (train a HiFi-GAN instead)"
            )
        if num_iterations < 1:
            raise VocoderError(f"num_iterations must be at least 1, got {num_iterations}")
        self.mel_config = LogMelConfig.from_dict(unit_model["feature_config"])
        c = self.mel_config
        centroids = unit_model["centroids"].float()
        if centroids.shape[1] != c.n_mels:
            raise VocoderError(
                f"{where}: centroids have {centroids.shape[1]} dimensions, the feature config {c.n_mels} mels"
            )
        self.sample_rate = c.sample_rate
        self.frame_hop = c.hop_length
        self.num_units = int(centroids.shape[0])
        self.units_kind = units_kind_of(unit_model)
        self.num_iterations = num_iterations
        # linear magnitude of each centroid, undoing log(mel + offset) and then the mel filterbank
        mel = (centroids.exp() - c.log_offset).clamp(min=0.0)  # [K, n_mels]
        filterbank = torchaudio.functional.melscale_fbanks(
            c.n_fft // 2 + 1, c.f_min, c.f_max, c.n_mels, c.sample_rate, norm=c.mel_norm, mel_scale=c.mel_scale
        )  # [n_freq, n_mels]
        magnitude = (mel @ torch.linalg.pinv(filterbank)).clamp(min=0.0)  # [K, n_freq]
        self.register_buffer("unit_magnitude", magnitude, persistent=False)
        self.register_buffer("mean_duration", unit_model["mean_duration"].float(), persistent=False)
        self.register_buffer("window", torch.hann_window(c.win_length), persistent=False)

    @classmethod
    def from_file(cls, path: str, num_iterations: int = 32) -> "GriffinLimUnitVocoder":
        if not os.path.isfile(path):
            raise VocoderError(f"{path}: unit model not found (echostream-prep writes DATA/units/kmeans.pt)")
        try:
            unit_model = load_unit_model(path)
        except UnitError as e:
            raise VocoderError(str(e)) from None
        except Exception as e:
            raise VocoderError(
                f"{path}: cannot read the unit model ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
            ) from None
        return cls(unit_model, num_iterations, where=path)

    def durations(self, units: Tensor) -> Tensor:
        return torch.round(self.mean_duration[units]).long().clamp(min=1)

    @torch.no_grad()
    def synthesize_frames(self, frames: Tensor) -> Tensor:
        c = self.mel_config
        length = frames.numel() * c.hop_length
        # the centred STFT reflects n_fft / 2 samples at each end: very short inputs are
        # synthesised with their last frame repeated, then cut back
        too_short = max(0, c.n_fft // (2 * c.hop_length) + 1 - frames.numel())
        # a centred STFT of T * hop samples has T + 1 frames: repeat the last one
        padded = torch.cat([frames, frames[-1:].expand(too_short + 1)])
        spectrogram = self.unit_magnitude[padded].T  # [n_freq, T + 1 + too_short]
        audio = torchaudio.functional.griffinlim(
            spectrogram,
            self.window,
            c.n_fft,
            c.hop_length,
            c.win_length,
            power=1.0,
            n_iter=self.num_iterations,
            momentum=0.99,
            length=(padded.numel() - 1) * c.hop_length,
            rand_init=False,
        )
        return audio[:length]
