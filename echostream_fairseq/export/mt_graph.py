"""The MT decoder's incremental step, one input per stream over left-padded caches, as one
traceable module (the model's ``decoder.step_rows`` with its caches stacked over layers).

Inputs (``B`` streams, ``L`` layers, ``H`` heads of ``d`` channels, ``P`` earlier inputs, ``S``
memory frames; both left-padded, their valid masks say which positions are a row's own):

==========================================  ==================  =====
name                                        shape               dtype
==========================================  ==================  =====
``tokens``, ``positions``                   ``[B]``             int64
``self_valid``                              ``[B, P]``          bool
``memory_valid``                            ``[B, S]``          bool
``self_key.i``, ``self_value.i`` (layer i)  ``[B, H, P, d]``    float
``cross_key.i``, ``cross_value.i``          ``[B, H, S, d]``    float
==========================================  ==================  =====

Outputs: ``logits`` ``[B, V]``, ``hidden`` ``[B, 1, D]`` (what T2U reads), and per layer the new
input's ``new_key.i``, ``new_value.i`` ``[B, H, 1, d]``: the caller appends them to its caches
(and keeps the last ``target_window``), so the graph never copies a cache back out. The caches
are one input per layer, as the translator holds them, so feeding them copies nothing.
"""

from __future__ import annotations

from typing import Tuple

from torch import Tensor, nn

from echostream_fairseq.modules.transformer_layer import LayerCache

__all__ = ["MTDecoderStepGraph", "mt_input_names", "mt_output_names", "CACHE_PARTS"]

CACHE_PARTS = ("self_key", "self_value", "cross_key", "cross_value")


def mt_input_names(num_layers: int) -> Tuple[str, ...]:
    return ("tokens", "positions", "self_valid", "memory_valid") + tuple(
        f"{part}.{i}" for i in range(num_layers) for part in CACHE_PARTS
    )


def mt_output_names(num_layers: int) -> Tuple[str, ...]:
    return ("logits", "hidden") + tuple(f"{part}.{i}" for i in range(num_layers) for part in ("new_key", "new_value"))


class MTDecoderStepGraph(nn.Module):
    """Args: ``decoder``: the model's MT decoder (``model.decoder``)."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, tokens: Tensor, positions: Tensor, self_valid: Tensor, memory_valid: Tensor, *caches: Tensor):
        """Inputs in :func:`mt_input_names` order; outputs in :func:`mt_output_names` order."""
        layers = [LayerCache(*caches[i : i + 4]) for i in range(0, len(caches), 4)]
        logits, hidden, layers, _ = self.decoder.step_rows(tokens, positions, layers, self_valid, memory_valid, 0)
        new = []
        for c in layers:
            new += [c.self_key[:, :, -1:], c.self_value[:, :, -1:]]
        return (logits, hidden, *new)
