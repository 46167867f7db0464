"""Units and speech, the last stages of
:class:`~echostream_fairseq.streaming.translator.SimultaneousTranslator`: T2U and the unit CTC
decoder on new text states, then the incremental vocoder, for one stream or many at once.

A mixin of the translator (its attributes: ``model``, ``config``, ``vocoder``, ``unit_ids``,
``unit_banned``, ``tgt_dict``, ``device``), kept apart so each file stays small. Many streams share
one vocoder call (:meth:`~echostream_fairseq.vocoder.incremental.IncrementalVocoder.step_batch`);
each stream's speech equals its speech alone.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from echostream_fairseq.modules.ctc import ctc_collapse, ctc_greedy, ctc_labels
from echostream_fairseq.streaming.stage_clock import StageClock, credit_share
from echostream_fairseq.streaming.translator_state import TranslatorState

__all__ = ["Speaking"]


class Speaking:
    """The translator's unit and speech steps (see the module docstring)."""

    def _units_batch(
        self,
        items: Sequence[Tuple[TranslatorState, Optional[Tensor], Optional[Tensor], bool]],
        clocks: Sequence[Optional[StageClock]],
    ):
        """New units (unit dictionary indices), their vocoder ids and the state of each of several
        streams, ``(state, text states, encoder frames, flush)`` each (``flush``: the text is
        complete, no held-back state waits for more). In incremental mode T2U and the unit decoder
        run once for all of them, their linear layers over every stream's new positions packed
        together (each stream's units equal its own alone)."""
        started = time.perf_counter()
        results: List = [None] * len(items)
        together = []
        for i, (state, text_states, enc, flush) in enumerate(items):
            if text_states is None and not (flush and state.unit_pending is not None):
                results[i] = ([], state)
            elif self.config.reencode:
                results[i] = self._reencode_units(state, enc, flush)
            else:
                together.append(i)
        if together:
            for i, result in zip(together, self._units_for([items[i] for i in together])):
                results[i] = result
        credit_share(clocks, range(len(items)), "units", started)
        return [(units, [self.unit_ids[u] for u in units if u in self.unit_ids], state) for units, state in results]

    def _speech(
        self, items: Sequence[Tuple[List[int], TranslatorState, bool]], clocks: Sequence[Optional[StageClock]]
    ) -> List[Tuple[Tensor, TranslatorState]]:
        """Speech for ``(vocoder ids, state, finish)`` of each stream; incremental streams share
        vocoder calls, each credited an equal share of their time."""
        if self.config.reencode:
            out = []
            for (ids, state, finish), clock in zip(items, clocks):
                out.append(self._reencode_speech(state, ids, finish))
                if clock:
                    clock.mark("vocoder")
            return out
        started = time.perf_counter()
        spoken = self.vocoder.step_batch([(ids, state.vocoder, finish) for ids, state, finish in items])
        credit_share(clocks, range(len(items)), "vocoder", started)
        return [
            (wave, replace(state, vocoder=voc_state, units_emitted=state.units_emitted + len(ids)))
            for (ids, state, _), (wave, voc_state) in zip(items, spoken)
        ]

    def _units_for(self, items: Sequence[Tuple[TranslatorState, Optional[Tensor], Optional[Tensor], bool]]):
        """T2U + unit CTC for each stream's new text states ``[1, n, D]`` (causal: earlier units never
        change): ``(units, state)`` each.

        With ``unit_lookahead`` k, the units of a text state wait until the k states after it have
        arrived (``flush``: the text is complete, every state is ready)."""
        window, k = self.config.target_window, self.config.unit_lookahead
        writing = [i for i, (_, text, _, _) in enumerate(items) if text is not None]
        text_out: List[Optional[Tensor]] = [None] * len(items)
        t2u_caches = [state.t2u_caches for state, _, _, _ in items]
        if writing:
            outs, caches = self.model.t2u_encoder.step_packed(
                [items[i][1] for i in writing], [t2u_caches[i] for i in writing], window
            )
            for i, out, cache in zip(writing, outs, caches):
                text_out[i], t2u_caches[i] = out, cache
        steps, plans = [], []
        for i, (state, _, _, flush) in enumerate(items):
            pending = state.unit_pending
            if text_out[i] is not None:
                pending = text_out[i] if pending is None else torch.cat([pending, text_out[i]], dim=1)
            held = 0 if flush else min(k, pending.size(1))
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
        logits, unit_caches = self.model.unit_decoder.step_packed(steps, window, lookahead=k)
        # every stream's best units in one product (the streams' positions packed along time)
        labels = ctc_labels(torch.cat([piece[0] for piece in logits]).float(), self.unit_banned)
        ends = [0] + list(itertools.accumulate(piece.size(1) for piece in logits))
        results = []
        for i, (state, _, _, _) in enumerate(items):
            pending, held, ready = plans[i]
            units, last, _ = ctc_collapse(labels[ends[i] : ends[i + 1]], state.unit_last)
            results.append(
                (
                    units,
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

    def _reencode_units(self, state: TranslatorState, frames: Tensor, flush: bool):
        """StreamSpeech's way: decoder states, T2U and units of the whole text, every time (the
        last ``unit_lookahead`` text states' units wait, as in incremental mode)."""
        eos, k = self.tgt_dict.eos(), self.config.unit_lookahead
        tokens = list(state.target_tokens) if flush else list(state.target_tokens[:-1])
        prev = torch.tensor([[eos] + tokens], device=self.device)
        enc = {"encoder_out": [frames.transpose(0, 1)], "encoder_padding_mask": []}
        hidden, _ = self.model.decoder(prev, enc, features_only=True)
        logits = self.model.text_to_units(hidden, torch.tensor([prev.size(1)], device=self.device), k, 1)["unit_logits"]
        ready = prev.size(1) if flush else max(0, prev.size(1) - k)
        logits = logits[:, : ready * self.model.unit_decoder.upsample_rate]
        units = ctc_greedy(logits.float(), torch.tensor([logits.size(1)], device=self.device), self.unit_banned)[0]
        new = units[len(state.all_units) :]
        return new, replace(state, all_units=tuple(units))

    def _reencode_speech(self, state: TranslatorState, new_ids: List[int], finish: bool):
        """Re-synthesise every unit and keep the audio of the new ones (StreamSpeech's vocoder call)."""
        if not new_ids:
            return torch.zeros(0), state
        voc = self.vocoder.vocoder
        all_ids = torch.tensor([self.unit_ids[u] for u in state.all_units if u in self.unit_ids])
        if self.vocoder.dur_prediction:
            durations = voc.durations(all_ids)
            frames = torch.repeat_interleave(all_ids, durations)
            new_frames = int(durations[-len(new_ids) :].sum())
        else:
            frames, new_frames = all_ids, len(new_ids)
        wave = voc.synthesize_frames(frames)
        return wave[wave.numel() - new_frames * voc.frame_hop :], replace(
            state, units_emitted=state.units_emitted + len(new_ids)
        )
