"""Causal 4x convolutional subsampler: 10 ms fbank frames in, 40 ms encoder frames out.

Two stride-2 1-D convolutions over time, each followed by a GLU, like the ``Conv1dSubsampler`` of
fairseq's speech-to-text models, but padded on the left only (``kernel_size - 1`` frames) so that an
output frame depends on no future input. An input of ``T`` frames gives ``ceil(ceil(T / 2) / 2)``
output frames.

``delay_frames`` pads the first convolution's input by that many more frames on the left, so that
each of its outputs ends that many input frames earlier (and ``T`` frames give
``floor((T + 1 + delay_frames) / 2)`` of them). A streaming chunk of ``c`` ms holds
``c / 10 - 2`` complete fbank frames (the 25 ms window); with one stride-2 convolution and no
delay its last 50 Hz frame needs the frame after them, so a backbone that steps on ``c / 20``
frames waits one chunk. One frame of delay (10 ms) removes that wait.

Streaming keeps, per convolution, the input frames that later outputs still need (at most its
left padding, ``kernel_size - 1`` plus any delay); chunked input then yields exactly the frames
of the whole utterance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Conv1dSubsampler", "SubsamplerState"]


@dataclass(frozen=True)
class SubsamplerState:
    """Per convolution, the input frames not yet consumed: ``[B, C_in, t]`` each (channels-first);
    at the start, its left padding."""

    pending: Tuple[Tensor, ...]


class Conv1dSubsampler(nn.Module):
    """Args:
    in_channels: input feature dimension (80 for fbank).
    mid_channels: channels between the two convolutions.
    out_channels: output dimension (the encoder's model dimension).
    kernel_sizes: one kernel size per stride-2 convolution.
    delay_frames: extra left padding of the first convolution, in input frames (see above).
    """

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int] = (5, 5),
        delay_frames: int = 0,
    ) -> None:
        super().__init__()
        if any(k < 2 for k in kernel_sizes):
            raise ValueError(f"kernel sizes must be >= 2, got {list(kernel_sizes)}")
        if delay_frames < 0:
            raise ValueError(f"--subsampler-delay-frames must be >= 0, got {delay_frames}")
        self.in_channels = in_channels
        self.kernel_sizes = tuple(kernel_sizes)
        # left padding per convolution: the causal kernel_size - 1, plus the delay on the first
        self.paddings = tuple(k - 1 + (delay_frames if i == 0 else 0) for i, k in enumerate(kernel_sizes))
        n = len(kernel_sizes)
        self.convs = nn.ModuleList(
            nn.Conv1d(
                in_channels if i == 0 else mid_channels // 2,
                mid_channels if i < n - 1 else out_channels * 2,
                k,
                stride=2,
            )
            for i, k in enumerate(kernel_sizes)
        )

    def output_lengths(self, lengths: Tensor) -> Tensor:
        out = lengths
        for k, pad in zip(self.kernel_sizes, self.paddings):
            out = torch.div(out + pad - k + 2, 2, rounding_mode="floor")
        return out

    def _check(self, features: Tensor) -> None:
        if features.dim() != 3 or features.size(-1) != self.in_channels:
            raise ValueError(f"features must have shape [batch, time, {self.in_channels}], got {list(features.shape)}")
        if not torch.isfinite(features).all():
            raise ValueError("features contain NaN or inf")

    def forward(self, features: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """``features`` ``[B, T, C]``, ``lengths`` ``[B]`` -> ``[B, T', D]``, ``[B]``."""
        self._check(features)
        x = features.transpose(1, 2)
        for conv, pad in zip(self.convs, self.paddings):
            x = F.glu(conv(F.pad(x, (pad, 0))), dim=1)
        return x.transpose(1, 2), self.output_lengths(lengths)

    def initial_state(self, batch_size: int, device=None, dtype=None) -> SubsamplerState:
        weight = self.convs[0].weight
        device = weight.device if device is None else device
        dtype = weight.dtype if dtype is None else dtype
        return SubsamplerState(
            tuple(
                torch.zeros(batch_size, conv.in_channels, pad, device=device, dtype=dtype)
                for conv, pad in zip(self.convs, self.paddings)
            )
        )

    def step(self, features: Tensor, state: SubsamplerState) -> Tuple[Tensor, SubsamplerState]:
        """New fbank frames ``[B, t, C]`` (t may be 0) -> the output frames they complete ``[B, t', D]``."""
        if features.size(1) > 0:
            self._check(features)
        x = features.transpose(1, 2)
        pending = []
        for conv, k, cache in zip(self.convs, self.kernel_sizes, state.pending):
            x = torch.cat([cache, x], dim=2)
            n = (x.size(2) - k) // 2 + 1 if x.size(2) >= k else 0
            pending.append(x[:, :, 2 * n :])
            if n == 0:
                x = x.new_zeros(x.size(0), conv.out_channels // 2, 0)
                continue
            x = F.glu(conv(x[:, :, : 2 * (n - 1) + k]), dim=1)
        return x.transpose(1, 2), SubsamplerState(tuple(pending))
