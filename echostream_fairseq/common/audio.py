"""The audio format every part of the package assumes, and the one check of a waveform argument.

* :data:`SAMPLE_RATE`: 16 kHz, the rate of every waveform the model, prep, the vocoders and the
  recognisers exchange (other rates are resampled on the way in).
* :data:`ENCODER_FRAME_MS` / :data:`ENCODER_FRAME_SAMPLES`: one speech-encoder output frame,
  40 ms: the 10 ms fbank shift times the causal subsampler's 4x (Zipformer reaches the same rate).
  Segment sizes, latencies and benchmark positions are counted in these frames.
* :func:`mono_float32`: what the offline recognisers accept as one utterance (float samples, one
  channel, at least one sample), as a ``[num_samples]`` float32 CPU tensor.
* :func:`resample`: the offline resampler (torchaudio's windowed sinc with its defaults), the
  one that file reading, the recognisers and speech synthesis use.

Why :func:`echostream_fairseq.streaming.features.to_mono` is not :func:`mono_float32`: a
stream chunk may hold several channels (averaged) and non-finite samples (replaced by silence
and counted), because a live stream must go on; an offline recogniser refuses both, so that a
caller's mistake does not pass unnoticed into a score.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
import torchaudio.functional as AF
from torch import Tensor

__all__ = [
    "SAMPLE_RATE",
    "ENCODER_FRAME_MS",
    "ENCODER_FRAME_SAMPLES",
    "Waveform",
    "mono_float32",
    "resample",
]

SAMPLE_RATE = 16000
# 10 ms fbank shift x 4 (the causal subsampler); the Zipformer's own output rate is the same
ENCODER_FRAME_MS = 40
ENCODER_FRAME_SAMPLES = SAMPLE_RATE * ENCODER_FRAME_MS // 1000  # 640

Waveform = Union[Tensor, np.ndarray]


def mono_float32(waveform: Waveform) -> Tensor:
    """``waveform`` as a ``[num_samples]`` float32 CPU tensor, checked.

    Args:
        waveform: float samples, ``[num_samples]``, ``[1, num_samples]`` or ``[num_samples, 1]``,
            as a tensor (any device) or a numpy array.

    Raises:
        TypeError: neither a tensor nor an array, or not float samples.
        ValueError: more than one channel, or no samples.
    """
    if isinstance(waveform, Tensor):
        if not waveform.is_floating_point():
            raise TypeError(f"waveform must hold float samples in [-1, 1], got a {waveform.dtype} tensor")
        samples = waveform.detach().to("cpu", torch.float32)
    elif isinstance(waveform, np.ndarray):
        if not np.issubdtype(waveform.dtype, np.floating):
            raise TypeError(f"waveform must hold float samples in [-1, 1], got a {waveform.dtype} array")
        # a copy: torch cannot view negatively strided or read-only arrays
        samples = torch.from_numpy(np.array(waveform, dtype=np.float32))
    else:
        raise TypeError(f"waveform must be a torch.Tensor or numpy.ndarray, got {type(waveform).__name__}")
    if samples.dim() == 2 and 1 in samples.shape:
        samples = samples.reshape(-1)
    if samples.dim() != 1:
        raise ValueError(f"waveform must be mono [num_samples], got shape {list(samples.shape)}")
    if samples.numel() == 0:
        raise ValueError("waveform is empty")
    return samples


def resample(samples: Tensor, sample_rate: int, target_rate: int) -> Tensor:
    """``samples`` (``[..., num_samples]``) from ``sample_rate`` to ``target_rate`` Hz; themselves if equal.

    torchaudio's windowed-sinc resampler with its default settings, the one
    :class:`~echostream_fairseq.streaming.features.ResampleStream` reproduces chunk by chunk.
    """
    if sample_rate == target_rate:
        return samples
    return AF.resample(samples, int(sample_rate), int(target_rate))
