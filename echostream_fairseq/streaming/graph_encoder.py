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

from echostream_fairseq.common.audio import ENCODER_FRAME_MS
from echostream_fairseq.export.encoder_graph import encoder_step_graph
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
    graph: object  # the graph module's state: EncoderGraphState or ZipformerGraphState
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
        # its states and inputs only; the session computes
        self._graph = encoder_step_graph(setup.model)
        traced = session.get_modelmeta().custom_metadata_map.get("graph_chunk_length")
        if traced is not None and int(traced) != setup.chunk_length:
            raise ValueError(
                f"this Zipformer's encoder graph steps chunks of {traced} encoder frames (the chunk it "
                f"was exported at), and this translator steps {setup.chunk_length}: run with "
                f"--encoder-chunk-ms {int(traced) * ENCODER_FRAME_MS}, or export again at this chunk"
            )

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
            inputs, real = self._graph.chunk_inputs(chunk, right_context)
            feeds = {n: _array(t) for n, t in inputs.items()}
            feeds.update((n, _array(t)) for n, t in zip(self._graph.state_names, graph.tensors()))
            result = [torch.from_numpy(a) for a in self.session.run(None, feeds)]
            outputs.append([t[:, :real] for t in result[:3]])
            graph = self._graph.state_from(result[3:])
        if outputs:
            out, asr_logits, st_logits = (torch.cat(parts, dim=1) for parts in zip(*outputs))
        else:
            B = features.size(0)
            out = pending.new_zeros(B, 0, encoder.output_dim)
            d = self.setup.dictionaries
            asr_logits = pending.new_zeros(B, 0, len(d.source))
            st_logits = pending.new_zeros(B, 0, len(d.st))
        return EncodedChunk(out, asr_logits, st_logits, GraphEncoderState(subsampler, pending, graph, finish))
