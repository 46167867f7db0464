"""--model-dtype: int8 linear layers and bf16 models stay close to fp32, every linear layer is converted,
the whole translator streams under each precision, and bad settings fail with a message."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from echostream_fairseq.common.cpu import cpu_capabilities
from echostream_fairseq.data.audio import read_audio
from echostream_fairseq.modules.packed_linear import PackedLinear
from echostream_fairseq.modules.precision import Int8Linear, convert_precision, precision_of, torch_dtype
from echostream_fairseq.streaming.api import EchoStream
from echostream_fairseq.streaming.loading import load_translator
from echostream_fairseq.streaming.options import TranslatorOptions

# int8 needs fbgemm (AVX2); where it is missing, the refusal is tested instead (test_cpu.py)
needs_int8 = pytest.mark.skipif(not cpu_capabilities().fbgemm, reason="no fbgemm int8 kernels on this CPU (no AVX2)")
DTYPES_HERE = ("fp32", "bf16", "int8") if cpu_capabilities().fbgemm else ("fp32", "bf16")


def _rel(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


@needs_int8
def test_int8_linear_is_close_and_keeps_the_fused_activation():
    lin = PackedLinear(64, 96, activation="relu").eval()
    x = torch.randn(3, 7, 64)
    with torch.inference_mode():
        ref = F.relu(F.linear(x, lin.weight, lin.bias))
        q = Int8Linear(lin)
        y = q(x)
        assert y.shape == (3, 7, 96) and float(y.min()) >= 0.0
        assert _rel(y, ref) < 0.02
        plain = nn.Linear(64, 32).eval()
        r = torch.randn(3, 7, 32)
        assert _rel(Int8Linear(plain).forward_add(x, r), r + plain(x)) < 0.02


@needs_int8
def test_convert_precision_converts_every_linear_to_int8():
    model = nn.Sequential(nn.Linear(8, 8), nn.Sequential(PackedLinear(8, 4), nn.LayerNorm(4))).eval()
    convert_precision(model, "int8")
    assert [type(m).__name__ for m in model.modules() if isinstance(m, (nn.Linear, Int8Linear))] == ["Int8Linear"] * 2
    assert model[1][1].weight.dtype == torch.float32
    with pytest.raises(ValueError, match="the model has no linear layer to quantise"):
        convert_precision(nn.LayerNorm(2).eval(), "int8")


def test_convert_precision_converts_every_weight_to_bf16_and_checks_its_arguments():
    bf16 = convert_precision(nn.Sequential(nn.Linear(8, 8)).eval(), "bf16")
    assert bf16[0].weight.dtype == torch.bfloat16 and torch_dtype("bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype 'fp16'; use one of fp32, bf16, int8"):
        convert_precision(nn.Linear(2, 2).eval(), "fp16")
    with pytest.raises(ValueError, match="convert_precision is for inference: call model.eval"):
        convert_precision(nn.Linear(2, 2), "int8")


def text_options(dtype):
    return TranslatorOptions(output="text", model_dtype=dtype, max_len=12)


@pytest.fixture(scope="module")
def translators(writing, corpus):
    save, _ = writing
    return {
        dtype: load_translator(
            str(save / "checkpoint_last.pt"),
            str(corpus),
            TranslatorOptions(output="text", model_dtype=dtype, max_len=12),
        )
        for dtype in DTYPES_HERE
    }


def test_the_model_under_each_precision_stays_close_to_fp32(translators, corpus):
    wave = read_audio(sorted((corpus / "audio" / "src").glob("test_*.wav"))[0])
    base = translators["fp32"]
    features, _ = base.encoding.fbank.step(wave, base.encoding.fbank.initial_state())
    features = features.unsqueeze(0)
    lengths = torch.tensor([features.size(1)])
    with torch.inference_mode():
        ref = base.model.encoder(features, lengths)["encoder_out"][0]
        for dtype in DTYPES_HERE[1:]:  # bf16, and int8 where this CPU runs it
            model = translators[dtype].model
            out = model.encoder(features.to(torch_dtype(dtype)), lengths)["encoder_out"][0]
            assert out.dtype == torch_dtype(dtype)
            assert _rel(out, ref) < 0.05, dtype
    assert [precision_of(t.model) for t in translators.values()] == list(DTYPES_HERE)
    if "int8" in translators:
        linears = [m for m in translators["int8"].model.modules() if isinstance(m, nn.Linear)]
        assert linears == [] and any(isinstance(m, Int8Linear) for m in translators["int8"].model.decoder.modules())


def test_each_precision_streams_to_the_end(translators, corpus):
    wave = read_audio(sorted((corpus / "audio" / "src").glob("test_*.wav"))[1]).numpy()
    for dtype, translator in translators.items():
        stream = EchoStream(translator).open()
        events = stream.feed(wave) + stream.finish()
        assert events[-1].kind == "finished", dtype
        assert all(e.kind in ("source_text", "target_text", "sentence_end", "finished") for e in events)


def test_int8_on_a_gpu_is_refused():
    with pytest.raises(ValueError, match="--model-dtype int8 runs on CPU only"):
        convert_precision(nn.Linear(2, 2).eval(), "int8", torch.device("cuda"))
