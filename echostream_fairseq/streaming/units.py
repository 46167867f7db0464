"""The units' stage: T2U and the unit CTC decoder on each stream's new text states, for many streams
at once (their linear layers over every stream's new positions packed together; each stream's units
equal its own alone). Causal: earlier units never change. With a unit refiner, the new units the
CTC is unsure of are predicted again, from the sentence's units so far and its T2U states, before
they are voiced.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from echostream_fairseq.modules.ctc import CTC_BLANK, ctc_best, ctc_collapse, ctc_labels, ctc_token_confidences
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
        refiner: a :class:`~echostream_fairseq.models.unit_refiner.UnitRefiner` (``None``: none).
    """

    def __init__(self, setup: TranslatorSetup, t2u_encoder=None, unit_decoder=None, refiner=None) -> None:
        self.t2u_encoder = setup.model.t2u_encoder if t2u_encoder is None else t2u_encoder
        self.unit_decoder = setup.model.unit_decoder if unit_decoder is None else unit_decoder
        self.refiner = refiner
        self.config = setup.config
        self.rules = setup.rules
        # the refiner's context, as far back as the unit decoder's own windows reach (0: the sentence)
        window = self.config.target_window
        self.refiner_text_window = window + self.config.unit_lookahead if window else 0
        self.refiner_unit_window = window * setup.model.unit_decoder.upsample_rate if window else 0

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
        frames = torch.cat([piece[0] for piece in logits]).float()
        if self.refiner is None:
            labels, probabilities = ctc_labels(frames, self.rules.unit_banned), None
        else:
            labels, probabilities = ctc_best(frames, self.rules.unit_banned)
        ends = [0] + list(itertools.accumulate(piece.size(1) for piece in logits))
        results = []
        for i, request in enumerate(requests):
            state = request.state
            pending, held, ready = plans[i]
            frame_labels = labels[ends[i] : ends[i + 1]]
            units, last, _ = ctc_collapse(frame_labels, state.unit_last)
            refined = {}
            if self.refiner is not None:
                units, refined = self._refine(
                    state, units, frame_labels, probabilities[ends[i] : ends[i + 1]], text_out[i]
                )
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
                        **refined,
                    ),
                )
            )
        return results

    def _refine(self, state: TranslatorState, units, frame_labels, probabilities, new_text: Optional[Tensor]):
        """The new units with those at or below the confidence threshold predicted again, and the
        refiner's context after them (state fields)."""
        text = state.refiner_text
        if new_text is not None:
            text = new_text if text is None else torch.cat([text, new_text], dim=1)
            if self.refiner_text_window:
                text = text[:, -self.refiner_text_window :]
        context = list(state.refiner_units)
        if units:
            confidences = ctc_token_confidences(frame_labels, probabilities, state.unit_last)
            masked = [False] * len(context) + [c <= self.config.unit_refiner_threshold for c in confidences]
            never = [*self.rules.unit_banned, CTC_BLANK]  # a refined unit is a unit
            units = self.refiner.refine(context + units, masked, text, never)[len(context) :]
        context += units
        if self.refiner_unit_window:
            context = context[-self.refiner_unit_window :]
        return units, dict(refiner_text=text, refiner_units=tuple(context))
