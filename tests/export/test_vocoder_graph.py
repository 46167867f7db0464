"""The CodeHiFiGAN's exported generators (HiFi-GAN and iSTFT) under onnxruntime synthesise what the
generator does, in streams and in padded and packed shared calls; the vocoders without a graph, and
a foreign graph, are refused."""

import pytest
import torch
from vocoders import stream, write_fairseq_vocoder

from echostream_fairseq.export.onnx_files import export_vocoder, graph_file, read_metadata
from echostream_fairseq.streaming.graphs import run_vocoder_on_graph
from echostream_fairseq.vocoder import CodeHiFiGANUnitVocoder, IncrementalVocoder, preset_config
from echostream_fairseq.vocoder.generator_graph import GeneratorGraph, graph_refusal


@pytest.fixture(scope="module", params=["hifigan", "istft"])
def hifigan(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    config = None if request.param == "hifigan" else preset_config("tiny", 20, generator="istft")
    ckpt, cfg, _ = write_fairseq_vocoder(folder, config)
    vocoder = CodeHiFiGANUnitVocoder.from_files(ckpt, cfg).eval()
    export_vocoder(vocoder, folder)
    return ckpt, cfg, folder


def _on_graph(hifigan, **kw):
    ckpt, cfg, folder = hifigan
    incremental = IncrementalVocoder(CodeHiFiGANUnitVocoder.from_files(ckpt, cfg).eval(), **kw)
    assert run_vocoder_on_graph(incremental, folder)
    return incremental


def test_graph_streams_what_the_generator_streams(hifigan):
    ckpt, cfg, folder = hifigan
    torch.manual_seed(0)
    units = torch.randint(0, 20, (23,))
    torch_audio, _ = stream(
        CodeHiFiGANUnitVocoder.from_files(ckpt, cfg).eval(), units, [4, 7, 1, 11], dur_prediction=True
    )
    graph_audio, _ = stream(_on_graph(hifigan).vocoder, units, [4, 7, 1, 11], dur_prediction=True)
    assert graph_audio.shape == torch_audio.shape
    assert (graph_audio - torch_audio).abs().max().item() <= 1e-4
    assert read_metadata(graph_file(folder, "vocoder", "fp32"))["echostream.graph"] == "vocoder"


def test_padded_shared_calls_equal_rows_alone(hifigan):
    vocoder = _on_graph(hifigan).vocoder
    torch.manual_seed(1)
    frames = torch.randint(0, 20, (3, 24))
    lengths = torch.tensor([24, 17, 5])
    padded = vocoder.synthesize_frames_padded(frames, lengths)
    for row, n in enumerate(lengths.tolist()):
        alone = vocoder.synthesize_frames_batch(frames[row : row + 1, :n])[0]
        assert (padded[row, : alone.numel()] - alone).abs().max().item() <= 1e-5
        assert torch.count_nonzero(padded[row, alone.numel() :]) == 0  # silence past the row's end
    packed = vocoder.synthesize_frames_packed([frames[row, :n] for row, n in enumerate(lengths.tolist())])
    for row, n in enumerate(lengths.tolist()):
        assert torch.equal(packed[row], padded[row, : n * vocoder.frame_hop])


def test_vocoders_without_a_graph_and_foreign_graphs(hifigan, tmp_path):
    ckpt, cfg, folder = hifigan
    causal_ckpt, causal_cfg, _ = write_fairseq_vocoder(tmp_path, {**preset_config("tiny", 20), "causal": True})
    causal = CodeHiFiGANUnitVocoder.from_files(causal_ckpt, causal_cfg)
    assert graph_refusal(causal) == "the causal CodeHiFiGAN has no graph yet (its per-layer caches)"
    with pytest.raises(ValueError, match="causal CodeHiFiGAN has no graph yet"):
        GeneratorGraph(causal)
    assert not run_vocoder_on_graph(IncrementalVocoder(causal), folder)  # it stays in torch
    (tmp_path / "other").mkdir()
    other_ckpt, other_cfg, _ = write_fairseq_vocoder(tmp_path / "other", seed=5)
    other = IncrementalVocoder(CodeHiFiGANUnitVocoder.from_files(other_ckpt, other_cfg))
    with pytest.raises(ValueError, match="exported from another model.*weights_digest"):
        run_vocoder_on_graph(other, folder)
    with pytest.raises(ValueError, match="no graph at .*vocoder.fp32.onnx"):
        run_vocoder_on_graph(other, tmp_path / "nothing")


def test_the_benchmarks_copy_puts_the_vocoder_on_its_graph(hifigan):
    from echostream_bench.onnx_graphs import vocoder_on_graph

    ckpt, cfg, _ = hifigan
    vocoder = IncrementalVocoder(CodeHiFiGANUnitVocoder.from_files(ckpt, cfg).eval())
    copy = vocoder_on_graph(vocoder)
    assert copy.vocoder.graph is not None and vocoder.vocoder.graph is None
    frames = torch.randint(0, 20, (1, 9))
    a, b = vocoder.vocoder.synthesize_frames_batch(frames), copy.vocoder.synthesize_frames_batch(frames)
    assert (a - b).abs().max().item() <= 1e-5
