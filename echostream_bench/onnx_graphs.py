"""onnxruntime in the benchmarks: the Emformer step as a graph (fp32, int8), the step's matrix
products as a graph (onnxruntime's kernels for the floor), and a system's graphs and vocoder.

The graphs are written to a temporary folder and opened with the package's session options
(:func:`~echostream_fairseq.export.onnx_files.session_options`: torch's thread count, no spinning).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from copy import deepcopy
from pathlib import Path
from typing import Callable, List

import numpy as np
import torch
from torch import Tensor, nn

from echostream_fairseq.export.onnx_files import OPSET, quantize_int8, session_options
from echostream_fairseq.modules.emformer import Emformer, EmformerFixedState
from echostream_fairseq.modules.zipformer import Zipformer, ZipformerFixedState
from echostream_fairseq.streaming.options import GRAPH_STAGES

__all__ = ["onnx_emformer_step", "onnx_backbone_step", "onnx_matmul_kernel", "system_graphs", "vocoder_on_graph"]

_STATE = ("key_value", "num_memory", "num_left", "conv_cache")


class _EmformerStep(nn.Module):
    """The bare Emformer's fixed-shape step: ``input`` ``[B, s + R, D]`` and the state's tensors."""

    def __init__(self, emformer: Emformer) -> None:
        super().__init__()
        self.emformer = emformer

    def forward(self, input: Tensor, key_value: Tensor, num_memory: Tensor, num_left: Tensor, conv_cache: Tensor):
        R = self.emformer.right_context_length
        s = input.size(1) - R
        chunk, right_context = (input[:, :s], input[:, s:]) if R > 0 else (input, None)
        out, state = self.emformer.step_fixed(
            chunk, right_context, EmformerFixedState(key_value, num_memory, num_left, conv_cache)
        )
        return out, state.key_value, state.num_memory, state.num_left, state.conv_cache


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])


def onnx_emformer_step(emformer: Emformer, precision: str) -> Callable:
    """``step(input, lengths, state) -> (output, lengths, state)`` (``infer``'s shape) running
    ``emformer``'s fixed-shape step as an onnxruntime graph of ``precision`` (fp32 or int8)."""
    module = _EmformerStep(emformer.eval())
    S, R = emformer.chunk_length, emformer.right_context_length
    example = torch.randn(1, S + R, emformer.input_dim)
    initial = emformer.initial_fixed_state(1)
    folder = Path(tempfile.mkdtemp(prefix="echostream-bench-onnx-"))
    fp32 = folder / "emformer_step.onnx"
    names = ["input", *_STATE]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example, *(getattr(initial, n) for n in _STATE)),
            str(fp32),
            input_names=names,
            output_names=["output", *("next_" + n for n in _STATE)],
            dynamic_axes={"input": {0: "streams", 1: "frames"}, **{n: {0: "streams"} for n in _STATE}},
            opset_version=OPSET,
            dynamo=False,
        )
    path = fp32
    if precision == "int8":
        path = folder / "emformer_step.int8.onnx"
        quantize_int8(fp32, path)
    session = _session(path)
    shutil.rmtree(folder)  # the session holds the graph

    def step(input: Tensor, lengths: Tensor, state):
        if state is None:
            state = tuple(getattr(initial, n).numpy() for n in _STATE)
        result = session.run(None, {"input": input.numpy(), **dict(zip(_STATE, state))})
        return torch.from_numpy(result[0]), lengths - R, tuple(result[1:])

    step.session = session
    return step


class _ZipformerStep(nn.Module):
    """The bare Zipformer's fixed-shape step: ``input`` ``[B, S, D]``, ``num_valid`` ``[B]`` and
    the state's tensors (key/values per stack, convolution caches per stack, the two counts)."""

    def __init__(self, zipformer: Zipformer) -> None:
        super().__init__()
        self.zipformer = zipformer

    def forward(self, input: Tensor, num_valid: Tensor, *state: Tensor):
        n = len(self.zipformer.stacks)
        fixed = ZipformerFixedState(state[:n], state[n : 2 * n], state[2 * n], state[2 * n + 1])
        out, fixed = self.zipformer.step_fixed(input, num_valid, fixed)
        return (out, *fixed.key_value, *fixed.conv, fixed.num_memory, fixed.num_left)


def _zipformer_state(state: ZipformerFixedState) -> tuple:
    return (*state.key_value, *state.conv, state.num_memory, state.num_left)


def onnx_backbone_step(backbone: nn.Module, precision: str = "fp32") -> Callable:
    """``step(frames, state) -> (output, state)`` running an Emformer's or a Zipformer's
    fixed-shape step (``frames``: one whole chunk, ``[1, S + R, D]``) as an onnxruntime graph of
    ``precision``; ``state`` is the graph's arrays (``None``: a fresh stream)."""
    if isinstance(backbone, Emformer):
        step = onnx_emformer_step(backbone, precision)
        lengths = torch.tensor([backbone.chunk_length + backbone.right_context_length])
        return lambda frames, state: step(frames, lengths, state)[::2]
    module = _ZipformerStep(backbone.eval())
    S = backbone.input_chunk_length
    initial = _zipformer_state(backbone.initial_fixed_state(1))
    names = [f"state{i}" for i in range(len(initial))]
    folder = Path(tempfile.mkdtemp(prefix="echostream-bench-onnx-"))
    path = folder / "zipformer_step.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.randn(1, S, backbone.input_dim), torch.tensor([S]), *initial),
            str(path),
            input_names=["input", "num_valid", *names],
            output_names=["output", *("next_" + n for n in names)],
            dynamic_axes={n: {0: "streams"} for n in ["input", "num_valid", *names]},
            opset_version=OPSET,
            dynamo=False,
        )
    if precision == "int8":
        quantize_int8(path, folder / "zipformer_step.int8.onnx")
        path = folder / "zipformer_step.int8.onnx"
    session = _session(path)
    shutil.rmtree(folder)
    valid = np.array([S], dtype=np.int64)

    def step(frames: Tensor, state):
        arrays = tuple(t.numpy() for t in initial) if state is None else state
        result = session.run(None, {"input": frames.numpy(), "num_valid": valid, **dict(zip(names, arrays))})
        return torch.from_numpy(result[0]), tuple(result[1:])

    return step


def onnx_matmul_kernel(calls: List, dtype: str) -> Callable[[], object]:
    """One pass over the step's products (``LinearCall`` list) as one onnxruntime graph of MatMul
    and Add nodes, the weights fp32 or (``int8``) quantised as the int8 step's are."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inputs, outputs, weights = [], [], [], []
    for i, c in enumerate(calls):
        w = c.weight.detach().float().t().contiguous().numpy()
        weights.append(numpy_helper.from_array(w, f"w{i}"))
        inputs.append(helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, [c.rows, w.shape[0]]))
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [c.rows, w.shape[1]]))
        if c.bias is None:
            nodes.append(helper.make_node("MatMul", [f"x{i}", f"w{i}"], [f"y{i}"]))
        else:
            weights.append(numpy_helper.from_array(c.bias.detach().float().numpy(), f"b{i}"))
            nodes.append(helper.make_node("MatMul", [f"x{i}", f"w{i}"], [f"p{i}"]))
            nodes.append(helper.make_node("Add", [f"p{i}", f"b{i}"], [f"y{i}"]))
    graph = helper.make_graph(nodes, "products", inputs, outputs, weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    folder = Path(tempfile.mkdtemp(prefix="echostream-bench-onnx-"))
    path = folder / "products.onnx"
    onnx.save(model, str(path))
    if dtype == "int8":
        quantize_int8(path, folder / "products.int8.onnx")
        path = folder / "products.int8.onnx"
    session = _session(path)
    shutil.rmtree(folder)
    gen = np.random.default_rng(0)
    feeds = {f"x{i}": gen.standard_normal((c.rows, c.weight.size(1)), dtype=np.float32) for i, c in enumerate(calls)}
    return lambda: session.run(None, feeds)


def system_graphs(model, task, precision: str, stages=GRAPH_STAGES):
    """The graphs of ``model`` (as ``echostream-export`` writes them) opened for a translator built
    in memory, for ``stages`` (as ``--graph-stages``; ``vocoder`` is :func:`vocoder_on_graph`'s);
    ``model`` must still hold its fp32 weights."""
    from echostream_fairseq.export.onnx_files import export_steps
    from echostream_fairseq.streaming.graphs import open_graphs
    from echostream_fairseq.streaming.setup import Dictionaries

    d = Dictionaries.of_task(task)
    folder = Path(tempfile.mkdtemp(prefix="echostream-bench-onnx-"))
    export_steps(model, d, folder, (precision,))
    graphs = open_graphs(model, d, folder, precision, stages)
    shutil.rmtree(folder)  # the sessions hold the graphs
    return graphs


def vocoder_on_graph(vocoder):
    """A copy of ``vocoder`` (an ``IncrementalVocoder``) synthesising through its exported graph,
    as ``--runtime onnx`` runs it; a vocoder without a graph form is returned as it is."""
    from echostream_fairseq.export.onnx_files import export_vocoder
    from echostream_fairseq.streaming.graphs import run_vocoder_on_graph
    from echostream_fairseq.vocoder.generator_graph import graph_refusal

    if graph_refusal(vocoder.vocoder) is not None:
        return vocoder
    copy = deepcopy(vocoder)
    folder = Path(tempfile.mkdtemp(prefix="echostream-bench-onnx-"))
    export_vocoder(copy.vocoder, folder)
    run_vocoder_on_graph(copy, folder)
    shutil.rmtree(folder)
    return copy
