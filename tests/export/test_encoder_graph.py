"""The exported encoder-step graph under onnxruntime equals the model's own step, its metadata
is checked on loading, and damaged or foreign graphs are refused with a message."""

import numpy as np
import pytest
import torch

from echostream_fairseq.export.encoder_graph import (
    INPUT_NAMES,
    STATE_NAMES,
    EncoderGraphState,
    EncoderStepGraph,
    encoder_step_graph,
)
from echostream_fairseq.export.metadata import encoder_metadata
from echostream_fairseq.export.onnx_files import graph_file, open_graph, read_metadata
from echostream_fairseq.modules.batching import split_state, stack_states
from echostream_fairseq.streaming.setup import Dictionaries


def _expected(loaded):
    model, task = loaded
    d = Dictionaries.of_task(task)
    return encoder_metadata(EncoderStepGraph(model.eval()), d.source, d.st)


def _run(session, frames, state):
    feeds = {"frames": frames.numpy(), **{n: t.numpy() for n, t in zip(STATE_NAMES, state.tensors())}}
    out = [torch.from_numpy(a) for a in session.run(None, feeds)]
    return out[0], out[1], out[2], EncoderGraphState(*out[3:])


def test_graph_streams_as_the_torch_step(loaded, exported):
    model, _ = loaded
    graph = EncoderStepGraph(model.eval())
    session = open_graph(graph_file(exported, "encoder_step", "fp32"), _expected(loaded))
    torch.manual_seed(0)
    S = model.encoder.backbone.chunk_length
    frames = torch.randn(2, 5 * S + 3, model.encoder.backbone.input_dim)
    backbone_state, st_caches, state = None, None, graph.initial_state(2)
    with torch.no_grad():
        for start in range(0, frames.size(1), S):  # the last chunk is short
            chunk = frames[:, start : start + S]
            out, backbone_state = model.encoder.backbone.step(chunk, None, backbone_state)
            st_logits, st_caches = model.st_ctc.step(out, st_caches)
            g_out, g_asr, g_st, state = _run(session, chunk, state)
            assert (g_out - out).abs().max().item() <= 1e-4
            assert (g_asr - model.asr_ctc(out)).abs().max().item() <= 1e-4
            assert (g_st - st_logits).abs().max().item() <= 1e-4
    assert state.num_left.tolist() == [backbone_state.num_left] * 2


def test_streams_at_different_points_share_one_call(loaded, exported):
    model, _ = loaded
    graph = EncoderStepGraph(model.eval())
    session = open_graph(graph_file(exported, "encoder_step", "fp32"), _expected(loaded))
    S, D = model.encoder.backbone.chunk_length, model.encoder.backbone.input_dim
    torch.manual_seed(1)
    states = []
    for chunks in (0, 3, 9):
        state = graph.initial_state(1)
        for _ in range(chunks):
            *_, state = _run(session, torch.randn(1, S, D), state)
        states.append(state)
    x = torch.randn(3, S, D)
    out, _, st, state = _run(session, x, stack_states(states))
    for i, (part, alone_state) in enumerate(zip(split_state(state, [1, 1, 1]), states)):
        alone, _, alone_st, alone_next = _run(session, x[i : i + 1], alone_state)
        assert (out[i] - alone[0]).abs().max().item() <= 1e-5
        assert (st[i] - alone_st[0]).abs().max().item() <= 1e-5
        assert part.num_memory.tolist() == alone_next.num_memory.tolist()


def test_int8_graph_is_close_to_fp32(loaded, exported):
    expected = _expected(loaded)
    fp32 = open_graph(graph_file(exported, "encoder_step", "fp32"), expected)
    int8 = open_graph(graph_file(exported, "encoder_step", "int8"), expected)
    assert read_metadata(graph_file(exported, "encoder_step", "int8"))["precision"] == "int8"
    model, _ = loaded
    graph = EncoderStepGraph(model.eval())
    torch.manual_seed(2)
    x = torch.randn(1, model.encoder.backbone.chunk_length, model.encoder.backbone.input_dim)
    a = _run(fp32, x, graph.initial_state(1))[0]
    b = _run(int8, x, graph.initial_state(1))[0]
    # int8 weights and activations: close, not equal (the system's BLEU is the test that matters)
    assert (a - b).abs().max().item() < 0.25 * a.abs().max().item()
    assert (a - b).abs().max().item() > 0


def test_metadata_names_what_differs(loaded, exported):
    expected = dict(_expected(loaded))
    expected["source_dictionary_size"] = "7"
    expected["weights_digest"] = "0123456789abcdef"
    with pytest.raises(
        ValueError, match=r"another model.*source_dictionary_size: \d+ in the graph, 7 for this.*weights_digest"
    ):
        open_graph(graph_file(exported, "encoder_step", "fp32"), expected)


def test_format_precision_and_inputs_are_checked(loaded, exported, tmp_path):
    import onnx

    path = graph_file(exported, "encoder_step", "fp32")
    with pytest.raises(ValueError, match="precision: fp32 in the graph, int8 for this checkpoint"):
        open_graph(path, {**_expected(loaded), "precision": "int8"})
    with pytest.raises(ValueError, match=r"takes inputs \['frames'.*this package feeds it \['x'\]"):
        open_graph(path, _expected(loaded), ("x",))
    old = onnx.load(str(path))
    for p in old.metadata_props:
        if p.key == "echostream.format":
            p.value = "0"
    onnx.save(old, str(tmp_path / "old.onnx"))
    with pytest.raises(ValueError, match="export format 0; this version reads format 1: export it again"):
        open_graph(tmp_path / "old.onnx", _expected(loaded))


def test_a_zipformer_graph_streams_as_the_torch_step(writing_zipformer, corpus, tmp_path):
    from echostream_fairseq.checkpoint import load_echostream_model
    from echostream_fairseq.export.onnx_files import export_encoder
    from echostream_fairseq.export.zipformer_graph import ZipformerStepGraph

    save, _ = writing_zipformer
    model, task = load_echostream_model(str(save / "checkpoint_last.pt"), str(corpus))
    model.eval()
    d = Dictionaries.of_task(task)
    export_encoder(model, d.source, d.st, tmp_path, ("fp32",))
    graph = encoder_step_graph(model)
    assert isinstance(graph, ZipformerStepGraph)
    expected = encoder_metadata(graph, d.source, d.st)
    assert expected["encoder_type"] == "zipformer"
    session = open_graph(graph_file(tmp_path, "encoder_step", "fp32"), expected, graph.input_names)
    encoder = model.encoder
    torch.manual_seed(4)
    S = encoder.backbone.input_chunk_length
    frames = torch.randn(2, 3 * S + 5, encoder.backbone.input_dim)
    chunks, _ = encoder.backbone_chunks(frames, finish=True)
    assert [c.size(1) for c, _ in chunks] == [S, S, S, 5]  # a short last chunk, padded for the graph
    backbone_state, st_caches, state = None, None, graph.initial_state(2)
    with torch.no_grad():
        for chunk, right_context in chunks:
            out, backbone_state = encoder.backbone.step(chunk, right_context, backbone_state)
            st_logits, st_caches = model.st_ctc.step(out, st_caches)
            inputs, real = graph.chunk_inputs(chunk, right_context)
            feeds = {n: t.numpy() for n, t in inputs.items()}
            feeds.update((n, t.numpy()) for n, t in zip(graph.state_names, state.tensors()))
            result = [torch.from_numpy(a) for a in session.run(None, feeds)]
            state = graph.state_from(result[3:])
            assert real == out.size(1)
            assert (result[0][:, :real] - out).abs().max().item() <= 1e-4
            assert (result[1][:, :real] - model.asr_ctc(out)).abs().max().item() <= 1e-4
            assert (result[2][:, :real] - st_logits).abs().max().item() <= 1e-4


def test_an_encoder_without_a_bounded_state_is_refused(corpus):
    from echostream_fairseq.checkpoint import build_random_echostream_model

    model, _ = build_random_echostream_model("echostream_conformer_tiny", str(corpus), [])
    with pytest.raises(ValueError, match="only Emformer and Zipformer encoders export to a graph; .* 'conformer'"):
        encoder_step_graph(model)


def test_a_graph_with_look_ahead_streams_as_the_torch_step(corpus, tmp_path):
    from echostream_fairseq.checkpoint import build_random_echostream_model
    from echostream_fairseq.export.onnx_files import export_encoder

    model, task = build_random_echostream_model(
        "echostream_emformer_tiny", str(corpus), ["--right-context-length", "2"]
    )
    model.eval()
    d = Dictionaries.of_task(task)
    export_encoder(model, d.source, d.st, tmp_path, ("fp32",))
    graph = EncoderStepGraph(model)
    session = open_graph(graph_file(tmp_path, "encoder_step", "fp32"), encoder_metadata(graph, d.source, d.st))
    encoder = model.encoder
    S, R = encoder.backbone.chunk_length, encoder.right_context_length
    assert R == 2
    torch.manual_seed(3)
    frames = torch.randn(2, 3 * S + 5, encoder.backbone.input_dim)
    # the chunking the runtime does, the end of the stream included: R zero frames, a short last chunk
    chunks, _ = encoder.backbone_chunks(frames, finish=True)
    assert [c.size(1) for c, _ in chunks] == [S, S, S, 5]
    backbone_state, st_caches, state = None, None, graph.initial_state(2)
    with torch.no_grad():
        for chunk, right_context in chunks:
            out, backbone_state = encoder.backbone.step(chunk, right_context, backbone_state)
            st_logits, st_caches = model.st_ctc.step(out, st_caches)
            g_out, _, g_st, state = _run(session, torch.cat([chunk, right_context], dim=1), state)
            assert (g_out - out).abs().max().item() <= 1e-4
            assert (g_st - st_logits).abs().max().item() <= 1e-4


def test_bad_graph_files_are_refused(loaded, exported, tmp_path):
    import onnx

    expected = _expected(loaded)
    with pytest.raises(ValueError, match="no graph at .*echostream-export"):
        open_graph(tmp_path / "encoder_step.fp32.onnx", expected)
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"\x08\x07not a protobuf at all" * 10)
    with pytest.raises(ValueError, match="is not an ONNX graph"):
        open_graph(damaged, expected)
    bare = onnx.load(str(graph_file(exported, "encoder_step", "fp32")))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ValueError, match="carries no EchoStream metadata"):
        open_graph(tmp_path / "bare.onnx", expected)


def test_inputs_and_dynamic_axes(exported):
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(graph_file(exported, "encoder_step", "fp32")), providers=["CPUExecutionProvider"]
    )
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert tuple(inputs) == INPUT_NAMES
    assert inputs["frames"][:2] == ["streams", "chunk_and_lookahead"]
    assert all(shape[0] == "streams" for shape in inputs.values())
    assert np.all([o.name for o in session.get_outputs()][:3] == ["encoder_out", "asr_logits", "st_logits"])
