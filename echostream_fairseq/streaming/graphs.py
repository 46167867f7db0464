"""The graphs of ``echostream-export`` a translator runs on (``--runtime onnx``), opened together
and checked against the model (and the vocoder) they must come from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from echostream_fairseq.export.encoder_graph import encoder_step_graph
from echostream_fairseq.export.metadata import (
    encoder_metadata,
    mt_metadata,
    t2u_metadata,
    unit_decoder_metadata,
    vocoder_metadata,
)
from echostream_fairseq.export.mt_graph import mt_input_names
from echostream_fairseq.export.onnx_files import VOCODER_INPUT_NAMES, graph_file, open_graph
from echostream_fairseq.export.unit_graphs import unit_graph_names
from echostream_fairseq.streaming.options import GRAPH_STAGES
from echostream_fairseq.streaming.setup import Dictionaries
from echostream_fairseq.vocoder.generator_graph import graph_refusal
from echostream_fairseq.vocoder.incremental import IncrementalVocoder

__all__ = ["Graphs", "open_graphs", "run_vocoder_on_graph"]


@dataclass(frozen=True, eq=False)
class Graphs:
    """onnxruntime sessions, ``None`` for a stage left in torch: ``encoder`` on the encoder step
    with both CTC heads, ``mt_decoder`` on the MT decoder's step, ``t2u`` and ``unit_decoder`` on
    the units' stage."""

    encoder: Optional[object] = None
    mt_decoder: Optional[object] = None
    t2u: Optional[object] = None
    unit_decoder: Optional[object] = None


def open_graphs(model, dictionaries: Dictionaries, folder, precision: str, stages=GRAPH_STAGES) -> Graphs:
    """``folder``'s graphs of ``precision`` for ``stages`` (of :data:`GRAPH_STAGES`; ``vocoder`` is
    :func:`run_vocoder_on_graph`'s), each refused unless it was exported from ``model`` (its fp32
    weights: call this before converting the model's precision) with these dictionaries."""
    graphs = {}
    if "encoder" in stages:
        step_graph = encoder_step_graph(model)
        graphs["encoder"] = open_graph(
            graph_file(folder, "encoder_step", precision),
            {**encoder_metadata(step_graph, dictionaries.source, dictionaries.st), "precision": precision},
            step_graph.input_names,
        )
    if "mt" in stages:
        decoder = model.decoder
        graphs["mt_decoder"] = open_graph(
            graph_file(folder, "mt_decoder_step", precision),
            {**mt_metadata(decoder, dictionaries.target), "precision": precision},
            mt_input_names(len(decoder.layers)),
        )
    if "units" in stages:
        graphs["t2u"] = open_graph(
            graph_file(folder, "t2u_step", precision),
            {**t2u_metadata(model.t2u_encoder), "precision": precision},
            unit_graph_names(len(model.t2u_encoder.layers), cross=False)[0],
        )
        graphs["unit_decoder"] = open_graph(
            graph_file(folder, "unit_decoder_step", precision),
            {**unit_decoder_metadata(model.unit_decoder, dictionaries.unit), "precision": precision},
            unit_graph_names(len(model.unit_decoder.layers), cross=True)[0],
        )
    return Graphs(**graphs)


def run_vocoder_on_graph(vocoder: IncrementalVocoder, folder) -> bool:
    """Make ``vocoder`` synthesise through ``folder``'s vocoder graph, refused unless it was
    exported from this vocoder; ``False`` (and the vocoder left in torch) for a vocoder that has no
    graph form (:func:`~echostream_fairseq.vocoder.generator_graph.graph_refusal`)."""
    unit_vocoder = vocoder.vocoder
    if graph_refusal(unit_vocoder) is not None:
        return False
    path = graph_file(folder, "vocoder", "fp32")
    if not path.is_file():
        raise ValueError(
            f"no graph at {path}: under --runtime onnx this vocoder runs on its graph; export it with "
            f"echostream-export --vocoder G --vocoder-cfg C"
        )
    session = open_graph(path, vocoder_metadata(unit_vocoder), VOCODER_INPUT_NAMES)
    unit_vocoder.run_on_graph(session)
    return True
