"""The causal subsampler: 4x fewer frames, no look-ahead, chunked input gives the whole-utterance frames."""

import pytest
import torch

from echostream_fairseq.modules.subsampler import Conv1dSubsampler


def _chunks(T, sizes):
    start, i = 0, 0
    while start < T:
        n = sizes[i % len(sizes)]
        yield start, min(T, start + n)
        start += n
        i += 1


@pytest.mark.parametrize("kernels", [(5, 5), (3, 3), (3, 5, 3)])
@pytest.mark.parametrize("T", [1, 2, 7, 32, 101])
def test_chunked_equals_whole(kernels, T):
    sub = Conv1dSubsampler(80, 64, 32, kernels).eval()
    x = torch.randn(2, T, 80)
    with torch.no_grad():
        whole, lengths = sub(x, torch.tensor([T, T]))
        state, outs = sub.initial_state(2), []
        for a, b in _chunks(T, [7, 1, 0, 32, 3]):
            out, state = sub.step(x[:, a:b], state)
            outs.append(out)
    streamed = torch.cat(outs, dim=1)
    expected = T
    for _ in kernels:  # each stride-2 convolution halves the frame count, rounding up
        expected = -(-expected // 2)
    assert whole.size(1) == expected
    assert lengths.tolist() == [whole.size(1)] * 2
    assert streamed.shape == whole.shape
    assert (streamed - whole).abs().max().item() <= 1e-5
    # the cache never holds more than kernel_size - 1 frames per convolution
    assert all(p.size(2) <= k - 1 for p, k in zip(state.pending, kernels))


def test_output_lengths_and_causality():
    sub = Conv1dSubsampler(80, 64, 32).eval()
    assert sub.output_lengths(torch.tensor([1, 2, 3, 4, 5, 8, 9, 32, 33])).tolist() == [1, 1, 1, 1, 2, 2, 3, 8, 9]
    x = torch.randn(1, 40, 80)
    y = x.clone()
    y[:, 20:] = torch.randn(1, 20, 80)  # change the future from fbank frame 20 on
    with torch.no_grad():
        a, _ = sub(x, torch.tensor([40]))
        b, _ = sub(y, torch.tensor([40]))
    # output frame j depends on input frames up to 4j + 3 only, so frames 0..4 are untouched
    assert torch.equal(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


@pytest.mark.parametrize("kernels", [(5,), (5, 5)])
@pytest.mark.parametrize("T", [1, 2, 7, 30, 101])
def test_a_delayed_subsampler_streams_equal_to_whole(kernels, T):
    sub = Conv1dSubsampler(80, 64, 32, kernels, delay_frames=1).eval()
    x = torch.randn(1, T, 80)
    with torch.no_grad():
        whole, lengths = sub(x, torch.tensor([T]))
        state, outs = sub.initial_state(1), []
        for a, b in _chunks(T, [7, 1, 0, 32, 3]):
            out, state = sub.step(x[:, a:b], state)
            outs.append(out)
    expected = T // 2 + 1  # floor((T + 1 + 1) / 2) from the first convolution
    for _ in kernels[1:]:
        expected = -(-expected // 2)
    assert whole.size(1) == lengths.item() == expected
    assert (torch.cat(outs, dim=1) - whole).abs().max().item() <= 1e-5


def test_one_frame_of_delay_makes_each_output_end_one_input_earlier():
    # one stride-2 convolution (the Zipformer's): output j reads input frames up to 2j without
    # delay, up to 2j - 1 with one frame of it
    for delay, last_needed in [(0, lambda j: 2 * j), (1, lambda j: 2 * j - 1)]:
        sub = Conv1dSubsampler(80, 64, 32, (5,), delay_frames=delay).eval()
        x = torch.randn(1, 40, 80)
        with torch.no_grad():
            a, _ = sub(x, torch.tensor([40]))
            for j in (3, 10, 15):
                y = x.clone()
                y[:, last_needed(j) + 1 :] = torch.randn(1, 40 - last_needed(j) - 1, 80)
                b, _ = sub(y, torch.tensor([40]))
                assert torch.equal(a[:, j], b[:, j])
                y[:, last_needed(j)] += 1.0
                b, _ = sub(y, torch.tensor([40]))
                assert not torch.allclose(a[:, j], b[:, j])


def test_a_negative_delay_is_refused():
    with pytest.raises(ValueError, match="--subsampler-delay-frames must be >= 0, got -1"):
        Conv1dSubsampler(80, 64, 32, (5,), delay_frames=-1)
