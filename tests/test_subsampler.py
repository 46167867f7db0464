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
