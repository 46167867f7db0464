"""T2U's step and the unit decoder's step, for many streams in one call, as traceable
modules over left-padded caches (the layer stacks of
:class:`~echostream_fairseq.models.unit_decoder.T2UEncoder` and
:class:`~echostream_fairseq.models.unit_decoder.CTCUnitDecoder`).

The caller builds the masks, so the windows, the wait-k lookahead and the padding are its
business, not the graph's: a graph is the layers, the final norm and the output projection. A
call takes every new position of every stream: streams with fewer new positions are padded on the
right, and their padded positions, which no real one sees, are dropped by the caller.
The unit decoder's inputs are already upsampled (each text state repeated ``r`` times, positions
added), and projecting new text states into its cross-attention memory stays with the caller,
as the MT decoder's memory does.

Inputs (``B`` streams, ``T`` new positions: the most new text states of a stream, times ``r`` for
the unit decoder; ``L`` layers, ``H`` heads of ``d`` channels, ``P`` cached positions, ``S`` memory
states; both left-padded):

==========================================  =====================  =====
name                                        shape                  dtype
==========================================  =====================  =====
``x``                                       ``[B, T, D_in]``       float
``self_mask``                               ``[B, T, P + T]``      bool
``memory_mask`` (unit decoder)              ``[B, T, S]``          bool
``self_key.i``, ``self_value.i`` (layer i)  ``[B, H, P, d]``       float
``cross_key.i``, ``cross_value.i`` (u.d.)   ``[B, H, S, d]``       float
==========================================  =====================  =====

Outputs: ``out`` (T2U's states ``[B, T, D]``) or ``logits`` (the unit decoder's ``[B, T, V]``),
then per layer the new positions' ``new_key.i``, ``new_value.i`` ``[B, H, T, d]``.
"""

from __future__ import annotations

from typing import Tuple

from torch import Tensor, nn

from echostream_fairseq.modules.transformer_layer import LayerCache

__all__ = ["T2UStepGraph", "UnitDecoderStepGraph", "unit_graph_names"]


def unit_graph_names(num_layers: int, cross: bool) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """The input and output names of T2U's graph (``cross=False``) or the unit decoder's."""
    inputs = ("x", "self_mask") + (("memory_mask",) if cross else ())
    parts = ("self_key", "self_value") + (("cross_key", "cross_value") if cross else ())
    inputs += tuple(f"{part}.{i}" for i in range(num_layers) for part in parts)
    outputs = ("logits" if cross else "out",) + tuple(
        f"{part}.{i}" for i in range(num_layers) for part in ("new_key", "new_value")
    )
    return inputs, outputs


def _layers_step(layers, x: Tensor, self_mask: Tensor, memory_mask, caches) -> Tuple[Tensor, list]:
    """``x`` through ``layers`` over the given caches; the new positions' keys and values."""
    per_layer = len(caches) // len(layers)
    new = []
    for i, layer in enumerate(layers):
        cache = LayerCache(*caches[i * per_layer : (i + 1) * per_layer])
        x, cache = layer(x, self_mask, None, memory_mask, cache)
        new += [cache.self_key[:, :, -x.size(1) :], cache.self_value[:, :, -x.size(1) :]]
    return x, new


class T2UStepGraph(nn.Module):
    """Args: ``t2u_encoder``: the model's :class:`~echostream_fairseq.models.unit_decoder.T2UEncoder`."""

    def __init__(self, t2u_encoder: nn.Module) -> None:
        super().__init__()
        self.t2u_encoder = t2u_encoder

    def forward(self, x: Tensor, self_mask: Tensor, *caches: Tensor):
        """Inputs and outputs in :func:`unit_graph_names` order (``cross=False``)."""
        t2u = self.t2u_encoder
        y, new = _layers_step(t2u.layers, t2u.proj(x), self_mask, None, caches)
        return (t2u.final_norm(y), *new)


class UnitDecoderStepGraph(nn.Module):
    """Args: ``unit_decoder``: the model's :class:`~echostream_fairseq.models.unit_decoder.CTCUnitDecoder`."""

    def __init__(self, unit_decoder: nn.Module) -> None:
        super().__init__()
        self.unit_decoder = unit_decoder

    def forward(self, x: Tensor, self_mask: Tensor, memory_mask: Tensor, *caches: Tensor):
        """Inputs and outputs in :func:`unit_graph_names` order (``cross=True``)."""
        decoder = self.unit_decoder
        y, new = _layers_step(decoder.layers, x, self_mask, memory_mask, caches)
        return (decoder.proj(decoder.final_norm(y)), *new)
