"""HiFi-GAN's two discriminators: multi-period (MPD) and multi-scale (MSD).

Each sub-discriminator returns its output scores and the feature maps of every layer (for the
feature-matching loss). Widths are configurable so the tiny preset can use narrow ones.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import weight_norm

__all__ = ["PeriodDiscriminator", "MultiPeriodDiscriminator", "ScaleDiscriminator", "MultiScaleDiscriminator"]

LEAKY_SLOPE = 0.1
Scores = List[Tensor]
Features = List[List[Tensor]]


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
    """Leaky-ReLU conv layers then the output conv: (scores ``[B, N]``, every layer's output)."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LEAKY_SLOPE)
        features.append(x)
    x = post(x)
    features.append(x)
    return x.flatten(1), features


class PeriodDiscriminator(nn.Module):
    """Looks at every ``period``-th sample: ``[B, 1, T]`` folded to ``[B, 1, T / period, period]``
    and judged by 2-D convolutions that never mix the ``period`` phases."""

    def __init__(self, period: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.period = period
        widths = [1, *channels]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (5, 1), (3 if i < len(channels) - 1 else 1, 1), padding=(2, 0)))
            for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:]))
        )
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, audio: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """``[B, 1, T]`` -> (scores ``[B, N]``, feature maps)."""
        batch, _, length = audio.shape
        pad = (-length) % self.period
        if pad:
            audio = F.pad(audio, (0, pad), mode="reflect" if pad < length else "constant")
        return _conv_stack(self.convs, self.post, audio.view(batch, 1, -1, self.period))


class ScaleDiscriminator(nn.Module):
    """Strided, grouped 1-D convolutions over the waveform at one sampling rate."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        # (kernel, stride) per layer as in HiFi-GAN: a wide input layer, strided grouped layers, a narrow last one
        shapes = [(15, 1)] + [(41, 2)] + [(41, 4)] * max(len(channels) - 3, 0) + [(5, 1)]
        shapes = shapes[: len(channels)]
        widths = [1, *channels]
        layers = []
        for (kernel, stride), c_in, c_out in zip(shapes, widths[:-1], widths[1:]):
            groups = math.gcd(c_in, c_out, 16) if kernel == 41 else 1
            layers.append(weight_norm(nn.Conv1d(c_in, c_out, kernel, stride, groups=groups, padding=kernel // 2)))
        self.convs = nn.ModuleList(layers)
        self.post = weight_norm(nn.Conv1d(widths[-1], 1, 3, 1, padding=1))

    def forward(self, audio: Tensor) -> Tuple[Tensor, List[Tensor]]:
        return _conv_stack(self.convs, self.post, audio)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(
        self, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: Sequence[int] = (32, 128, 512, 1024, 1024)
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)

    def forward(self, audio: Tensor) -> Tuple[Scores, Features]:
        outputs = [d(audio) for d in self.discriminators]
        return [o[0] for o in outputs], [o[1] for o in outputs]


class MultiScaleDiscriminator(nn.Module):
    """``scales`` discriminators on the waveform average-pooled by 1, 2, 4, ..."""

    def __init__(self, scales: int = 3, channels: Sequence[int] = (16, 64, 256, 1024, 1024, 1024)) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(ScaleDiscriminator(channels) for _ in range(scales))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, audio: Tensor) -> Tuple[Scores, Features]:
        scores, features = [], []
        for i, d in enumerate(self.discriminators):
            if i:
                audio = self.pool(audio)
            s, f = d(audio)
            scores.append(s)
            features.append(f)
        return scores, features
