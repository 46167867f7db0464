"""The FairseqEncoder wrapper and the chunk-by-chunk streaming driver."""

import argparse

import pytest
import torch

from echostream_fairseq.models.speech_encoder import EchoStreamSpeechEncoder


def _encoder(encoder_type="emformer", right=2, **over):
    args = argparse.Namespace(
        encoder_type=encoder_type,
        encoder_layers=2,
        encoder_embed_dim=32,
        encoder_ffn_embed_dim=64,
        encoder_attention_heads=4,
        conv_channels=64,
        chunk_length=4,
        left_context_length=6,
        right_context_length=right,
        max_memory_size=2,
        dropout=0.1,
        depthwise_conv_kernel_size=5,
    )
    for k, v in over.items():
        setattr(args, k, v)
    return EchoStreamSpeechEncoder(args).eval()


def _stream(enc, x, chunk_sizes):
    state, outs, pos, T, i = enc.initial_state(x.size(0)), [], 0, x.size(1), 0
    while pos < T:
        n = chunk_sizes[i % len(chunk_sizes)]
        i += 1
        chunk = x[:, pos : pos + n]
        pos += chunk.size(1)
        out, state = enc.step(chunk, state, finish=pos >= T)
        outs.append(out)
    return torch.cat(outs, 1), state


@pytest.mark.parametrize(
    "encoder_type,right,conv", [("emformer", 2, 0), ("emformer", 0, 0), ("emformer", 0, 5), ("conformer", 0, 0)]
)
@pytest.mark.parametrize("T", [5, 37, 64])
def test_stream_equals_forward(encoder_type, right, conv, T):
    enc = _encoder(encoder_type, right, emformer_conv_kernel_size=conv)
    x = torch.randn(1, T, 80)
    with torch.no_grad():
        out = enc(x, torch.tensor([T]))
        streamed, state = _stream(enc, x, [7, 13, 1, 0, 32])
    full = out["encoder_out"][0].transpose(0, 1)
    assert streamed.shape == full.shape
    assert (streamed - full).abs().max().item() <= 1e-5
    assert state.finished and state.input_frames == T


def test_encoder_out_dict_and_padding():
    enc = _encoder()
    x = torch.randn(3, 50, 80)
    lengths = torch.tensor([50, 31, 8])
    with torch.no_grad():
        out = enc(x, lengths)
        alone = enc(x[1:2, :31], torch.tensor([31]))
    T = 13  # ceil(ceil(50 / 2) / 2)
    assert out["encoder_out"][0].shape == (T, 3, 32)
    assert out["encoder_padding_mask"][0].shape == (3, T)
    assert out["src_lengths"][0].tolist() == [13, 8, 2]
    assert out["encoder_padding_mask"][0].sum(1).tolist() == [0, 5, 11]
    a = out["encoder_out"][0][:8, 1]
    b = alone["encoder_out"][0][:, 0]
    assert (a - b).abs().max().item() <= 1e-5


def test_reorder_encoder_out():
    enc = _encoder()
    with torch.no_grad():
        out = enc(torch.randn(3, 20, 80), torch.tensor([20, 12, 4]))
    order = torch.tensor([2, 2, 0])
    re = enc.reorder_encoder_out(out, order)
    assert torch.equal(re["encoder_out"][0], out["encoder_out"][0][:, order])
    assert torch.equal(re["encoder_padding_mask"][0], out["encoder_padding_mask"][0][order])
    assert re["src_lengths"][0].tolist() == [1, 1, 5]


def test_add_args_round_trip():
    parser = argparse.ArgumentParser()
    EchoStreamSpeechEncoder.add_args(parser)
    args = parser.parse_args(
        "--encoder-type emformer --encoder-layers 3 --encoder-embed-dim 48 --encoder-ffn-embed-dim 96 "
        "--encoder-attention-heads 4 --chunk-length 5 --left-context-length 10 --right-context-length 1 "
        "--max-memory-size 3 --conv-kernel-sizes 3,3 --conv-channels 32".split()
    )
    args.dropout = 0.0
    enc = EchoStreamSpeechEncoder(args)
    bb = enc.backbone
    assert (len(bb.layers), bb.input_dim, bb.chunk_length, bb.left_context_length) == (3, 48, 5, 10)
    assert (bb.right_context_length, bb.max_memory_size) == (1, 3)
    assert enc.subsample.kernel_sizes == (3, 3)


def test_defaults_are_streamspeech_sized():
    enc = EchoStreamSpeechEncoder(argparse.Namespace())
    bb = enc.backbone
    assert (len(bb.layers), bb.input_dim, bb.num_heads, bb.chunk_length) == (12, 256, 4, 8)
    assert bb.layers[0].ffn_in.out_features == 2048
    assert (bb.left_context_length, bb.max_memory_size) == (32, 4)


def test_options_under_their_former_names_keep_their_values():
    import argparse

    from echostream_fairseq.models.speech_encoder import speech_encoder_defaults

    old = speech_encoder_defaults(argparse.Namespace(segment_length=4, multichunk_segment_lengths="4,0"))
    assert old.chunk_length == 4 and old.multichunk_lengths == "4,0"
    both = speech_encoder_defaults(argparse.Namespace(segment_length=4, chunk_length=16))
    assert both.chunk_length == 16  # the new name wins
    assert speech_encoder_defaults(argparse.Namespace()).chunk_length == 8


@pytest.mark.parametrize("encoder_type", ["emformer", "zipformer", "conformer"])
def test_every_backbone_keeps_the_streaming_contract(encoder_type):
    import argparse

    from echostream_fairseq.models.echostream import emformer_tiny_architecture, zipformer_tiny_architecture
    from echostream_fairseq.modules.backbone import StreamingBackbone

    args = argparse.Namespace(encoder_type=encoder_type)
    (zipformer_tiny_architecture if encoder_type == "zipformer" else emformer_tiny_architecture)(args)
    backbone = EchoStreamSpeechEncoder(args).backbone
    assert isinstance(backbone, StreamingBackbone)
    assert not isinstance(torch.nn.Linear(2, 2), StreamingBackbone)
    state = backbone.initial_state(1)
    frames = torch.zeros(1, backbone.input_chunk_length, backbone.input_dim)
    out, state = backbone.step(frames, None, state)
    assert out.shape[:2] == (1, backbone.chunk_length)


@pytest.mark.parametrize("delay", [0, 1])
def test_the_zipformer_steps_on_every_320ms_chunk_with_one_frame_of_subsampler_delay(delay):
    """A 320 ms chunk gives 30 complete fbank frames at first and 32 after; without delay the
    Zipformer's 16th 50 Hz frame of a chunk needs the next chunk's first fbank frame, so every
    backbone step waits one chunk (docs/results/2026-12-06-encoder-comparison.md, "The Zipformer's lag")."""
    from echostream_fairseq.models.echostream import zipformer_tiny_architecture

    torch.manual_seed(0)
    args = argparse.Namespace(encoder_type="zipformer", subsampler_delay_frames=delay)
    zipformer_tiny_architecture(args)
    enc = EchoStreamSpeechEncoder(args).eval()
    S = enc.backbone.chunk_length
    x = torch.randn(1, 30 + 32 * 3, 80)
    state, per_chunk, outs = enc.initial_state(1), [], []
    with torch.no_grad():
        for a, b in [(0, 30), (30, 62), (62, 94), (94, 126)]:
            out, state = enc.step(x[:, a:b], state, finish=b == 126)
            per_chunk.append(out.size(1))
            outs.append(out)
        full = enc(x, torch.tensor([126]))["encoder_out"][0].transpose(0, 1)
    assert per_chunk == ([S, S, S, full.size(1) - 3 * S] if delay else [0, S, S, full.size(1) - 2 * S])
    assert (torch.cat(outs, 1) - full).abs().max().item() <= 1e-4
