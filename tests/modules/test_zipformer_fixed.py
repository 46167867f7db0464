"""The Zipformer's fixed-shape streaming form (the one exported to graphs) equals its ordinary step,
a short last chunk included, and rows at different points of their streams step together as they
would alone."""

import pytest
import torch

from echostream_fairseq.modules.batching import split_state, stack_states
from echostream_fairseq.modules.zipformer import Zipformer

CONFIGS = [
    dict(chunk_length=4, future_frames=1, max_memory_size=0, left_context_length=6),
    dict(chunk_length=4, future_frames=0, max_memory_size=3, left_context_length=6),
    dict(chunk_length=8, future_frames=2, max_memory_size=2, left_context_length=0),
]


def _zipformer(cfg) -> Zipformer:
    torch.manual_seed(0)
    return Zipformer(
        input_dim=32,
        output_dim=24,
        stack_dims=(16, 24, 32, 24),
        stack_layers=(1, 1, 2, 1),
        stack_downsampling=(1, 2, 4, 2),
        stack_heads=(2,) * 4,
        stack_ffn_dims=(32,) * 4,
        stack_conv_kernels=(5, 3, 3, 5),
        query_head_dim=8,
        value_head_dim=6,
        dropout=0.0,
        **cfg,
    ).eval()


def _fixed_step(model, chunk, state):
    """A chunk, padded to a whole one, through ``step_fixed``; the output's real frames."""
    S_in, s = model.input_chunk_length, chunk.size(1)
    padded = torch.nn.functional.pad(chunk, (0, 0, 0, S_in - s))
    out, state = model.step_fixed(padded, torch.full((chunk.size(0),), s), state)
    return out[:, : -(-s // model.output_downsampling)], state


@pytest.mark.parametrize("cfg", CONFIGS, ids=["L6F1", "M3L6F0", "S8M2L0F2"])
@pytest.mark.parametrize("T", [3, 24, 61])
def test_fixed_step_equals_step(cfg, T):
    model = _zipformer(cfg)
    x = torch.randn(2, T, 32)
    ordinary, fixed = None, model.initial_fixed_state(2)
    S_in = model.input_chunk_length
    with torch.no_grad():
        for start in range(0, T, S_in):
            chunk = x[:, start : start + S_in]
            a, ordinary = model.step(chunk, None, ordinary)
            b, fixed = _fixed_step(model, chunk, fixed)
            assert b.shape == a.shape
            assert (a - b).abs().max().item() <= 2e-5
            assert fixed.num_memory.tolist() == [ordinary.num_memory] * 2
            assert fixed.num_left.tolist() == [list(ordinary.num_left)] * 2
    M = model.max_memory_size
    assert [tuple(t.shape[1:3]) for t in fixed.key_value] == [
        (len(stack.layers), M + model.left_context_frames(i)) for i, stack in enumerate(model.stacks)
    ]


def test_streams_at_different_points_step_as_one_batch():
    model = _zipformer(CONFIGS[1])
    S_in = model.input_chunk_length
    streams = [torch.randn(1, n * S_in, 32) for n in (7, 1, 3)]
    states = [model.initial_fixed_state(1) for _ in streams]
    with torch.no_grad():
        for i, x in enumerate(streams):  # each stream a different number of chunks into its stream
            for c in range(x.size(1) // S_in - 1):
                _, states[i] = _fixed_step(model, x[:, c * S_in : (c + 1) * S_in], states[i])
        last = [x[:, -S_in:] for x in streams]
        # the last stream's chunk is its stream's short last one: 5 real frames
        count = torch.tensor([S_in, S_in, 5])
        chunks = torch.cat(last)
        chunks[2, 5:] = 0
        together, state = model.step_fixed(chunks, count, stack_states(states))
        for i, part in enumerate(split_state(state, [1, 1, 1])):
            alone, own = _fixed_step(model, last[i][:, : int(count[i])], states[i])
            assert (together[i : i + 1, : alone.size(1)] - alone).abs().max().item() <= 2e-5
            for a, b in zip(part.key_value, own.key_value):
                assert (a - b).abs().max().item() <= 2e-5
            assert torch.equal(part.num_left, own.num_left)
