"""Our Emformer computes the same function as torchaudio's on the same weights."""

import pytest
import torch
import torchaudio

from echostream_fairseq.modules.emformer import Emformer, EmformerState, from_torchaudio

# (input_dim, heads, ffn, layers, chunk, left, right, memory, activation, tanh_on_mem)
CONFIGS = [
    (32, 4, 64, 3, 4, 8, 2, 3, "relu", False),
    (32, 2, 48, 2, 8, 32, 0, 4, "relu", False),
    (24, 4, 40, 2, 5, 0, 3, 0, "gelu", False),
    (16, 1, 32, 4, 3, 6, 1, 2, "silu", True),
    (32, 4, 64, 2, 6, 12, 2, 1, "relu", True),
    (48, 8, 96, 2, 7, 5, 4, 6, "relu", False),
]
TOL = 1e-5


def _pair(cfg):
    d, h, f, n, s, left, r, m, act, tanh = cfg
    ta = torchaudio.models.Emformer(
        d,
        h,
        f,
        n,
        s,
        left_context_length=left,
        right_context_length=r,
        max_memory_size=m,
        activation=act,
        tanh_on_mem=tanh,
    ).eval()
    return ta, from_torchaudio(ta).eval()


@pytest.mark.parametrize("cfg", CONFIGS, ids=[f"S{c[4]}L{c[5]}R{c[6]}M{c[7]}x{c[3]}h{c[1]}" for c in CONFIGS])
def test_forward_matches_torchaudio(cfg):
    ta, ours = _pair(cfg)
    d, r, s = cfg[0], cfg[6], cfg[4]
    for T in (s * 4, s * 3 + 1, 2 * s - 1, 1):
        x = torch.randn(3, T + r, d)
        lengths = torch.full((3,), T)
        with torch.no_grad():
            a, la = ta(x, lengths)
            b, lb = ours(x, lengths)
        assert a.shape == b.shape == (3, T, d)
        assert torch.equal(la, lb)
        assert (a - b).abs().max().item() <= TOL, T


@pytest.mark.parametrize("cfg", CONFIGS, ids=[f"S{c[4]}L{c[5]}R{c[6]}M{c[7]}x{c[3]}h{c[1]}" for c in CONFIGS])
def test_infer_matches_torchaudio_step_by_step(cfg):
    ta, ours = _pair(cfg)
    d, s, r = cfg[0], cfg[4], cfg[6]
    steps = 9
    x = torch.randn(2, steps * s + r, d)
    lengths = torch.full((2,), s + r)
    st_ta, st_ours = None, None
    with torch.no_grad():
        for i in range(steps):
            chunk = x[:, i * s : i * s + s + r]
            a, la, st_ta = ta.infer(chunk, lengths, st_ta)
            b, lb, st_ours = ours.infer(chunk, lengths, st_ours)
            assert a.shape == b.shape == (2, s, d)
            assert torch.equal(la, lb.to(la.dtype))
            assert (a - b).abs().max().item() <= TOL, f"step {i}"
    assert isinstance(st_ours, EmformerState)
    assert st_ours.frames == steps * s


def test_from_torchaudio_copies_configuration():
    ta, ours = _pair(CONFIGS[0])
    assert isinstance(ours, Emformer)
    assert (ours.chunk_length, ours.left_context_length, ours.right_context_length, ours.max_memory_size) == (
        4,
        8,
        2,
        3,
    )
    assert len(ours.layers) == 3 and ours.num_heads == 4
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ta.parameters())
