"""The chunk Conformer baseline: chunk-causal, and its re-encoding stream equals the chunk-masked forward."""

import torch

from echostream_fairseq.modules.conformer import ChunkConformer, relative_positions


def test_chunk_mask_hides_future_chunks():
    model = ChunkConformer(32, 4, 64, 2, chunk_length=4, depthwise_conv_kernel_size=5).eval()
    x = torch.randn(1, 20, 32)
    y = x.clone()
    y[:, 12:] = torch.randn(1, 8, 32)  # change chunks 3 and 4
    with torch.no_grad():
        a, _ = model(x, torch.tensor([20]))
        b, _ = model(y, torch.tensor([20]))
    assert torch.equal(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_reencoding_stream_equals_forward_and_state_grows():
    model = ChunkConformer(32, 4, 64, 2, chunk_length=4, depthwise_conv_kernel_size=5).eval()
    x = torch.randn(1, 22, 32)
    with torch.no_grad():
        full, _ = model(x, torch.tensor([22]))
        state, outs = None, []
        for start in range(0, 22, 4):
            out, state = model.step(x[:, start : start + 4], None, state)
            outs.append(out)
    assert (torch.cat(outs, 1) - full).abs().max().item() <= 1e-5
    assert state.prefix.size(1) == 22  # the baseline keeps (and re-encodes) everything
    assert state.finished


def test_padded_rows_equal_rows_alone():
    model = ChunkConformer(32, 4, 64, 2, chunk_length=4, depthwise_conv_kernel_size=5).eval()
    a = torch.randn(1, 13, 32)
    batch = torch.zeros(2, 13, 32)
    batch[0] = a[0]
    batch[1, :6] = a[0, :6]
    with torch.no_grad():
        out, _ = model(batch, torch.tensor([13, 6]))
        alone, _ = model(a[:, :6], torch.tensor([6]))
    assert (out[1, :6] - alone[0]).abs().max().item() <= 1e-5


def test_relative_positions_are_centered():
    emb = relative_positions(3, 8)
    assert emb.shape == (5, 8)
    # the middle row is relative position 0: sin(0) = 0, cos(0) = 1
    assert torch.allclose(emb[2, 0::2], torch.zeros(4)) and torch.allclose(emb[2, 1::2], torch.ones(4))
