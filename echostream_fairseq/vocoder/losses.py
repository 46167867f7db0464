"""HiFi-GAN's training losses: log-mel L1, least-squares adversarial, feature matching, and the
duration predictor's regression on ``log(1 + frames)`` (what fairseq's CodeGenerator inverts)."""

from __future__ import annotations

from typing import Any, List, Mapping

import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor, nn

from echostream_fairseq.common.audio import SAMPLE_RATE

__all__ = ["MelLoss", "discriminator_loss", "generator_adversarial_loss", "feature_matching_loss", "duration_loss"]


class MelLoss(nn.Module):
    """Mean absolute difference of natural-log mel spectrograms of two ``[B, 1, T]`` waveforms."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=int(config.get("sampling_rate", SAMPLE_RATE)),
            n_fft=config["n_fft"],
            win_length=config["win_size"],
            hop_length=config["hop_size"],
            f_min=config["fmin"],
            f_max=config["fmax"],
            n_mels=config["num_mels"],
            power=1.0,
            norm="slaney",
            mel_scale="slaney",
        )

    def log_mel(self, audio: Tensor) -> Tensor:
        return torch.log(self.mel(audio).clamp(min=1e-5))

    def forward(self, generated: Tensor, real: Tensor) -> Tensor:
        return F.l1_loss(self.log_mel(generated), self.log_mel(real))


def discriminator_loss(real_scores: List[Tensor], fake_scores: List[Tensor]) -> Tensor:
    """Least squares: real scores towards 1, generated towards 0, summed over sub-discriminators."""
    return sum(torch.mean((1 - r) ** 2) + torch.mean(f**2) for r, f in zip(real_scores, fake_scores))


def generator_adversarial_loss(fake_scores: List[Tensor]) -> Tensor:
    return sum(torch.mean((1 - f) ** 2) for f in fake_scores)


def feature_matching_loss(real_features: List[List[Tensor]], fake_features: List[List[Tensor]]) -> Tensor:
    """L1 between the discriminators' feature maps of real and generated audio (real ones detached)."""
    return sum(
        F.l1_loss(fake, real.detach())
        for real_maps, fake_maps in zip(real_features, fake_features)
        for real, fake in zip(real_maps, fake_maps)
    )


def duration_loss(log_duration: Tensor, durations: Tensor, mask: Tensor) -> Tensor:
    """MSE between predicted ``log(1 + frames)`` and the truth, over the ``mask``ed (real) units.

    Shapes: ``[B, U]`` each; ``mask`` is True for real units.
    """
    target = torch.log1p(durations.float())
    return ((log_duration - target) ** 2 * mask).sum() / mask.sum().clamp(min=1)
