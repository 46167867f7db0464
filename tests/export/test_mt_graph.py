"""The exported MT decoder step under onnxruntime equals the decoder's own batched step."""

import pytest
import torch

from echostream_fairseq.export.metadata import mt_metadata
from echostream_fairseq.export.mt_graph import mt_input_names
from echostream_fairseq.export.onnx_files import export_mt_decoder, graph_file, open_graph
from echostream_fairseq.modules.transformer_layer import pad_caches
from echostream_fairseq.streaming.graph_decoder import GraphMTDecoder
from echostream_fairseq.streaming.setup import Dictionaries


@pytest.fixture(scope="module")
def mt_session(loaded, tmp_path_factory):
    model, task = loaded
    d = Dictionaries.of_task(task)
    folder = tmp_path_factory.mktemp("mt_graph")
    export_mt_decoder(model.eval(), d.target, folder, ("fp32",))
    names = mt_input_names(len(model.decoder.layers))
    return open_graph(graph_file(folder, "mt_decoder_step", "fp32"), mt_metadata(model.decoder, d.target), names)


def test_graph_decoder_writes_as_the_decoder(loaded, mt_session):
    model, _ = loaded
    decoder = model.decoder.eval()
    graph = GraphMTDecoder(decoder, mt_session)
    torch.manual_seed(0)
    # two streams with memories of different lengths and prefixes of different lengths
    streams = []
    with torch.no_grad():
        for frames, prefix in ((7, [5, 9, 4]), (3, [6])):
            _, _, caches = decoder.step(
                torch.zeros(1, 0, dtype=torch.long),
                None,
                0,
                torch.randn(1, frames, decoder.layers[0].cross_attn.k_proj.in_features),
            )
            _, _, caches = decoder.step(torch.tensor([[2] + prefix[:-1]]), caches, 0)
            streams.append((caches, prefix[-1], len(prefix)))
        padded, self_valid, memory_valid = pad_caches([c for c, _, _ in streams])
        tokens = torch.tensor([t for _, t, _ in streams])
        positions = torch.tensor([p for _, _, p in streams])
        expected = decoder.step_rows(tokens, positions, padded, self_valid, memory_valid, 3)
        got = graph.step_rows(tokens, positions, padded, self_valid, memory_valid, 3)
        assert (expected[0] - got[0]).abs().max().item() <= 1e-4
        assert (expected[1] - got[1]).abs().max().item() <= 1e-4
        assert torch.equal(expected[3], got[3])
        for a, b in zip(expected[2], got[2]):
            assert a.self_key.shape == b.self_key.shape
            assert (a.self_key - b.self_key).abs().max().item() <= 1e-5
        # one stream through step: two inputs in one call
        caches, last, m = streams[0]
        a = decoder.step(torch.tensor([[last, 7]]), caches, m, self_window=3)
        b = graph.step(torch.tensor([[last, 7]]), caches, m, self_window=3)
        assert (a[0] - b[0]).abs().max().item() <= 1e-4 and (a[1] - b[1]).abs().max().item() <= 1e-4
        assert [c.self_key.size(2) for c in a[2]] == [c.self_key.size(2) for c in b[2]]
