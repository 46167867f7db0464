"""The encoder stage's runtime on an exported graph: the subsampler in torch (its two small
convolutions and their caches), then the encoder-step graph of ``echostream-export`` under
onnxruntime, one call per encoder chunk, for a whole batch of streams.

The graph's state has fixed shapes (:mod:`~echostream_fairseq.export.encoder_graph`), so streams
at any point of their stream stack into one call; its outputs equal :class:`TorchEncoder`'s within
rounding (tests/streaming/test_graph_runtime.py states the tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from echostream_fairseq.export.encoder_graph import STATE_NAMES, EncoderGraphState, EncoderStepGraph
from echostream_fairseq.modules.subsampler import SubsamplerState
from echostream_fairseq.streaming.encoding import EncodedChunk
from echostream_fairseq.streaming.setup import TranslatorSetup

__all__ = ["GraphEncoder", "GraphEncoderState"]


@dataclass(frozen=True)
class GraphEncoderState:
    """:class:`GraphEncoder`'s state: the subsampler's caches, the subsampled frames waiting for
    a whole chunk ``[B, t, D]``, the graph's state, and whether the stream was finished."""

    subsampler: SubsamplerState
    pending: Tensor
    graph: EncoderGraphState
    finished: bool


def _array(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.numpy())


class GraphEncoder:
    """Args:
    setup: the translator's :class:`TranslatorSetup` (an fp32 model on the CPU).
    session: an onnxruntime session on the model's encoder-step graph, its metadata checked
        (:func:`~echostream_fairseq.streaming.graphs.open_graphs`).
    """

    def __init__(self, setup: TranslatorSetup, session) -> None:
        if setup.device.type != "cpu" or setup.dtype != torch.float32:
            raise ValueError(
                f"--runtime onnx runs on the CPU with fp32 activations (--model-dtype fp32 or int8); "
                f"this translator runs {setup.dtype} on {setup.device}"
            )
        self.setup = setup
        self.session = session
        self._graph = EncoderStepGraph(setup.model)  # its initial state only; the session computes

    def initial_state(self) -> GraphEncoderState:
        speech = self.setup.model.encoder.initial_state(1)
        return GraphEncoderState(
            speech.subsampler, speech.pending, self._graph.initial_state(1, torch.device("cpu"), torch.float32), False
        )

    def step(self, features: Tensor, state: GraphEncoderState, finish: bool) -> EncodedChunk:
        """fbank frames ``[B, t, C]`` -> :class:`EncodedChunk` (as :class:`TorchEncoder`)."""
        if not isinstance(state, GraphEncoderState):
            raise ValueError(f"state must be a GraphEncoderState, got {type(state).__name__}")
        if state.finished:
            raise ValueError("the stream is finished; start a new one with initial_state()")
        encoder = self.setup.encoder()
        frames, subsampler = encoder.embed_step(features, state.subsampler)
        chunks, pending = encoder.backbone_chunks(torch.cat([state.pending, frames], dim=1), finish)
        graph = state.graph
        outputs = []
        for chunk, right_context in chunks:
            x = chunk if right_context is None else torch.cat([chunk, right_context], dim=1)
            feeds = {"frames": _array(x), **{n: _array(t) for n, t in zip(STATE_NAMES, graph.tensors())}}
            result = [torch.from_numpy(a) for a in self.session.run(None, feeds)]
            outputs.append(result[:3])
            graph = EncoderGraphState(*result[3:])
        if outputs:
            out, asr_logits, st_logits = (torch.cat(parts, dim=1) for parts in zip(*outputs))
        else:
            B = features.size(0)
            out = pending.new_zeros(B, 0, encoder.output_dim)
            d = self.setup.dictionaries
            asr_logits = pending.new_zeros(B, 0, len(d.source))
            st_logits = pending.new_zeros(B, 0, len(d.st))
        return EncodedChunk(out, asr_logits, st_logits, GraphEncoderState(subsampler, pending, graph, finish))
