"""The shared audio constants and the offline mono check / resampler."""

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from echostream_fairseq.common.audio import (
    ENCODER_FRAME_MS,
    ENCODER_FRAME_SAMPLES,
    SAMPLE_RATE,
    mono_float32,
    resample,
)


def test_constants():
    assert SAMPLE_RATE == 16000 and ENCODER_FRAME_MS == 40 and ENCODER_FRAME_SAMPLES == 640


def test_mono_float32_accepts_one_channel_in_any_layout():
    x = np.linspace(-1, 1, 8)
    for waveform in (x, x[None, :], x[:, None], torch.from_numpy(x), x[::-1]):
        out = mono_float32(waveform)
        assert out.dtype == torch.float32 and out.shape == (8,)
    assert torch.equal(mono_float32(x[::-1]), torch.from_numpy(x[::-1].astype(np.float32)))


def test_mono_float32_refuses():
    with pytest.raises(TypeError, match="float"):
        mono_float32(np.zeros(4, dtype=np.int16))
    with pytest.raises(TypeError, match="float"):
        mono_float32(torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor or numpy.ndarray"):
        mono_float32([0.0, 0.1])
    with pytest.raises(ValueError, match="mono"):
        mono_float32(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        mono_float32(torch.zeros(1, 0))


def test_resample_is_torchaudio_and_the_identity_at_the_same_rate():
    x = torch.randn(2205, generator=torch.Generator().manual_seed(0))
    assert resample(x, 16000, 16000) is x
    assert torch.equal(resample(x, 22050, 16000), AF.resample(x, 22050, 16000))
