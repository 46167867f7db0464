"""The graphs of ``echostream-export`` a translator runs on (``--runtime onnx``), opened together
and checked against the model they must come from."""

from __future__ import annotations

from dataclasses import dataclass

from echostream_fairseq.export.encoder_graph import EncoderStepGraph
from echostream_fairseq.export.metadata import encoder_metadata, mt_metadata
from echostream_fairseq.export.mt_graph import mt_input_names
from echostream_fairseq.export.onnx_files import graph_file, open_graph
from echostream_fairseq.streaming.setup import Dictionaries

__all__ = ["Graphs", "open_graphs"]


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
