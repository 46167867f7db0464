"""The units' stage: T2U and the unit CTC decoder on each stream's new text states, for many streams
at once (their linear layers over every stream's new positions packed together; each stream's units
equal its own alone). Causal: earlier units never change.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from echostream_fairseq.modules.ctc import ctc_collapse, ctc_labels
from echostream_fairseq.streaming.setup import TranslatorSetup
from echostream_fairseq.streaming.translator_state import TranslatorState

__all__ = ["UnitRequest", "Units", "UnitWriter"]


@dataclass(frozen=True)
class UnitRequest:
    """Attributes:
    state: the stream's state.
    text_states: ``[1, n, D]`` its new text states (``None``: none).
    flush: the text is complete (a sentence or the source ended): no state waits for more.
    """

    state: TranslatorState
    text_states: Optional[Tensor]
    flush: bool


@dataclass(frozen=True)
class Units:
    """Attributes:
    units: the new units (unit dictionary indices).
    vocoder_ids: the vocoder's unit numbers of those it knows.
    state: the stream's state after them.
    """

    units: List[int]
    vocoder_ids: List[int]
    state: TranslatorState


class UnitWriter:
    """With ``unit_lookahead`` k, the units of a text state wait until the k states after it have
    arrived (a subword's sound depends on the next one).

    Args:
        setup: the translator's setup.
        t2u_encoder, unit_decoder: what steps T2U and the unit decoder (their ``step_packed``):
            the model's own (``None``) or their exported graphs
            (:mod:`~echostream_fairseq.streaming.graph_units`).
    """

    def __init__(self, setup: TranslatorSetup, t2u_encoder=None, unit_decoder=None) -> None:
        self.t2u_encoder = setup.model.t2u_encoder if t2u_encoder is None else t2u_encoder
        self.unit_decoder = setup.model.unit_decoder if unit_decoder is None else unit_decoder
        self.config = setup.config
        self.rules = setup.rules

    def step_batch(self, requests: Sequence[UnitRequest]) -> List[Units]:
        """Each stream's new units; the streams with nothing to voice are left as they are."""
        results: List[Optional[Units]] = [None] * len(requests)
        together = []
        for i, request in enumerate(requests):
            if request.text_states is None and not (request.flush and request.state.unit_pending is not None):
                results[i] = Units([], [], request.state)
            else:
                together.append(i)
        if together:
            for i, result in zip(together, self._step_together([requests[i] for i in together])):
                results[i] = result
        return results

    def _step_together(self, requests: Sequence[UnitRequest]) -> List[Units]:
        window, k = self.config.target_window, self.config.unit_lookahead
        writing = [i for i, request in enumerate(requests) if request.text_states is not None]
        text_out: List[Optional[Tensor]] = [None] * len(requests)
        t2u_caches = [request.state.t2u_caches for request in requests]
        if writing:
            outs, caches = self.t2u_encoder.step_packed(
                [requests[i].text_states for i in writing], [t2u_caches[i] for i in writing], window
            )
            for i, out, cache in zip(writing, outs, caches):
                text_out[i], t2u_caches[i] = out, cache
        steps, plans = [], []
        for i, request in enumerate(requests):
            state = request.state
            pending = state.unit_pending
            if text_out[i] is not None:
                pending = text_out[i] if pending is None else torch.cat([pending, text_out[i]], dim=1)
            held = 0 if request.flush else min(k, pending.size(1))
            ready = pending[:, : pending.size(1) - held]
            # no new text (a flush of held states): nothing joins the memory, which holds them already
            new_memory = ready[:, :0] if text_out[i] is None else text_out[i]
            steps.append(
                (
                    ready,
                    state.unit_caches,
                    state.voiced_state_count,
                    new_memory,
                    state.voiced_state_count + pending.size(1),
                )
            )
            plans.append((pending, held, ready))
        logits, unit_caches = self.unit_decoder.step_packed(steps, window, lookahead=k)
        # every stream's best units in one product (the streams' positions packed along time)
        labels = ctc_labels(torch.cat([piece[0] for piece in logits]).float(), self.rules.unit_banned)
        ends = [0] + list(itertools.accumulate(piece.size(1) for piece in logits))
        results = []
        for i, request in enumerate(requests):
            state = request.state
            pending, held, ready = plans[i]
            units, last, _ = ctc_collapse(labels[ends[i] : ends[i + 1]], state.unit_last)
            results.append(
                Units(
                    units,
                    self.rules.vocoder_ids(units),
                    replace(
                        state,
                        t2u_caches=t2u_caches[i],
                        unit_caches=unit_caches[i],
                        voiced_state_count=state.voiced_state_count + ready.size(1),
                        unit_pending=pending[:, pending.size(1) - held :] if held else None,
                        unit_last=last,
                    ),
                )
            )
        return results
