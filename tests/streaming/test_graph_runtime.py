"""``--runtime onnx``: the translator with its encoder stage and MT decoder on the exported graphs
writes the same text and units as with torch, and speech equal within 1e-3, alone and batched;
its refusals."""

import numpy as np
import pytest
import torch

from echostream_fairseq.data.audio import read_audio
from echostream_fairseq.streaming.api import EchoStream
from echostream_fairseq.streaming.loading import load_translator, load_vocoder
from echostream_fairseq.streaming.options import TranslatorOptions

CHUNK = 5120  # 320 ms at 16 kHz


@pytest.fixture(scope="module")
def graphs(writing, corpus, tmp_path_factory):
    """``echostream-export`` run as users run it, on the ``writing`` checkpoint."""
    from cli_runs import BIN, run_cli

    save, _ = writing
    out = tmp_path_factory.mktemp("graphs")
    r = run_cli(
        [BIN / "echostream-export", "--model-path", save / "checkpoint_last.pt", "--data-bin", corpus, "--graphs", out]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "encoder_step.fp32.onnx" in r.stdout and "encoder_step.int8.onnx" in r.stdout
    return out


def _translator(writing, corpus, graphs, runtime, model_dtype="fp32"):
    save, _ = writing
    vocoder = load_vocoder(str(corpus / "units" / "kmeans.pt"), None, "griffin_lim")
    options = TranslatorOptions(
        output="speech",
        runtime=runtime,
        graphs=str(graphs) if runtime == "onnx" else None,
        model_dtype=model_dtype,
        max_len=12,
    )
    return load_translator(str(save / "checkpoint_last.pt"), str(corpus), options, vocoder)


def _waves(corpus, n):
    return [read_audio(p).numpy() for p in sorted((corpus / "audio" / "src").glob("test_*.wav"))[:n]]


def _stream(translator, wave):
    state, outs = translator.initial_state(), []
    for start in range(0, len(wave), CHUNK):
        out, state = translator.step(wave[start : start + CHUNK], state, finish=start + CHUNK >= len(wave))
        outs.append(out)
    return outs


def test_onnx_runtime_writes_what_torch_writes(writing, corpus, graphs):
    torch_tr = _translator(writing, corpus, graphs, "torch")
    onnx_tr = _translator(writing, corpus, graphs, "onnx")
    written = 0
    for wave in _waves(corpus, 3):
        for a, b in zip(_stream(torch_tr, wave), _stream(onnx_tr, wave), strict=True):
            assert (a.asr_tokens, a.target_tokens, a.units) == (b.asr_tokens, b.target_tokens, b.units)
            assert a.audio.shape == b.audio.shape
            if a.audio.numel():
                assert (a.audio - b.audio).abs().max().item() <= 1e-3
            assert (a.encoder_out - b.encoder_out).abs().max().item() <= 1e-4
            written += len(a.target_tokens)
    assert written > 0  # the comparison covered the MT decoder's writing, not only silence


class _RowCounter:
    """An onnxruntime session that records the most rows (streams) one call was given."""

    def __init__(self, session):
        self.session, self.most = session, 0

    def run(self, outputs, feeds):
        self.most = max(self.most, next(iter(feeds.values())).shape[0])
        return self.session.run(outputs, feeds)


def test_onnx_runtime_batched_equals_alone(writing, corpus, graphs):
    tr = _translator(writing, corpus, graphs, "onnx")
    waves = _waves(corpus, 3)
    alone = [_stream(tr, w) for w in waves]
    counters = (_RowCounter(tr.graphs.encoder), _RowCounter(tr.graphs.mt_decoder))
    tr.encoding.runtime.session, tr.mt.decoder.session = counters
    # the streams start one chunk apart, so the graph steps rows at different points together
    states = [tr.initial_state() for _ in waves]
    outs = [[] for _ in waves]
    for tick in range(max(len(w) // CHUNK + 1 for w in waves) + 2):
        requests, who = [], []
        for i, w in enumerate(waves):
            start = (tick - i) * CHUNK
            if 0 <= start < len(w):
                requests.append((w[start : start + CHUNK], states[i], start + CHUNK >= len(w)))
                who.append(i)
        for i, (out, state) in zip(who, tr.step_batch(requests)):
            outs[i].append(out)
            states[i] = state
    for a_list, b_list in zip(alone, outs):
        assert [(a.asr_tokens, a.target_tokens, a.units) for a in a_list] == [
            (b.asr_tokens, b.target_tokens, b.units) for b in b_list
        ]
    # the encoder graph stepped streams at different points in one call; these streams never wrote in
    # the same tick, so the MT graph saw one row a call (tests/export/test_mt_graph.py: several rows)
    assert [c.most for c in counters] == [3, 1]


def test_int8_graph_streams_to_the_end(writing, corpus, graphs):
    save, _ = writing
    stream = EchoStream.load(
        str(save / "checkpoint_last.pt"),
        str(corpus),
        output="text",
        runtime="onnx",
        graphs=str(graphs),
        model_dtype="int8",
    ).open()
    events = stream.feed(_waves(corpus, 1)[0]) + stream.finish()
    assert events[-1].kind == "finished"


def test_onnx_runtime_refusals(writing, corpus, tmp_path):
    save, _ = writing
    with pytest.raises(ValueError, match="--reencode runs in torch only"):
        TranslatorOptions(runtime="onnx", reencode=True)
    with pytest.raises(ValueError, match="use --model-dtype fp32 or int8, not bf16"):
        TranslatorOptions(runtime="onnx", model_dtype="bf16")
    with pytest.raises(ValueError, match="--runtime must be one of"):
        TranslatorOptions(runtime="tensorrt")
    with pytest.raises(ValueError, match="--runtime onnx runs on the CPU; use --device cpu, not gpu"):
        TranslatorOptions(runtime="onnx", device="gpu")
    with pytest.raises(ValueError, match="--graphs g is read with --runtime onnx only"):
        TranslatorOptions(graphs="g")
    with pytest.raises(ValueError, match="--graph-stages encoder is read with --runtime onnx only"):
        TranslatorOptions(graph_stages=("encoder",))
    with pytest.raises(ValueError, match=r"--graph-stages takes one or more of .*, got \['decoder'\]"):
        TranslatorOptions(runtime="onnx", graph_stages=["decoder"])
    options = TranslatorOptions(output="text", runtime="onnx", graphs=str(tmp_path))
    with pytest.raises(ValueError, match=r"no graph at .*encoder_step.fp32.onnx: export one with echostream-export"):
        load_translator(str(save / "checkpoint_last.pt"), str(corpus), options)


def test_speech_through_the_vocoder_graph_equals_torch(writing, corpus, tmp_path):
    import json

    from cli_runs import BIN, run_cli

    from echostream_fairseq.vocoder import CodeHiFiGANUnitVocoder, IncrementalVocoder, build_generator, preset_config

    save, _ = writing
    config = preset_config("tiny", 50)
    torch.manual_seed(0)
    torch.save({"generator": build_generator(config).state_dict()}, tmp_path / "g.pt")
    (tmp_path / "config.json").write_text(json.dumps(config))
    vocoder = {"vocoder": str(tmp_path / "g.pt"), "vocoder_cfg": str(tmp_path / "config.json")}
    r = run_cli(
        [BIN / "echostream-export", "--model-path", save / "checkpoint_last.pt", "--data-bin", corpus]
        + ["--graphs", tmp_path / "graphs", "--precision", "fp32", "--vocoder", vocoder["vocoder"]]
        + ["--vocoder-cfg", vocoder["vocoder_cfg"]]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    wave = _waves(corpus, 1)[0][: 3 * CHUNK]  # a second of source is enough speech to compare
    speech = {}
    for runtime, graphs in (("torch", None), ("onnx", str(tmp_path / "graphs"))):
        # the incremental vocoder as load_vocoder makes it, without its warm-up (timing only)
        unit_vocoder = CodeHiFiGANUnitVocoder.from_files(vocoder["vocoder"], vocoder["vocoder_cfg"]).eval()
        options = TranslatorOptions(runtime=runtime, graphs=graphs, max_len=12)
        translator = load_translator(
            str(save / "checkpoint_last.pt"),
            str(corpus),
            options,
            IncrementalVocoder(unit_vocoder, dur_prediction=True),
        )
        assert (unit_vocoder.graph is not None) == (runtime == "onnx")
        speech[runtime] = np.concatenate([out.audio.numpy() for out in _stream(translator, wave)])
    assert speech["onnx"].shape == speech["torch"].shape and speech["torch"].size > 0
    assert np.abs(speech["onnx"] - speech["torch"]).max() <= 1e-3


def test_a_zipformer_on_its_graphs_writes_what_torch_writes(writing_zipformer, corpus, tmp_path):
    from cli_runs import BIN, run_cli

    save, _ = writing_zipformer
    graphs = tmp_path / "graphs"
    r = run_cli(
        [BIN / "echostream-export", "--model-path", save / "checkpoint_last.pt", "--data-bin", corpus]
        + ["--graphs", graphs, "--precision", "fp32"]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    torch_tr = _translator(writing_zipformer, corpus, graphs, "torch")
    onnx_tr = _translator(writing_zipformer, corpus, graphs, "onnx")
    written = 0
    for wave in _waves(corpus, 2):
        for a, b in zip(_stream(torch_tr, wave), _stream(onnx_tr, wave), strict=True):
            assert (a.asr_tokens, a.target_tokens, a.units) == (b.asr_tokens, b.target_tokens, b.units)
            assert (a.encoder_out - b.encoder_out).abs().max().item() <= 1e-4
            written += len(a.target_tokens)
    assert written > 0
    # the graph steps the chunk it was traced at; another chunk is refused with the flag that fits
    options = TranslatorOptions(output="text", runtime="onnx", graphs=str(graphs), encoder_chunk_ms=160)
    with pytest.raises(ValueError, match=r"steps chunks of \d+ encoder frames .* run with --encoder-chunk-ms \d+"):
        load_translator(str(save / "checkpoint_last.pt"), str(corpus), options)


def test_chosen_stages_on_graphs_the_rest_in_torch(writing, corpus, graphs):
    from echostream_fairseq.streaming.graph_encoder import GraphEncoder
    from echostream_fairseq.streaming.graph_units import GraphT2UEncoder

    save, _ = writing
    vocoder = load_vocoder(str(corpus / "units" / "kmeans.pt"), None, "griffin_lim")
    options = TranslatorOptions.of(
        output="speech", runtime="onnx", graphs=str(graphs), graph_stages=["encoder", "units"], max_len=12
    )
    mixed = load_translator(str(save / "checkpoint_last.pt"), str(corpus), options, vocoder)
    assert isinstance(mixed.encoding.runtime, GraphEncoder) and isinstance(mixed.units.t2u_encoder, GraphT2UEncoder)
    assert mixed.mt.decoder is mixed.setup.model.decoder  # the MT decoder in torch
    torch_tr = _translator(writing, corpus, graphs, "torch")
    wave = _waves(corpus, 1)[0]
    for a, b in zip(_stream(torch_tr, wave), _stream(mixed, wave), strict=True):
        assert (a.asr_tokens, a.target_tokens, a.units) == (b.asr_tokens, b.target_tokens, b.units)
