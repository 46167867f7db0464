"""Streaming input: raw audio chunks -> 16 kHz mono samples -> normalised fbank frames.

Both stages carry only what the next chunk needs, so their cost per chunk does not depend on how
long the stream has run, and both equal their offline counterparts (to float rounding):

* :class:`ResampleStream` equals ``torchaudio.functional.resample`` of the whole signal: it keeps
  the input samples that the windowed-sinc kernel of not-yet-emitted outputs still reaches, and
  holds back the outputs whose kernel reaches past the end of what has arrived.
* :class:`FbankStream` equals :func:`echostream_fairseq.data.audio.fbank` of the whole signal
  followed by global CMVN: kaldi frames are independent of each other (no dither, per-frame DC
  removal and pre-emphasis), so it keeps the samples from the start of the next frame (the
  25 ms window overlaps the 10 ms shift) and computes only complete new frames. Many streams'
  new frames go through the filterbank as one batch (:meth:`FbankStream.step_batch`).

:func:`to_mono` turns whatever a SimulEval segment holds (a list of samples, or of per-channel
lists) into one float channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torchaudio.functional as AF
from torch import Tensor

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.data.audio import log_mel_filterbank

__all__ = [
    "to_mono",
    "ResampleState",
    "ResampleStream",
    "FbankState",
    "FbankStream",
    "load_global_cmvn",
]

# torchaudio's default sinc interpolation settings (what ``AF.resample`` uses)
_LOWPASS_FILTER_WIDTH = 6
_ROLLOFF = 0.99


def to_mono(samples: Union[Sequence, np.ndarray, Tensor]) -> Tuple[Tensor, int]:
    """Samples of one chunk -> ``([N] float32 mono, number of non-finite samples replaced by 0)``.

    Accepts ``[N]`` or ``[N, channels]`` (what ``soundfile.read`` gives for multichannel files,
    and so what SimulEval sends); channels are averaged. Unlike the offline recognisers' check
    (:func:`echostream_fairseq.common.audio.mono_float32`, which refuses several channels and
    non-finite samples), a bad sample here becomes silence and is counted: a live stream goes on.
    """
    x = torch.as_tensor(np.asarray(samples, dtype=np.float32))
    if x.dim() == 2:
        x = x.mean(dim=1)
    elif x.dim() != 1:
        raise ValueError(f"audio chunk must be [samples] or [samples, channels], got shape {list(x.shape)}")
    bad = ~torch.isfinite(x)
    n_bad = int(bad.sum())
    if n_bad:
        x = x.masked_fill(bad, 0.0)
    return x, n_bad


@dataclass(frozen=True)
class ResampleState:
    """Attributes:
    buffer: ``[n]`` input samples still needed, the first at input index ``buffer_start``.
    buffer_start: input index of ``buffer[0]`` (a multiple of the reduced input rate).
    emitted: output samples returned so far.
    """

    buffer: Tensor
    buffer_start: int = 0
    emitted: int = 0


class ResampleStream:
    """Chunk-by-chunk resampling from ``orig_freq`` to ``new_freq`` (identity when equal).

    Output sample ``j`` interpolates input samples within ``width`` of ``j * orig / new`` (rates
    reduced by their gcd). A chunk emits the outputs whose whole window has arrived; ``finish``
    emits the rest with the zero padding an offline call uses at the end.
    """

    def __init__(self, orig_freq: int, new_freq: int = SAMPLE_RATE) -> None:
        if orig_freq <= 0 or new_freq <= 0:
            raise ValueError(f"sample rates must be positive, got {orig_freq} -> {new_freq}")
        self.orig_freq, self.new_freq = int(orig_freq), int(new_freq)
        g = math.gcd(self.orig_freq, self.new_freq)
        self.orig, self.new = self.orig_freq // g, self.new_freq // g
        base = min(self.orig, self.new) * _ROLLOFF
        # input samples on each side of an output's centre that its kernel may touch (torchaudio's
        # kernel width, plus one period of the reduced input rate for the kernel phase)
        self.reach = math.ceil(_LOWPASS_FILTER_WIDTH * self.orig / base) + self.orig

    def initial_state(self) -> ResampleState:
        return ResampleState(torch.zeros(0))

    def _resample(self, x: Tensor) -> Tensor:
        return AF.resample(x, self.orig_freq, self.new_freq)

    def step(self, samples: Tensor, state: ResampleState, finish: bool = False) -> Tuple[Tensor, ResampleState]:
        """``samples`` ``[N]`` at ``orig_freq`` -> new output samples ``[M]`` at ``new_freq``."""
        if self.orig == self.new:
            return samples, ResampleState(state.buffer, state.buffer_start, state.emitted + samples.numel())
        buffer = torch.cat([state.buffer, samples])
        total_in = state.buffer_start + buffer.numel()
        if finish:
            # what the offline call returns for the whole signal: ceil(new * n / orig) samples
            ready = -(-self.new * total_in // self.orig)
        else:
            # outputs whose kernel ends inside what has arrived
            ready = max(0, ((total_in - self.reach) * self.new) // self.orig)
        if ready <= state.emitted or buffer.numel() == 0:
            return buffer.new_zeros(0), ResampleState(buffer, state.buffer_start, state.emitted)
        # the buffer starts at a multiple of the reduced input rate, so its outputs are the
        # offline outputs from index buffer_start * new / orig on; the zero padding the resampler
        # adds on the left only reaches outputs we already emitted (or the true start)
        y = self._resample(buffer)
        first = state.buffer_start * self.new // self.orig
        out = y[state.emitted - first : ready - first]
        if finish:
            out = torch.cat([out, out.new_zeros(ready - state.emitted - out.numel())])
        # keep the input from a period boundary at least ``reach`` before the next output's centre
        centre = ready * self.orig // self.new
        keep_from = max(state.buffer_start, ((centre - self.reach) // self.orig) * self.orig)
        buffer = buffer[keep_from - state.buffer_start :]
        return out, ResampleState(buffer, keep_from, ready)


@dataclass(frozen=True)
class FbankState:
    """Attributes:
    pending: ``[n]`` samples from the start of the next fbank frame (``n`` < one window
        plus the samples that arrived since).
    frames: fbank frames computed so far.
    """

    pending: Tensor
    frames: int = 0


def load_global_cmvn(path) -> Tuple[Tensor, Tensor]:
    """``(mean [C], std [C])`` from an ``echostream-prep`` / fairseq ``gcmvn.npz``."""
    stats = np.load(path)
    mean, std = stats["mean"], stats["std"]
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)


class FbankStream:
    """16 kHz samples -> 80-dim kaldi fbank frames, globally normalised, chunk by chunk.

    Args:
        cmvn: ``(mean, std)`` of the training features (``None``: no normalisation).
        sample_rate: rate of the samples given to :meth:`step`.
        num_mel_bins: fbank size.
    """

    def __init__(
        self, cmvn: Optional[Tuple[Tensor, Tensor]] = None, sample_rate: int = SAMPLE_RATE, num_mel_bins: int = 80
    ) -> None:
        self.sample_rate, self.num_mel_bins = sample_rate, num_mel_bins
        self.filterbank = log_mel_filterbank(sample_rate, num_mel_bins)
        self.window, self.shift = self.filterbank.window_length, self.filterbank.shift
        self.cmvn = cmvn

    def initial_state(self) -> FbankState:
        return FbankState(torch.zeros(0))

    def normalise(self, features: Tensor) -> Tensor:
        """fairseq's ``global_cmvn`` transform: ``(x - mean) / std``."""
        if self.cmvn is None:
            return features
        mean, std = self.cmvn
        return (features - mean) / std

    def step(self, samples: Tensor, state: FbankState) -> Tuple[Tensor, FbankState]:
        """``samples`` ``[N]`` float in [-1, 1] -> ``[t, num_mel_bins]`` new normalised frames."""
        (features,), (state,) = self.step_batch([samples], [state])
        return features, state

    def step_batch(
        self, samples: Sequence[Tensor], states: Sequence[FbankState]
    ) -> Tuple[List[Tensor], List[FbankState]]:
        """:meth:`step` for many streams: their new frames go through the filterbank as one batch."""
        pendings, counts, new_states = [], [], []
        for chunk, state in zip(samples, states):
            pending = torch.cat([state.pending, chunk.float()])
            new = 1 + (pending.numel() - self.window) // self.shift if pending.numel() >= self.window else 0
            pendings.append(pending)
            counts.append(new)
            new_states.append(FbankState(pending[new * self.shift :], state.frames + new))
        frames = [
            self.filterbank.frames(p[: (n - 1) * self.shift + self.window]) for p, n in zip(pendings, counts) if n
        ]
        features = self.filterbank(torch.cat(frames) if len(frames) > 1 else frames[0]) if frames else None
        out = (
            list(self.normalise(features).split(counts))
            if features is not None
            else [torch.zeros(0, self.num_mel_bins) for _ in counts]
        )
        return out, new_states
