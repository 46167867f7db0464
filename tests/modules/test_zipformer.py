"""The streaming Zipformer: chunk-by-chunk streaming equals the chunk-masked forward, the state stays
bounded over many chunks, and bad input is refused with an error that names it."""

import argparse
import math

import pytest
import torch

from echostream_fairseq.models import echostream as arch
from echostream_fairseq.models.speech_encoder import EchoStreamSpeechEncoder
from echostream_fairseq.modules.emformer import Emformer
from echostream_fairseq.modules.zipformer import BiasNorm, Zipformer, ZipformerState, swoosh_l, swoosh_r


def _zipformer(chunk_length=4, future_frames=1, max_memory_size=0, left_context_length=6, **kw):
    torch.manual_seed(0)
    kw.setdefault("stack_downsampling", (1, 2, 4, 8, 4, 2))
    return Zipformer(
        input_dim=32,
        output_dim=24,
        stack_dims=(16, 24, 32, 40, 32, 24),
        stack_layers=(1, 1, 1, 2, 1, 1),
        stack_heads=(2,) * 6,
        stack_ffn_dims=(32,) * 6,
        stack_conv_kernels=(5, 5, 3, 3, 3, 5),
        chunk_length=chunk_length,
        query_head_dim=8,
        value_head_dim=6,
        left_context_length=left_context_length,
        future_frames=future_frames,
        max_memory_size=max_memory_size,
        dropout=0.0,
        **kw,
    ).eval()


def _stream(model, x, state=None):
    """Stream ``x`` ``[B, T, D]`` through ``model.step`` chunk by chunk; returns output and state."""
    outs = []
    for i in range(0, x.size(1), model.input_chunk_length):
        out, state = model.step(x[:, i : i + model.input_chunk_length], None, state)
        outs.append(out)
    return torch.cat(outs, dim=1), state


def test_swoosh_and_biasnorm_values():
    x = torch.tensor([-2.0, 0.0, 1.0, 5.0])
    expect_r = torch.log1p(torch.exp(x - 1)) - 0.08 * x - 0.313261687
    expect_l = torch.log1p(torch.exp(x - 4)) - 0.08 * x - 0.035
    assert torch.allclose(swoosh_r(x), expect_r, atol=1e-6) and abs(float(swoosh_r(torch.zeros(1)))) < 1e-6
    assert torch.allclose(swoosh_l(x), expect_l, atol=1e-6)
    norm = BiasNorm(4)
    with torch.no_grad():
        norm.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        norm.log_scale.fill_(math.log(2.0))
    y = torch.tensor([[3.0, 2.0, 2.0, 2.0]])
    # rms of (y - bias) = 2, so the output is y / 2 * 2 = y
    assert torch.allclose(norm(y), y, atol=1e-6)


@pytest.mark.parametrize(
    "chunk_length,future_frames,max_memory_size",
    [(4, 0, 0), (4, 1, 0), (8, 1, 0), (12, 0, 2), (8, 1, 3), (16, 2, 1)],
)
def test_streaming_equals_chunk_masked_forward(chunk_length, future_frames, max_memory_size):
    model = _zipformer(chunk_length, future_frames, max_memory_size)
    x = torch.randn(1, 101, 32)  # 101 is no multiple of the chunk: the last chunk is short and padded
    with torch.no_grad():
        full, lengths = model(x, torch.tensor([101]))
        streamed, state = _stream(model, x)
    assert lengths.tolist() == [51] and full.shape == (1, 51, 24) and streamed.shape == full.shape
    assert (streamed - full).abs().max() <= 1e-5
    assert state.finished and state.frames == 101


def test_padded_batch_rows_equal_each_row_alone():
    model = _zipformer(8, 1, 2)
    x = torch.randn(3, 96, 32)
    lengths = torch.tensor([96, 57, 9])
    with torch.no_grad():
        full, out_lengths = model(x, lengths)
        assert out_lengths.tolist() == [48, 29, 5]
        for b in range(3):
            alone, _ = _stream(model, x[b : b + 1, : int(lengths[b])])
            assert (alone[0] - full[b, : out_lengths[b]]).abs().max() <= 1e-5


def test_the_chunk_mask_is_what_streaming_needs():
    """Changing input never changes earlier chunks' output; without the chunk limit it would (future
    frames inside a chunk are seen), and the left context really limits what a chunk sees."""
    model = _zipformer(4, 1, 0, left_context_length=4)
    x = torch.randn(1, 64, 32)
    y = x.clone()
    y[:, 40:] += 1.0  # frames of the 6th chunk (8 input frames per chunk) onwards
    with torch.no_grad():
        a, _ = model(x, torch.tensor([64]))
        b, _ = model(y, torch.tensor([64]))
    assert torch.equal(a[:, :20], b[:, :20])  # the first 5 chunks: 20 output frames
    assert (a[:, 20:] - b[:, 20:]).abs().max() > 1e-3
    # the 6th chunk's own first frame sees its second frame (one future frame, within the chunk)
    z = x.clone()
    z[:, 41] += 1.0
    with torch.no_grad():
        c, _ = model(z, torch.tensor([64]))
    assert (c[:, 20] - a[:, 20]).abs().max() > 1e-4


def test_offline_chunk_length_zero_is_one_causal_chunk():
    model = _zipformer(4, 0, 0)
    x = torch.randn(1, 48, 32)
    y = x.clone()
    y[:, 30:] += 1.0
    with torch.no_grad():
        a, _ = model(x, torch.tensor([48]), chunk_length=0)
        b, _ = model(y, torch.tensor([48]), chunk_length=0)
        chunked, _ = model(x, torch.tensor([48]))
    # causal: the output frames before input frame 30 (at every rate: the 8-frame group 24..31) agree
    assert torch.equal(a[:, :12], b[:, :12])
    assert (a - chunked).abs().max() > 1e-4  # a whole-utterance chunk sees further back


def test_state_is_bounded_and_reused_across_many_chunks():
    model = _zipformer(4, 1, 2, left_context_length=6)
    x = torch.randn(1, 8 * 150, 32)  # 150 chunks
    state = None
    sizes = set()
    outs = []
    with torch.no_grad():
        for i in range(150):
            out, state = model.step(x[:, 8 * i : 8 * i + 8], None, state)
            outs.append(out)
            sizes.add(tuple(kv.shape for kv in state.key_value))
        full, _ = model(x, torch.tensor([x.size(1)]))
    # after the left context fills, every chunk leaves a state of the same shapes
    assert len(sizes) <= 4
    final = state.key_value
    for stack, f in enumerate(model.stack_downsampling):
        assert state.num_left[stack] == math.ceil(12 / f) == model.left_context_frames(stack)
    assert state.num_memory == 2
    assert final[0].shape == (1, 2 + 12, model.stacks[0].layers[0].cache_dim)
    assert (torch.cat(outs, dim=1) - full).abs().max() <= 1e-5
    assert state.frames == 1200 and not state.finished


def test_a_step_never_changes_its_input_state():
    model = _zipformer(4, 1, 2)
    x = torch.randn(1, 24, 32)
    with torch.no_grad():
        _, state = model.step(x[:, :8])
        before = [t.clone() for t in state.key_value]
        out1, _ = model.step(x[:, 8:16], None, state)
        out2, _ = model.step(x[:, 8:16], None, state)
    assert torch.equal(out1, out2)
    assert all(torch.equal(a, b) for a, b in zip(before, state.key_value))


def test_speech_encoder_streams_the_zipformer_preset_step_by_step():
    args = argparse.Namespace(input_feat_per_channel=80, input_channels=1)
    arch.zipformer_tiny_architecture(args)
    torch.manual_seed(0)
    encoder = EchoStreamSpeechEncoder(args).eval()
    assert encoder.backbone.input_chunk_length == 16 and encoder.output_dim == 144
    feats = torch.randn(2, 203, 80)
    with torch.no_grad():
        out = encoder(feats, torch.tensor([203, 150]))
        full = out["encoder_out"][0].transpose(0, 1)
        assert full.shape == (2, 51, 144)
        assert out["src_lengths"][0].tolist() == [51, 38]
        assert out["encoder_padding_mask"][0].sum(1).tolist() == [0, 13]
        for b, length in enumerate([203, 150]):
            state, outs = encoder.initial_state(), []
            for i in range(0, length, 7):  # 70 ms pieces: steps happen whenever a chunk completes
                piece, state = encoder.step(feats[b : b + 1, i : min(i + 7, length)], state, finish=i + 7 >= length)
                outs.append(piece)
            streamed = torch.cat(outs, dim=1)
            n = int(out["src_lengths"][0][b])
            assert streamed.shape == (1, n, 144)
            assert (streamed[0] - full[b, :n]).abs().max() <= 1e-5


def test_zipformer_sizes_are_flags_and_presets():
    tiny, full, emformer = (argparse.Namespace(input_feat_per_channel=80, input_channels=1) for _ in range(3))
    arch.zipformer_tiny_architecture(tiny)
    arch.zipformer_architecture(full)
    arch.emformer_tiny_architecture(emformer)
    assert tiny.encoder_type == full.encoder_type == "zipformer" and emformer.encoder_type == "emformer"
    assert tiny.conv_kernel_sizes == "5" and emformer.conv_kernel_sizes == "5,5"
    # the Zipformer presets delay the subsampler one fbank frame (no one-chunk lag); a flag keeps 0
    assert tiny.subsampler_delay_frames == full.subsampler_delay_frames == 1
    assert emformer.subsampler_delay_frames == 0
    undelayed = argparse.Namespace(input_feat_per_channel=80, input_channels=1, subsampler_delay_frames=0)
    arch.zipformer_tiny_architecture(undelayed)
    assert undelayed.subsampler_delay_frames == 0

    def count(a):
        return sum(p.numel() for p in EchoStreamSpeechEncoder(a).parameters())

    n_tiny, n_emformer = count(tiny), count(emformer)
    assert 0.8 < n_tiny / n_emformer < 1.25  # comparable sizes for the README's comparison
    custom = argparse.Namespace(
        input_feat_per_channel=80,
        input_channels=1,
        stack_dims="32,48",
        stack_layers="1,1",
        stack_downsampling="1,2",
        stack_heads="2,2",
        stack_ffn_dims="64,64",
        stack_conv_kernels="3,3",
        future_frames=0,
    )
    arch.zipformer_tiny_architecture(custom)
    encoder = EchoStreamSpeechEncoder(custom)
    assert encoder.backbone.stack_dims == (32, 48) and encoder.backbone.future_frames == 0
    assert encoder.backbone.alignment == 2  # no 8x stack: chunks need only split in two


# -- bad input ------------------------------------------------------------------------------------


def test_incompatible_chunk_length_is_refused_everywhere():
    with pytest.raises(
        ValueError,
        match=r"chunk_length 6 is not compatible with the stack downsampling "
        r"\[1, 2, 4, 8, 4, 2\].*multiple of 4 \(160 ms",
    ):
        _zipformer(chunk_length=6)
    model = _zipformer(4)
    with pytest.raises(ValueError, match="chunk_length 50 is not compatible"):
        model.chunk_length = 50  # what a 2000 ms agent chunk would ask for
    assert model.chunk_length == 4  # unchanged
    with pytest.raises(ValueError, match="chunk_length 10 is not compatible"):
        model(torch.randn(1, 40, 32), torch.tensor([40]), chunk_length=10)


def test_zipformer_needs_a_single_stride_two_embedding():
    args = argparse.Namespace(input_feat_per_channel=80, input_channels=1, conv_kernel_sizes="5,5")
    arch.zipformer_tiny_architecture(args)
    with pytest.raises(ValueError, match=r"--conv-kernel-sizes needs exactly one kernel .*got '5,5'"):
        EchoStreamSpeechEncoder(args)
    args = argparse.Namespace(input_feat_per_channel=80, input_channels=1, stack_dims="32,x")
    arch.zipformer_tiny_architecture(args)
    with pytest.raises(ValueError, match=r"--stack-dims must be comma-separated integers, got '32,x'"):
        EchoStreamSpeechEncoder(args)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(stack_layers=(1, 1)), r"stack_layers needs one value per stack \(6\)"),
        (dict(stack_downsampling=(1, 2, 0, 8, 4, 2)), r"stack_downsampling values must be >= 1"),
        (dict(future_frames=-1), r"future_frames must be >= 0"),
        (dict(max_memory_size=-2), r"max_memory_size must be >= 0"),
    ],
)
def test_bad_configuration_is_refused(kwargs, message):
    base = dict(
        input_dim=8,
        output_dim=8,
        stack_dims=(8,) * 6,
        stack_layers=(1,) * 6,
        stack_heads=(1,) * 6,
        stack_downsampling=(1, 2, 4, 8, 4, 2),
        stack_ffn_dims=(8,) * 6,
        stack_conv_kernels=(3,) * 6,
        chunk_length=4,
        query_head_dim=8,
        value_head_dim=4,
    )
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Zipformer(**base)


def test_bad_chunks_and_states_are_refused():
    model = _zipformer(4)
    good = torch.randn(1, 8, 32)
    with pytest.raises(ValueError, match=r"chunk must have shape \[batch, time, 32\], got \[1, 8, 31\]"):
        model.step(torch.randn(1, 8, 31))
    with pytest.raises(ValueError, match="empty chunk"):
        model.step(torch.randn(1, 0, 32))
    bad = good.clone()
    bad[0, 3, 5] = float("nan")
    with pytest.raises(ValueError, match="chunk contains NaN or inf"):
        model.step(bad)
    bad[0, 3, 5] = float("inf")
    with pytest.raises(ValueError, match="input contains NaN or inf"):
        model(bad, torch.tensor([8]))
    with pytest.raises(ValueError, match="chunk has 9 frames; a chunk holds 8 input frames"):
        model.step(torch.randn(1, 9, 32))
    with pytest.raises(ValueError, match="takes no right context"):
        model.step(good, torch.randn(1, 2, 32))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 8\]"):
        model(good, torch.tensor([9]))

    emformer = Emformer(32, 4, 64, 1, chunk_length=4)
    with pytest.raises(ValueError, match="state must be a ZipformerState, got EmformerState"):
        model.step(good, None, emformer.initial_state(1))
    other = _zipformer(8)
    _, foreign = other.step(torch.randn(1, 16, 32))
    with pytest.raises(ValueError, match="state was made by a Zipformer configured as"):
        model.step(good, None, foreign)
    _, state = model.step(good)
    with pytest.raises(ValueError, match="state holds 1 streams but the chunk has 2"):
        model.step(torch.randn(2, 8, 32), None, state)
    with pytest.raises(ValueError, match="does not match input dtype"):
        model.step(good.double(), None, state)
    _, finished = model.step(good[:, :5], None, state)
    with pytest.raises(ValueError, match="the stream is finished"):
        model.step(good, None, finished)
    assert isinstance(finished, ZipformerState) and finished.finished
