"""Writing a graph to an ONNX file (fp32, and int8 by onnxruntime's dynamic quantisation) and
opening one for onnxruntime with its metadata checked.

``onnx`` and ``onnxruntime`` are imported here only, when a graph is written or opened.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import torch

from echostream_fairseq.common.files import atomic_path
from echostream_fairseq.export.encoder_graph import INPUT_NAMES, EncoderStepGraph, encoder_step_graph
from echostream_fairseq.export.metadata import (
    check_metadata,
    encoder_metadata,
    mt_metadata,
    t2u_metadata,
    unit_decoder_metadata,
    vocoder_metadata,
)
from echostream_fairseq.export.mt_graph import MTDecoderStepGraph, mt_input_names, mt_output_names
from echostream_fairseq.export.unit_graphs import T2UStepGraph, UnitDecoderStepGraph, unit_graph_names

__all__ = [
    "OPSET",
    "PRECISIONS",
    "default_folder",
    "graph_file",
    "export_encoder",
    "export_mt_decoder",
    "export_unit_stage",
    "export_steps",
    "export_vocoder",
    "VOCODER_INPUT_NAMES",
    "quantize_int8",
    "read_metadata",
    "open_graph",
    "session_options",
]

OPSET = 17
PRECISIONS = ("fp32", "int8")
VOCODER_INPUT_NAMES = ("frames", "lengths")


def default_folder(model_path) -> Path:
    """Where a checkpoint's graphs go unless told otherwise: ``graphs/<checkpoint name>/`` beside
    it (each checkpoint of a training run its own)."""
    path = Path(model_path)
    return path.parent / "graphs" / path.stem


def quantize_int8(fp32, int8) -> None:
    """The int8 variant of the graph at ``fp32``, written to ``int8``: onnxruntime's dynamic
    quantisation of the matrix products with constant weights (weights uint8 per output channel,
    activations uint8 quantised per call); the attention's products of two activations stay fp32.
    Unsigned weights: with signed ones the AVX2 kernels of CPUs without VNNI saturate (11.9%
    relative L2 on the full-size Emformer step against 0.9%, docs/decisions.md), and a graph is
    exported once for whatever CPU runs it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the quantiser logs a line per tensor at INFO on the root logger, and advises pre-processing
    # (shape inference) at WARNING, which these graphs' products do not need
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.WARNING))
    try:
        quantize_dynamic(
            str(fp32), str(int8), weight_type=QuantType.QUInt8, per_channel=True, op_types_to_quantize=["MatMul"]
        )
    finally:
        logging.disable(previous)


def graph_file(folder, graph: str, precision: str) -> Path:
    """Where ``echostream-export`` writes a graph: ``FOLDER/encoder_step.fp32.onnx`` and so on."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown graph precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return Path(folder) / f"{graph}.{precision}.onnx"


def _write_metadata(path: Path, entries: Mapping[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    with atomic_path(path) as tmp:
        onnx.save(model, tmp)


def _export(module, example, input_names, output_names, dynamic, metadata, stem, folder, precisions) -> List[Path]:
    """Trace ``module`` on ``example`` into ``folder/STEM.fp32.onnx`` and its int8 variant (the
    ``precisions`` asked for; an fp32 graph not asked for is traced in a temporary folder, so an
    existing one is left alone), each with ``metadata``; returns the paths written."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = graph_file(folder if "fp32" in precisions else scratch, stem, "fp32")
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer notes every Python int it records; the sizes that must stay free are the
            # dynamic axes, and the tests run the graphs at other sizes than the traced ones
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # the vocoder's strided slices are left unfolded: nothing to fix, nothing lost
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            with atomic_path(fp32) as tmp:
                torch.onnx.export(
                    module,
                    example,
                    tmp,
                    input_names=list(input_names),
                    output_names=list(output_names),
                    dynamic_axes=dynamic,
                    opset_version=OPSET,
                    dynamo=False,
                )
        _write_metadata(fp32, {**metadata, "precision": "fp32", "opset": str(OPSET)})
        written = [fp32] if "fp32" in precisions else []
        if "int8" in precisions:
            int8 = graph_file(folder, stem, "int8")
            with atomic_path(int8) as tmp:
                quantize_int8(fp32, tmp)
            _write_metadata(int8, {**metadata, "precision": "int8", "opset": str(OPSET)})
            written.append(int8)
    return written


def export_encoder(model, source_dictionary, st_dictionary, folder, precisions=PRECISIONS) -> List[Path]:
    """The encoder step of ``model`` (an Emformer's, :mod:`.encoder_graph`, or a Zipformer's,
    :mod:`.zipformer_graph`) as ``encoder_step.<precision>.onnx`` files in ``folder``, with their
    metadata; returns the paths written."""
    graph = encoder_step_graph(model).eval()
    p = next(graph.parameters())
    dynamic = {name: {0: "streams"} for name in graph.input_names + graph.output_names}
    if isinstance(graph, EncoderStepGraph):  # the Emformer's graph takes a chunk of any length
        dynamic["frames"] = {0: "streams", 1: "chunk_and_lookahead"}
        for name in ("encoder_out", "asr_logits", "st_logits"):
            dynamic[name] = {0: "streams", 1: "chunk"}
    metadata = encoder_metadata(graph, source_dictionary, st_dictionary)
    return _export(
        graph,
        graph.example_inputs(2, p.dtype),
        graph.input_names,
        graph.output_names,
        dynamic,
        metadata,
        "encoder_step",
        folder,
        precisions,
    )


def export_mt_decoder(model, target_dictionary, folder, precisions=PRECISIONS) -> List[Path]:
    """The MT decoder's step (see :mod:`.mt_graph`) as ``mt_decoder_step.<precision>.onnx`` files."""
    decoder = model.decoder.eval()
    graph = MTDecoderStepGraph(decoder).eval()
    num_layers = len(decoder.layers)
    attn = decoder.layers[0].self_attn
    B, P, S = 2, 3, 5
    p = next(decoder.parameters())
    gen = torch.Generator().manual_seed(0)
    caches = []
    for _ in range(num_layers):
        for width in (P, P, S, S):
            caches.append(torch.randn(B, attn.num_heads, width, attn.head_dim, generator=gen).to(p.dtype))
    valid = lambda n: torch.arange(n).unsqueeze(0) >= torch.tensor([[1], [0]])  # noqa: E731 (row 0 padded once)
    example = (torch.tensor([4, 5]), torch.tensor([2, 3]), valid(P), valid(S), *caches)
    names_in, names_out = mt_input_names(num_layers), mt_output_names(num_layers)
    dynamic = {name: {0: "streams"} for name in names_in + names_out}
    dynamic["self_valid"], dynamic["memory_valid"] = {0: "streams", 1: "inputs"}, {0: "streams", 1: "frames"}
    for name in names_in[4:]:
        dynamic[name] = {0: "streams", 2: "inputs" if name.startswith("self") else "frames"}
    metadata = mt_metadata(decoder, target_dictionary)
    return _export(graph, example, names_in, names_out, dynamic, metadata, "mt_decoder_step", folder, precisions)


def export_unit_stage(model, unit_dictionary, folder, precisions=PRECISIONS) -> List[Path]:
    """T2U's step and the unit decoder's step (see :mod:`.unit_graphs`) as
    ``t2u_step.<precision>.onnx`` and ``unit_decoder_step.<precision>.onnx`` files."""
    gen = torch.Generator().manual_seed(0)
    B, P, S = 2, 3, 5
    written = []
    for stem, graph, layers, cross in (
        ("t2u_step", T2UStepGraph(model.t2u_encoder.eval()), model.t2u_encoder.layers, False),
        ("unit_decoder_step", UnitDecoderStepGraph(model.unit_decoder.eval()), model.unit_decoder.layers, True),
    ):
        graph = graph.eval()
        attn = layers[0].self_attn
        p = next(graph.parameters())
        T = model.unit_decoder.upsample_rate if cross else 1
        width = attn.q_proj.in_features
        if not cross and isinstance(model.t2u_encoder.proj, torch.nn.Linear):
            width = model.t2u_encoder.proj.in_features
        x = torch.randn(B, T, width, generator=gen).to(p.dtype)
        # row 0 holds one cached position fewer (left padding)
        valid = torch.arange(P + T).unsqueeze(0) >= torch.tensor([[1], [0]])
        self_mask = valid.unsqueeze(1) & torch.ones(T, P + T, dtype=torch.bool).tril(P).unsqueeze(0)
        example = [x, self_mask]
        if cross:
            example.append((torch.arange(S).unsqueeze(0) >= torch.tensor([[2], [0]])).unsqueeze(1).expand(-1, T, -1))
        for _ in layers:
            for size in (P, P) + ((S, S) if cross else ()):
                example.append(torch.randn(B, attn.num_heads, size, attn.head_dim, generator=gen).to(p.dtype))
        names_in, names_out = unit_graph_names(len(layers), cross)
        dynamic = {name: {0: "streams", 2: "positions"} for name in names_out}
        dynamic[names_out[0]] = {0: "streams", 1: "positions"}
        dynamic["x"] = {0: "streams", 1: "positions"}
        dynamic["self_mask"] = {0: "streams", 1: "positions", 2: "keys"}
        dynamic["memory_mask"] = {0: "streams", 1: "positions", 2: "memory"}
        for name in names_in:
            if name.startswith(("self_key", "self_value", "cross_key", "cross_value")):
                dynamic[name] = {0: "streams", 2: "cached" if name.startswith("self") else "memory"}
        dynamic = {name: axes for name, axes in dynamic.items() if name in names_in + names_out}
        metadata = (
            unit_decoder_metadata(model.unit_decoder, unit_dictionary) if cross else t2u_metadata(model.t2u_encoder)
        )
        written += _export(graph, tuple(example), names_in, names_out, dynamic, metadata, stem, folder, precisions)
    return written


def export_steps(model, dictionaries, folder, precisions=PRECISIONS) -> List[Path]:
    """Every streaming step graph of ``model`` (the encoder's, the MT decoder's, T2U's and the
    unit decoder's), as ``echostream-export`` writes them; ``dictionaries`` has the model's
    ``source``, ``st``, ``target`` and ``unit`` dictionaries as attributes."""
    model = model.eval()
    paths = export_encoder(model, dictionaries.source, dictionaries.st, folder, precisions)
    paths += export_mt_decoder(model, dictionaries.target, folder, precisions)
    return paths + export_unit_stage(model, dictionaries.unit, folder, precisions)


def export_vocoder(vocoder, folder) -> List[Path]:
    """A CodeHiFiGAN's generator, HiFi-GAN or iSTFT (see
    :mod:`~echostream_fairseq.vocoder.generator_graph`), as ``vocoder.fp32.onnx``: fp32 only, as
    ``--model-dtype int8`` keeps the vocoder fp32 (a HiFi-GAN's products are convolutions, which
    onnxruntime's dynamic quantisation leaves alone, and the iSTFT's phases need fp32)."""
    from echostream_fairseq.vocoder.generator_graph import GeneratorGraph

    graph = GeneratorGraph(vocoder).eval()
    example = (torch.zeros(2, 16, dtype=torch.long), torch.tensor([16, 9]))
    dynamic = {"frames": {0: "streams", 1: "frames"}, "lengths": {0: "streams"}, "audio": {0: "streams", 1: "samples"}}
    metadata = vocoder_metadata(vocoder)
    return _export(graph, example, VOCODER_INPUT_NAMES, ("audio",), dynamic, metadata, "vocoder", folder, ("fp32",))


def read_metadata(path) -> Dict[str, str]:
    """A graph file's metadata (a ``ValueError`` for a missing file or one that is not an ONNX model)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no graph at {path}: export one with echostream-export")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and friends for a damaged file
        raise ValueError(f"{path} is not an ONNX graph ({type(err).__name__}: {err})") from None
    return {p.key: p.value for p in model.metadata_props}


def session_options(threads: Optional[int] = None):
    """onnxruntime's options for a process that also runs torch: as many threads as torch's pool,
    and no spinning, so onnxruntime's idle threads do not take the cores torch's next operation
    needs (docs/export.md)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def open_graph(path, expected: Mapping[str, str], input_names=INPUT_NAMES, threads: Optional[int] = None):
    """An onnxruntime session on the graph at ``path`` once its metadata matches ``expected``
    (:func:`~.metadata.check_metadata`; with a ``precision`` entry, that too) and its inputs are
    ``input_names``, the ones this package feeds."""
    import onnxruntime as ort

    found = read_metadata(path)
    check_metadata(found, expected, str(path))
    session = ort.InferenceSession(os.fspath(path), session_options(threads), providers=["CPUExecutionProvider"])
    names = tuple(i.name for i in session.get_inputs())
    if names != tuple(input_names):
        raise ValueError(f"{path} takes inputs {list(names)}; this package feeds it {list(input_names)}")
    return session
