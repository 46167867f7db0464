"""The exported T2U and unit decoder steps under onnxruntime equal the model's own packed steps,
for streams at different points stepping different numbers of text states, with windows and a
lookahead; a graph of another model's units is refused."""

import pytest
import torch

from echostream_fairseq.export.metadata import t2u_metadata, unit_decoder_metadata
from echostream_fairseq.export.onnx_files import export_unit_stage, graph_file, open_graph, read_metadata
from echostream_fairseq.export.unit_graphs import unit_graph_names
from echostream_fairseq.streaming.graph_units import GraphT2UEncoder, GraphUnitDecoder
from echostream_fairseq.streaming.setup import Dictionaries

WINDOW, LOOKAHEAD = 2, 1


@pytest.fixture(scope="module")
def unit_graphs(loaded, tmp_path_factory):
    model, task = loaded
    d = Dictionaries.of_task(task)
    folder = tmp_path_factory.mktemp("unit_graphs")
    written = export_unit_stage(model.eval(), d.unit, folder, ("fp32",))
    assert [p.name for p in written] == ["t2u_step.fp32.onnx", "unit_decoder_step.fp32.onnx"]
    t2u = open_graph(
        graph_file(folder, "t2u_step", "fp32"),
        t2u_metadata(model.t2u_encoder),
        unit_graph_names(len(model.t2u_encoder.layers), cross=False)[0],
    )
    units = open_graph(
        graph_file(folder, "unit_decoder_step", "fp32"),
        unit_decoder_metadata(model.unit_decoder, d.unit),
        unit_graph_names(len(model.unit_decoder.layers), cross=True)[0],
    )
    return folder, t2u, units


def _close(a, b, tol=1e-4):
    assert a.shape == b.shape
    assert a.numel() == 0 or (a - b).abs().max().item() <= tol


def test_t2u_graph_steps_as_the_encoder(loaded, unit_graphs):
    model, _ = loaded
    t2u = model.t2u_encoder.eval()
    graph = GraphT2UEncoder(t2u, unit_graphs[1])
    width = t2u.layers[0].self_attn.q_proj.in_features
    if isinstance(t2u.proj, torch.nn.Linear):
        width = t2u.proj.in_features
    gen = torch.Generator().manual_seed(0)
    texts = lambda sizes: [torch.randn(1, n, width, generator=gen) for n in sizes]  # noqa: E731
    with torch.no_grad():
        # three streams: caches of 0, 1 and 3 states (one beyond the window), then 2, 0 and 3 new
        _, caches_a = t2u.step_packed(texts([1, 3]), [None, None], WINDOW)
        first = texts([2, 0, 3])
        caches = [None, caches_a[0], caches_a[1]]
        expected, expected_caches = t2u.step_packed(first, caches, WINDOW)
        got, got_caches = graph.step_packed(first, caches, WINDOW)
        for e, g in zip(expected, got, strict=True):
            _close(e, g)
        for e, g in zip(expected_caches, got_caches, strict=True):
            for a, b in zip(e, g, strict=True):
                _close(a.self_key, b.self_key)
                _close(a.self_value, b.self_value)


def test_unit_decoder_graph_steps_as_the_decoder(loaded, unit_graphs):
    model, _ = loaded
    decoder = model.unit_decoder.eval()
    graph = GraphUnitDecoder(decoder, unit_graphs[2])
    gen = torch.Generator().manual_seed(1)
    D = decoder.embed_dim
    state = lambda n: torch.randn(1, n, D, generator=gen)  # noqa: E731
    with torch.no_grad():
        # stream 0 starts: 2 states arrive, 1 is held for the lookahead; stream 1 has voiced 3 of
        # 4 states (beyond the window) and gets 2 more, voicing 2; stream 2 only flushes its held one
        _, earlier = decoder.step_packed([(state(3), None, 0, state(4), 4)], WINDOW, LOOKAHEAD)
        _, held_only = decoder.step_packed([(state(1), None, 0, state(2), 2)], WINDOW, LOOKAHEAD)
        steps = [
            (state(1), None, 0, state(2), 2),
            (state(2), earlier[0], 3, state(2), 6),
            (state(1), held_only[0], 1, state(0), 2),
        ]
        expected, expected_caches = decoder.step_packed(steps, WINDOW, LOOKAHEAD)
        got, got_caches = graph.step_packed(steps, WINDOW, LOOKAHEAD)
        for e, g in zip(expected, got, strict=True):
            assert e.size(1) > 0
            _close(e, g)
            assert torch.equal(e.argmax(-1), g.argmax(-1))
        for e, g in zip(expected_caches, got_caches, strict=True):
            for a, b in zip(e, g, strict=True):
                _close(a.self_key, b.self_key)
                _close(a.cross_value, b.cross_value, 0)


def test_unit_graph_of_other_units_is_refused(loaded, unit_graphs):
    model, task = loaded
    d = Dictionaries.of_task(task)
    path = graph_file(unit_graphs[0], "unit_decoder_step", "fp32")
    assert read_metadata(path)["upsample_rate"] == str(model.unit_decoder.upsample_rate)
    expected = {**unit_decoder_metadata(model.unit_decoder, d.unit), "unit_dictionary_size": "7"}
    with pytest.raises(ValueError, match=r"unit_dictionary_size: \d+ in the graph, 7 for this checkpoint"):
        open_graph(path, expected, unit_graph_names(len(model.unit_decoder.layers), cross=True)[0])
