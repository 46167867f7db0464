"""The graphs of ``echostream-export`` a translator runs on (``--runtime onnx``), opened together
and checked against the model (and the vocoder) they must come from."""

from __future__ import annotations

from dataclasses import dataclass

from echostream_fairseq.export.encoder_graph import EncoderStepGraph
from echostream_fairseq.export.metadata import encoder_metadata, mt_metadata, vocoder_metadata
from echostream_fairseq.export.mt_graph import mt_input_names
from echostream_fairseq.export.onnx_files import VOCODER_INPUT_NAMES, graph_file, open_graph
from echostream_fairseq.streaming.setup import Dictionaries
from echostream_fairseq.vocoder.generator_graph import graph_refusal
from echostream_fairseq.vocoder.incremental import IncrementalVocoder

__all__ = ["Graphs", "open_graphs", "run_vocoder_on_graph"]


@dataclass(frozen=True, eq=False)
class Graphs:
    """onnxruntime sessions: ``encoder`` on the encoder step with both CTC heads, ``mt_decoder``
    on the MT decoder's step."""

    encoder: object
    mt_decoder: object


def open_graphs(model, dictionaries: Dictionaries, folder, precision: str) -> Graphs:
    """``folder``'s graphs of ``precision``, each refused unless it was exported from ``model``
    (its fp32 weights: call this before converting the model's precision) with these
    dictionaries."""
    encoder = open_graph(
        graph_file(folder, "encoder_step", precision),
        {**encoder_metadata(EncoderStepGraph(model), dictionaries.source, dictionaries.st), "precision": precision},
    )
    decoder = model.decoder
    mt_decoder = open_graph(
        graph_file(folder, "mt_decoder_step", precision),
        {**mt_metadata(decoder, dictionaries.target), "precision": precision},
        mt_input_names(len(decoder.layers)),
    )
    return Graphs(encoder, mt_decoder)


def run_vocoder_on_graph(vocoder: IncrementalVocoder, folder) -> bool:
    """Make ``vocoder`` synthesise through ``folder``'s vocoder graph, refused unless it was
    exported from this vocoder; ``False`` (and the vocoder left in torch) for a vocoder that has no
    graph form (:func:`~echostream_fairseq.vocoder.generator_graph.graph_refusal`)."""
    unit_vocoder = vocoder.vocoder
    if graph_refusal(unit_vocoder) is not None:
        return False
    session = open_graph(graph_file(folder, "vocoder", "fp32"), vocoder_metadata(unit_vocoder), VOCODER_INPUT_NAMES)
    unit_vocoder.run_on_graph(session)
    return True
