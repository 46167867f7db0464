"""Streaming input stages: chunked resampling and fbank equal their offline versions."""

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from echostream_fairseq.data.audio import fbank
from echostream_fairseq.streaming.features import FbankStream, ResampleStream, to_mono


def _chunks(total, rng, low, high):
    i = 0
    while i < total:
        n = int(rng.integers(low, high))
        yield i, min(total, i + n)
        i += n


@pytest.mark.parametrize("rate", [8000, 22050, 24000, 44100, 48000])
def test_resample_stream_equals_offline(rate):
    x = torch.randn(rate * 2 + 37) * 0.1
    rs = ResampleStream(rate)
    state, outs = rs.initial_state(), []
    for a, b in _chunks(x.numel(), np.random.default_rng(rate), 1, rate // 3):
        out, state = rs.step(x[a:b], state, finish=b == x.numel())
        outs.append(out)
    y, ref = torch.cat(outs), AF.resample(x, rate, 16000)
    assert y.shape == ref.shape
    assert (y - ref).abs().max() <= 1e-6
    # the carried input stays bounded: at most the kernel's reach plus one chunk
    assert state.buffer.numel() <= 2 * rs.reach + rate // 3


def test_resample_identity_and_bad_rate():
    rs = ResampleStream(16000)
    out, state = rs.step(torch.ones(5), rs.initial_state())
    assert torch.equal(out, torch.ones(5)) and state.emitted == 5
    with pytest.raises(ValueError, match="sample rates must be positive"):
        ResampleStream(0)


def test_fbank_stream_equals_offline_with_cmvn():
    x = torch.randn(16000 * 3 + 123) * 0.1
    mean, std = torch.randn(80), torch.rand(80) + 0.5
    fs = FbankStream((mean, std))
    state, outs = fs.initial_state(), []
    for a, b in _chunks(x.numel(), np.random.default_rng(0), 1, 9000):
        out, state = fs.step(x[a:b], state)
        outs.append(out)
    y = torch.cat(outs)
    ref = (fbank(x) - mean) / std
    assert y.shape == ref.shape == (299, 80)
    assert (y - ref).abs().max() <= 1e-5
    assert state.pending.numel() < 400  # only the overlap of the next window is carried


def test_fbank_streams_in_one_batch_equal_each_alone():
    fs = FbankStream((torch.randn(80), torch.rand(80) + 0.5))
    rng = np.random.default_rng(1)
    signals = [torch.randn(16000) * 0.1 for _ in range(3)]
    batch_states = alone_states = [fs.initial_state()] * 3
    batch_out, alone_out = [[] for _ in range(3)], [[] for _ in range(3)]
    for _ in range(6):
        # different lengths, so the streams have different numbers of frames (some none) per call
        chunks = [
            x[:0] if k == 2 and rng.random() < 0.5 else x[: int(rng.integers(1, 4000))] for k, x in enumerate(signals)
        ]
        signals = [x[c.numel() :] for x, c in zip(signals, chunks)]
        outs, batch_states = fs.step_batch(chunks, batch_states)
        alone = [fs.step(c, s) for c, s in zip(chunks, alone_states)]
        alone_states = [s for _, s in alone]
        for k in range(3):
            batch_out[k].append(outs[k])
            alone_out[k].append(alone[k][0])
            assert batch_states[k].frames == alone_states[k].frames
            assert torch.equal(batch_states[k].pending, alone_states[k].pending)
    for k in range(3):
        torch.testing.assert_close(torch.cat(batch_out[k]), torch.cat(alone_out[k]), rtol=0, atol=1e-5)
    assert sum(s.frames for s in batch_states) > 0


def test_to_mono_downmixes_and_replaces_non_finite():
    x, bad = to_mono([[0.5, -0.5], [1.0, 0.0], [float("nan"), 0.2]])
    assert torch.allclose(x, torch.tensor([0.0, 0.5, 0.0])) and bad == 1
    x, bad = to_mono([0.1, float("inf")])
    assert x.tolist() == [pytest.approx(0.1), 0.0] and bad == 1
    with pytest.raises(ValueError, match=r"audio chunk must be \[samples\] or \[samples, channels\]"):
        to_mono(np.zeros((2, 2, 2)))
