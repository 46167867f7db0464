"""The ST CTC head's fixed-shape step (the exported form) equals its ordinary step."""

import pytest
import torch

from echostream_fairseq.models.ctc_heads import TransformerCTCHead


@pytest.mark.parametrize("sizes", [[8, 8, 8, 8, 8, 3], [1, 5, 2, 9, 4], [20, 3, 17]])  # 20, 17: over the window
def test_fixed_step_equals_step(sizes):
    torch.manual_seed(0)
    head = TransformerCTCHead(32, 11, num_layers=2, num_heads=4, ffn_dim=64, left_context=12).eval()
    caches, fixed = None, head.initial_fixed_state(2)
    with torch.no_grad():
        for t in sizes:
            x = torch.randn(2, t, 32)
            a, caches = head.step(x, caches)
            b, fixed = head.step_fixed(x, fixed)
            assert (a - b).abs().max().item() <= 1e-5
            held = caches[0].self_key.size(2)
            assert fixed.count.tolist() == [held, held]
            assert torch.allclose(fixed.key[:, 0, :, 12 - held :], caches[0].self_key, atol=1e-6)
    assert tuple(fixed.key.shape) == (2, 2, 4, 12, 8)


def test_unbounded_window_has_no_fixed_state():
    head = TransformerCTCHead(32, 11, num_layers=2, num_heads=4, ffn_dim=64, left_context=0)
    with pytest.raises(ValueError, match="--st-ctc-left-context 0"):
        head.initial_fixed_state(1)
