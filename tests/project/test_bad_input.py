"""Bad input gets a ValueError that names the problem."""

import argparse

import pytest
import torch

from echostream_fairseq.models.speech_encoder import EchoStreamSpeechEncoder
from echostream_fairseq.modules.conformer import ChunkConformer
from echostream_fairseq.modules.emformer import Emformer


@pytest.fixture
def model():
    return Emformer(32, 4, 64, 2, 4, left_context_length=4, right_context_length=1, max_memory_size=2).eval()


def test_wrong_feature_dimension(model):
    with pytest.raises(ValueError, match=r"chunk must have shape \[batch, time, 32\], got \[1, 4, 31\]"):
        model.step(torch.randn(1, 4, 31), torch.randn(1, 1, 32))
    with pytest.raises(ValueError, match=r"input must have shape \[batch, time, 32\]"):
        model(torch.randn(1, 9, 16), torch.tensor([8]))


def test_empty_chunk(model):
    with pytest.raises(ValueError, match="empty chunk"):
        model.step(torch.randn(1, 0, 32), torch.randn(1, 1, 32))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_chunk(model, bad):
    seg = torch.randn(1, 4, 32)
    seg[0, 2, 5] = bad
    with pytest.raises(ValueError, match="chunk contains NaN or inf"):
        model.step(seg, torch.randn(1, 1, 32))
    rc = torch.randn(1, 1, 32)
    rc[0, 0, 0] = bad
    with pytest.raises(ValueError, match="right_context contains NaN or inf"):
        model.step(torch.randn(1, 4, 32), rc)


def test_state_from_another_configuration(model):
    other = Emformer(32, 4, 64, 2, 4, left_context_length=8, right_context_length=1, max_memory_size=2).eval()
    with torch.no_grad():
        _, state = other.step(torch.randn(1, 4, 32), torch.randn(1, 1, 32))
        with pytest.raises(ValueError, match="state was made by an Emformer configured as"):
            model.step(torch.randn(1, 4, 32), torch.randn(1, 1, 32), state)
        with pytest.raises(ValueError, match="state must be an EmformerState"):
            model.step(torch.randn(1, 4, 32), torch.randn(1, 1, 32), [torch.zeros(1)])
        _, state = model.step(torch.randn(1, 4, 32), torch.randn(1, 1, 32))
        with pytest.raises(ValueError, match="state holds 1 streams but the chunk has 2"):
            model.step(torch.randn(2, 4, 32), torch.randn(2, 1, 32), state)


def test_step_after_finish(model):
    with torch.no_grad():
        _, state = model.step(torch.randn(1, 3, 32), torch.randn(1, 1, 32))  # short: the final chunk
        assert state.finished
        with pytest.raises(ValueError, match="the stream is finished"):
            model.step(torch.randn(1, 4, 32), torch.randn(1, 1, 32), state)


def test_segment_and_right_context_shapes(model):
    with pytest.raises(ValueError, match="chunk has 5 frames; chunk_length is 4"):
        model.step(torch.randn(1, 5, 32), torch.randn(1, 1, 32))
    with pytest.raises(ValueError, match="right_context of 1 frames is required"):
        model.step(torch.randn(1, 4, 32), None)
    with pytest.raises(ValueError, match="every row of a streaming step must hold 5 valid frames"):
        model.infer(torch.randn(2, 5, 32), torch.tensor([5, 3]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 8\]"):
        model(torch.randn(1, 9, 32), torch.tensor([9]))


def test_encoder_stream_bad_input():
    args = argparse.Namespace(
        encoder_layers=1,
        encoder_embed_dim=32,
        encoder_ffn_embed_dim=64,
        encoder_attention_heads=4,
        conv_channels=32,
        chunk_length=4,
        dropout=0.0,
    )
    enc = EchoStreamSpeechEncoder(args).eval()
    state = enc.initial_state()
    with torch.no_grad():
        with pytest.raises(ValueError, match=r"features must have shape \[batch, time, 80\], got \[1, 10, 40\]"):
            enc.step(torch.randn(1, 10, 40), state)
        bad = torch.randn(1, 10, 80)
        bad[0, 3, 3] = float("nan")
        with pytest.raises(ValueError, match="features contain NaN or inf"):
            enc.step(bad, state)
        _, done = enc.step(torch.randn(1, 10, 80), state, finish=True)
        with pytest.raises(ValueError, match="the stream is finished"):
            enc.step(torch.randn(1, 10, 80), done)
        with pytest.raises(ValueError, match="state must be an EncoderStreamState"):
            enc.step(torch.randn(1, 10, 80), {"pending": None})
        with pytest.raises(ValueError, match="src_tokens must be fbank features"):
            enc(torch.randn(1, 10, 81), torch.tensor([10]))
    with pytest.raises(ValueError, match="unknown --encoder-type 'lstm'"):
        EchoStreamSpeechEncoder(argparse.Namespace(encoder_type="lstm"))


def test_conformer_bad_input():
    model = ChunkConformer(32, 4, 64, 1, chunk_length=4, depthwise_conv_kernel_size=3).eval()
    with torch.no_grad():
        with pytest.raises(ValueError, match="empty chunk"):
            model.step(torch.randn(1, 0, 32), None)
        _, state = model.step(torch.randn(1, 2, 32), None)
        with pytest.raises(ValueError, match="the stream is finished"):
            model.step(torch.randn(1, 4, 32), None, state)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="input_dim \\(30\\) must be divisible by num_heads \\(4\\)"):
        Emformer(30, 4, 64, 1, 4)
    with pytest.raises(ValueError, match="chunk_length must be >= 1"):
        Emformer(32, 4, 64, 1, 0)
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        Emformer(32, 4, 64, 1, 4, activation="tanh")
