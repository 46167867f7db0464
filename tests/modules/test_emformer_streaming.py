"""Streaming chunk by chunk equals the full forward, including short tails and padded batches."""

import pytest
import torch

from echostream_fairseq.modules.emformer import Emformer

CONFIGS = [
    dict(chunk_length=4, left_context_length=8, right_context_length=2, max_memory_size=3),
    dict(chunk_length=8, left_context_length=32, right_context_length=0, max_memory_size=4),
    dict(chunk_length=5, left_context_length=0, right_context_length=3, max_memory_size=0),
    dict(chunk_length=3, left_context_length=7, right_context_length=1, max_memory_size=1),
]


def _model(cfg, layers=3):
    return Emformer(32, 4, 64, layers, **cfg).eval()


def _stream(model, x, T):
    """Stream row-batch ``x`` [B, T + R, D] through ``model`` chunk by chunk."""
    S, R = model.chunk_length, model.right_context_length
    state, outs, start = None, [], 0
    while start < T:
        s = min(S, T - start)
        rc = x[:, start + s : start + s + R] if R else None
        out, state = model.step(x[:, start : start + s], rc, state)
        outs.append(out)
        start += s
    return torch.cat(outs, dim=1), state


@pytest.mark.parametrize(
    "cfg",
    CONFIGS,
    ids=lambda c: "S{chunk_length}L{left_context_length}R{right_context_length}M{max_memory_size}".format(**c),
)
@pytest.mark.parametrize("T", [1, 7, 16, 23, 41])
def test_streaming_equals_forward(cfg, T):
    model = _model(cfg)
    x = torch.randn(2, T + cfg["right_context_length"], 32)
    with torch.no_grad():
        full, _ = model(x, torch.tensor([T, T]))
        streamed, state = _stream(model, x, T)
    assert streamed.shape == full.shape
    assert (streamed - full).abs().max().item() <= 1e-5
    assert state.frames == T
    assert state.finished == (T % cfg["chunk_length"] != 0)


@pytest.mark.parametrize("cfg", CONFIGS[:2], ids=["R2", "R0"])
def test_padded_batch_rows_equal_rows_alone(cfg):
    model = _model(cfg)
    R = cfg["right_context_length"]
    lengths = [19, 12, 5]
    T = max(lengths)
    rows = [torch.randn(1, n + R, 32) for n in lengths]
    batch = torch.zeros(3, T + R, 32)
    for i, r in enumerate(rows):
        batch[i, : r.size(1)] = r[0]
    with torch.no_grad():
        out, out_lengths = model(batch, torch.tensor(lengths))
        for i, (r, n) in enumerate(zip(rows, lengths)):
            alone, _ = model(r, torch.tensor([n]))
            assert (out[i, :n] - alone[0]).abs().max().item() <= 1e-5
            streamed, _ = _stream(model, r, n)
            assert (out[i, :n] - streamed[0]).abs().max().item() <= 1e-5
        assert torch.isfinite(out).all()
    assert out_lengths.tolist() == lengths


def test_state_is_bounded_and_steps_are_pure():
    cfg = CONFIGS[0]
    model = _model(cfg)
    S, R = 4, 2
    x = torch.randn(1, 60 * S + R, 32)
    state, sizes = None, []
    with torch.no_grad():
        for i in range(60):
            _, state = model.step(x[:, i * S : i * S + S], x[:, i * S + S : i * S + S + R], state)
            sizes.append(sum(t.numel() for t in state.key_value))
        # the cache stops growing once it holds max_memory_size memories and left_context_length frames
        assert len(set(sizes[5:])) == 1
        assert state.key_value[0].shape[1] == cfg["max_memory_size"] + cfg["left_context_length"]
        # a step returns a new state and leaves the old one usable: same input, same output
        seg, rc = x[:, :S], x[:, S : S + R]
        a, s1 = model.step(seg, rc, state)
        b, s2 = model.step(seg, rc, state)
    assert torch.equal(a, b)
    assert s1.frames == s2.frames == state.frames + S


def test_bf16_close_to_fp32():
    model = Emformer(64, 4, 128, 4, 8, left_context_length=16, max_memory_size=4).eval()
    low = Emformer(64, 4, 128, 4, 8, left_context_length=16, max_memory_size=4).eval()
    low.load_state_dict(model.state_dict())
    low = low.to(torch.bfloat16)
    x = torch.randn(1, 64, 64)
    with torch.inference_mode():
        ref, _ = _stream(model, x, 64)
        out, _ = _stream(low, x.to(torch.bfloat16), 64)
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel.item() < 0.02


def test_training_forward_has_gradients_and_dropout():
    model = Emformer(32, 4, 64, 2, 4, dropout=0.1, left_context_length=4, max_memory_size=2).train()
    x = torch.randn(2, 13, 32, requires_grad=True)
    out, _ = model(x, torch.tensor([13, 9]))
    out[0].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters())
    out2, _ = model(x, torch.tensor([13, 9]))
    assert not torch.allclose(out, out2)  # dropout is active in training
