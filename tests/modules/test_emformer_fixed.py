"""The fixed-shape streaming form (the one exported to graphs) equals the ordinary step, and rows
at different points of their streams step together as they would alone."""

import pytest
import torch

from echostream_fairseq.modules.batching import split_state, stack_states
from echostream_fairseq.modules.emformer import Emformer

CONFIGS = [
    dict(chunk_length=4, left_context_length=8, right_context_length=2, max_memory_size=3),
    dict(chunk_length=8, left_context_length=32, right_context_length=0, max_memory_size=4),
    dict(chunk_length=5, left_context_length=0, right_context_length=3, max_memory_size=0),
    dict(chunk_length=3, left_context_length=7, right_context_length=0, max_memory_size=1, conv_kernel_size=5),
]


def _model(cfg):
    torch.manual_seed(0)
    return Emformer(32, 4, 64, 3, **cfg).eval()


def _chunks(model, x, T):
    S, R = model.chunk_length, model.right_context_length
    for start in range(0, T, S):
        s = min(S, T - start)
        yield x[:, start : start + s], (x[:, start + s : start + s + R] if R else None)


@pytest.mark.parametrize("cfg", CONFIGS, ids=["S4L8R2M3", "S8L32R0M4", "S5L0R3M0", "S3L7M1conv5"])
@pytest.mark.parametrize("T", [1, 13, 40])
def test_fixed_step_equals_step(cfg, T):
    model = _model(cfg)
    x = torch.randn(2, T + model.right_context_length, 32)
    ordinary, fixed = None, model.initial_fixed_state(2)
    with torch.no_grad():
        for chunk, rc in _chunks(model, x, T):
            a, ordinary = model.step(chunk, rc, ordinary)
            b, fixed = model.step_fixed(chunk, rc, fixed)
            assert b.shape == a.shape
            assert (a - b).abs().max().item() <= 2e-5
            assert fixed.num_memory.tolist() == [ordinary.num_memory] * 2
            assert fixed.num_left.tolist() == [ordinary.num_left] * 2
    slots = model.max_memory_size + model.left_context_length
    assert tuple(fixed.key_value.shape) == (2, 3, slots, 2, 4, 8)


def test_streams_at_different_points_step_as_one_batch():
    model = _model(CONFIGS[1])
    S = model.chunk_length
    streams = [torch.randn(1, n * S, 32) for n in (9, 2, 5)]
    states = [model.initial_fixed_state(1) for _ in streams]
    with torch.no_grad():
        for i, x in enumerate(streams):  # each stream a different number of chunks into its stream
            for c in range(x.size(1) // S - 1):
                _, states[i] = model.step_fixed(x[:, c * S : (c + 1) * S], None, states[i])
        last = [x[:, -S:] for x in streams]
        together, state = model.step_fixed(torch.cat(last), None, stack_states(states))
        for i, part in enumerate(split_state(state, [1, 1, 1])):
            alone, own = model.step_fixed(last[i], None, states[i])
            assert (together[i] - alone[0]).abs().max().item() <= 1e-5
            assert torch.allclose(part.key_value, own.key_value, atol=1e-5)
            assert part.num_left.tolist() == own.num_left.tolist()
