"""The Emformer's convolution module (--emformer-conv-kernel-size): streaming equals the forward,
padded rows equal rows alone, the state stays bounded and stacks across streams, bad settings."""

import argparse
import dataclasses

import pytest
import torch

from echostream_fairseq.models import echostream as arch
from echostream_fairseq.models.speech_encoder import EchoStreamSpeechEncoder
from echostream_fairseq.modules.batching import split_state, stack_states, state_layout
from echostream_fairseq.modules.convolution import CausalConvolutionModule
from echostream_fairseq.modules.emformer import Emformer


def _model(kernel=5, memory=4, layers=3):
    torch.manual_seed(0)
    return Emformer(32, 4, 64, layers, 4, left_context_length=8, max_memory_size=memory, conv_kernel_size=kernel).eval()


def _stream(model, x, T, state=None):
    outs, start = [], 0
    while start < T:
        s = min(model.chunk_length, T - start)
        out, state = model.step(x[:, start : start + s], None, state)
        outs.append(out)
        start += s
    return torch.cat(outs, dim=1), state


@pytest.mark.parametrize("kernel", [1, 3, 7])
def test_convolution_module_steps_equal_its_forward(kernel):
    torch.manual_seed(1)
    conv = CausalConvolutionModule(16, kernel, 0.0).eval()
    x = torch.randn(2, 11, 16)
    with torch.no_grad():
        full = conv(x, None)
        cache, outs = conv.initial_cache(2), []
        for piece in (x[:, :1], x[:, 1:5], x[:, 5:6], x[:, 6:]):  # pieces shorter than the kernel too
            out, cache = conv.step(piece, cache)
            outs.append(out)
    assert cache.shape == (2, kernel - 1, 16)
    assert (torch.cat(outs, dim=1) - full).abs().max().item() <= 1e-6


@pytest.mark.parametrize("memory", [0, 4])
@pytest.mark.parametrize("T", [3, 8, 21])
def test_streaming_equals_forward_with_convolution(memory, T):
    model = _model(memory=memory)
    x = torch.randn(2, T, 32)
    with torch.no_grad():
        full, _ = model(x, torch.tensor([T, T]))
        streamed, state = _stream(model, x, T)
        plain = Emformer(32, 4, 64, 3, 4, left_context_length=8, max_memory_size=memory).eval()
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".conv." not in k})
        without, _ = plain(x, torch.tensor([T, T]))
    assert (streamed - full).abs().max().item() <= 1e-5
    assert (full - without).abs().max().item() > 1e-2  # the module changes the output
    assert len(state.conv_cache) == 3 and state.conv_cache[0].shape == (2, 4, 32)


def test_padded_rows_equal_rows_alone_with_convolution():
    model = _model()
    lengths = [19, 12, 5]
    rows = [torch.randn(1, n, 32) for n in lengths]
    batch = torch.full((3, 19, 32), 7.0)  # padding that would show if it leaked
    for i, r in enumerate(rows):
        batch[i, : r.size(1)] = r[0]
    with torch.no_grad():
        out, _ = model(batch, torch.tensor(lengths))
        for i, (r, n) in enumerate(zip(rows, lengths)):
            streamed, _ = _stream(model, r, n)
            assert (out[i, :n] - streamed[0]).abs().max().item() <= 1e-5


def test_state_bounded_and_stacks_across_streams():
    model = _model()
    a, b = torch.randn(1, 40, 32), torch.randn(1, 40, 32)
    with torch.no_grad():
        _, sa = _stream(model, a[:, :32], 32)
        _, sb = _stream(model, b[:, :32], 32)
        assert sa.conv_cache[0].shape == (1, 4, 32)  # kernel - 1 frames, however long the stream
        assert state_layout(sa) == state_layout(sb)
        both, stacked = model.step(torch.cat([a[:, 32:36], b[:, 32:36]]), None, stack_states([sa, sb]))
        alone_a, na = model.step(a[:, 32:36], None, sa)
        alone_b, _ = model.step(b[:, 32:36], None, sb)
        assert (both - torch.cat([alone_a, alone_b])).abs().max().item() <= 1e-5
        first, _ = split_state(stacked, [1, 1], like=[sa, sb])
        assert (first.conv_cache[1] - na.conv_cache[1]).abs().max().item() <= 1e-6


def test_bad_settings_and_mismatched_state():
    with pytest.raises(ValueError, match="conv_kernel_size must be >= 0, got -1"):
        Emformer(32, 4, 64, 2, 4, conv_kernel_size=-1)
    with pytest.raises(ValueError, match=r"needs right_context_length 0, got 2"):
        Emformer(32, 4, 64, 2, 4, right_context_length=2, conv_kernel_size=5)
    plain = Emformer(32, 4, 64, 3, 4, left_context_length=8, max_memory_size=4).eval()
    _, state = plain.step(torch.randn(1, 4, 32), None)
    with pytest.raises(ValueError, match="convolution kernel"):
        _model().step(torch.randn(1, 4, 32), None, state)
    conv = _model()
    _, state = conv.step(torch.randn(1, 4, 32), None)
    cut = dataclasses.replace(state, conv_cache=state.conv_cache[:2])
    with pytest.raises(
        ValueError, match=r"state holds 2 convolution caches of shapes .*this Emformer needs 3 of shape \[1, 4, 32\]"
    ):
        conv.step(torch.randn(1, 4, 32), None, cut)


def test_flag_builds_the_module_and_defaults_to_none():
    def encoder(**kw):
        args = argparse.Namespace(input_feat_per_channel=80, input_channels=1, **kw)
        arch.emformer_tiny_architecture(args)
        return args, EchoStreamSpeechEncoder(args)

    args, plain = encoder()
    assert args.emformer_conv_kernel_size == 0
    assert not any(".conv." in name for name, _ in plain.named_parameters())
    args, conv = encoder(emformer_conv_kernel_size=15)
    assert all(layer.conv.kernel_size == 15 for layer in conv.backbone.layers)
    extra = sum(p.numel() for p in conv.parameters()) - sum(p.numel() for p in plain.parameters())
    # per layer: LayerNorm, D -> 2D, depthwise K, LayerNorm, D -> D at D = 144
    d, k = 144, 15
    assert extra == 6 * (2 * d + (d * 2 * d + 2 * d) + (d * k + d) + 2 * d + (d * d + d))


def test_conv_tiny_preset_sets_the_kernel_and_a_flag_overrides_it():
    preset = argparse.Namespace(input_feat_per_channel=80, input_channels=1)
    arch.emformer_conv_tiny_architecture(preset)
    assert preset.emformer_conv_kernel_size == 15 and preset.encoder_type == "emformer"
    assert preset.encoder_layers == 6 and preset.encoder_embed_dim == 144  # the tiny sizes
    other = argparse.Namespace(input_feat_per_channel=80, input_channels=1, emformer_conv_kernel_size=7)
    arch.emformer_conv_tiny_architecture(other)
    assert other.emformer_conv_kernel_size == 7
