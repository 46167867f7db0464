"""PackedLinear equals nn.Linear on every path this CPU offers, re-packs when the weight changes, and
leaves training to F.linear."""

import pytest
import torch
import torch.nn.functional as F

from echostream_fairseq.common.cpu import cpu_capabilities
from echostream_fairseq.modules.packed_linear import (
    PackedLinear,
    linear_backend,
    linear_path,
    linear_paths,
    rows_class,
    set_linear_backend,
)


@pytest.fixture
def backend():
    """Set the linear backend for one test and restore it after."""
    before = linear_backend()
    yield set_linear_backend
    set_linear_backend(before)


def test_the_paths_follow_the_cpu():
    """bf16 is packed only where oneDNN has bf16 kernels (elsewhere packing it raises); fp32 always can be."""
    onednn = torch.backends.mkldnn.is_available()
    assert linear_paths(torch.float32) == (("aten", "packed") if onednn else ("aten",))
    bf16 = ("aten", "packed") if onednn and cpu_capabilities().onednn_bf16 else ("aten",)
    assert linear_paths(torch.bfloat16) == bf16
    assert linear_paths(torch.float16) == ("aten",)


@pytest.mark.parametrize("name", ["onednn", "aten", "auto"])
def test_matches_linear_fp32_and_bf16(backend, name):
    backend(name)
    lin = PackedLinear(64, 96, activation="relu").eval()
    x = torch.randn(2, 11, 64)
    ref = F.relu(F.linear(x, lin.weight, lin.bias))
    r = torch.randn(2, 11, 96)
    with torch.inference_mode():
        assert (lin(x) - ref).abs().max().item() <= 1e-5
        plain = PackedLinear(64, 96).eval()
        assert (plain.forward_add(x, r) - (r + F.linear(x, plain.weight, plain.bias))).abs().max().item() <= 1e-5
        low = PackedLinear(64, 96, activation="relu").eval()
        low.load_state_dict(lin.state_dict())
        low = low.to(torch.bfloat16)
        y = low(x.bfloat16())
        assert y.dtype == torch.bfloat16
        assert ((y.float() - ref).norm() / ref.norm()).item() < 0.01
    fp32_path, bf16_path = linear_path(torch.float32, 96, 64, 22), linear_path(torch.bfloat16, 96, 64, 22)
    expected = {"onednn": ("packed", "packed" if cpu_capabilities().onednn_bf16 else "aten"), "aten": ("aten", "aten")}
    if name in expected:
        assert (fp32_path, bf16_path) == expected[name]
    else:  # auto keeps one of the paths this CPU offers
        assert fp32_path in linear_paths(torch.float32) and bf16_path in linear_paths(torch.bfloat16)


def test_repacks_after_in_place_update_and_fuses():
    lin = PackedLinear(16, 8, activation="relu").eval()
    x = torch.randn(5, 16)
    with torch.no_grad():
        first = lin(x)
        lin.weight.mul_(-1.0)
        second = lin(x)
        assert torch.allclose(second, F.relu(F.linear(x, lin.weight, lin.bias)), atol=1e-6)
        assert not torch.allclose(first, second)
        plain = PackedLinear(16, 8).eval()
        r = torch.randn(5, 8)
        assert torch.allclose(plain.forward_add(x, r), r + F.linear(x, plain.weight, plain.bias), atol=1e-6)


def test_training_uses_autograd():
    lin = PackedLinear(16, 8, activation="relu")
    x = torch.randn(4, 16)
    lin(x).sum().backward()
    assert lin.weight.grad is not None
    assert lin._packed is None


def test_validation_after_optimiser_steps_sees_the_new_weights():
    """fairseq's Adam writes through ``weight.data``, which the version counter does not see."""
    from fairseq.optim.adam import FairseqAdam

    torch.manual_seed(0)
    model = torch.nn.Sequential(PackedLinear(16, 8))
    x = torch.randn(5, 16)
    optimizer = FairseqAdam(
        type(
            "Cfg",
            (),
            {
                "lr": [0.1],
                "adam_betas": "(0.9, 0.98)",
                "adam_eps": 1e-8,
                "weight_decay": 0.0,
                "use_old_adam": False,
                "fp16_adam_stats": False,
                "tpu": False,
            },
        )(),
        list(model.parameters()),
    )
    for _ in range(3):
        model.eval()
        with torch.no_grad():
            validated = model(x)
        assert torch.allclose(validated, F.linear(x, model[0].weight, model[0].bias), atol=1e-6)
        model.train()
        model(x).pow(2).sum().backward()
        before = model[0].weight.detach().clone()
        optimizer.step()
        optimizer.zero_grad()
        assert not torch.allclose(before, model[0].weight)


def test_backends_choose_the_path(backend):
    x = torch.randn(3, 16)
    backend("aten")
    lin = PackedLinear(16, 8).eval()
    with torch.inference_mode():
        plain = lin(x)
    assert linear_path(torch.float32, 8, 16, 3) == "aten"
    backend("auto")
    with torch.inference_mode():
        auto = lin(x)
    # auto timed the paths once for this dtype, shape and row count, and remembers the fastest
    chosen = linear_path(torch.float32, 8, 16, 3)
    assert chosen in ("aten", "packed") and linear_path(torch.float32, 8, 16, 2) == chosen
    assert [rows_class(n) for n in (1, 2, 3, 4, 7, 8, 15, 16, 500)] == [1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert torch.allclose(auto, plain, atol=1e-5)
    with pytest.raises(ValueError, match="unknown linear backend 'mkl'; use one of auto, onednn, aten"):
        backend("mkl")


def test_compiled_takes_the_compilers_kernels(backend):
    """torch.compile traces F.linear even where the packed path is forced (inductor cannot lower a
    weight packed inside the graph): one whole graph, no oneDNN op in it, equal to the eager product."""
    from echostream_bench.common import compile_step

    backend("onednn")
    lin = PackedLinear(32, 16, activation="relu").eval()
    x = torch.randn(6, 32)
    traced = []

    def record(graph, inputs):
        traced.extend(str(node.target) for node in graph.graph.nodes if node.op == "call_function")
        return graph.forward

    with torch.inference_mode():
        eager = lin(x)
        assert linear_path(torch.float32, 16, 32, 6) == ("packed" if torch.backends.mkldnn.is_available() else "aten")
        recorded = torch.compile(lin, backend=record, fullgraph=True)(x)
        compiled = compile_step(lin)(x)
    assert traced and not [t for t in traced if "mkldnn" in t] and any("linear" in t for t in traced)
    assert torch.allclose(recorded, eager, atol=1e-5) and torch.allclose(compiled, eager, atol=1e-5)
