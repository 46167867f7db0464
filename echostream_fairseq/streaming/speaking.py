"""Units and speech, the last stages of
:class:`~echostream_fairseq.streaming.translator.SimultaneousTranslator`: T2U and the unit CTC
decoder on new text states, then the incremental vocoder, for one stream or many at once (T2U and
the unit decoder step the streams' new text states together over left-padded caches).

A mixin of the translator (its attributes: ``model``, ``config``, ``vocoder``, ``unit_ids``,
``unit_banned``, ``tgt_dict``, ``device``), kept apart so each file stays small. Many streams share
one vocoder call (:meth:`~echostream_fairseq.vocoder.incremental.IncrementalVocoder.step_batch`);
each stream's speech equals its speech alone.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from echostream_fairseq.modules.ctc import ctc_greedy, ctc_greedy_extend
from echostream_fairseq.modules.transformer_layer import pad_caches, unpad_row
from echostream_fairseq.streaming.stage_clock import StageClock, credit_share

if TYPE_CHECKING:
    from echostream_fairseq.streaming.translator import TranslatorState

__all__ = ["Speaking"]


class Speaking:
    """The translator's unit and speech steps (see the module docstring)."""

    def _speak(self, state: "TranslatorState", text_states: Optional[Tensor], enc: Optional[Tensor], finish: bool,
               clock: Optional[StageClock], sentence_done: bool = False):
        """Units for new text states, then their speech, for one stream: ``(units, wave, state)``."""
        units, unit_ids, state = self._units(state, text_states, enc, finish, clock, sentence_done)
        (wave, state), = self._speech([(unit_ids, state, finish)], [clock])
        return units, wave, state

    def _units(self, state: "TranslatorState", text_states: Optional[Tensor], enc: Optional[Tensor], finish: bool,
               clock: Optional[StageClock], sentence_done: bool = False):
        """New units (unit dictionary indices), their vocoder ids, and the state; ``sentence_done``:
        the text is complete (its end-of-sentence state included) though the stream goes on."""
        return self._units_all([(state, text_states, enc, finish or sentence_done)], [clock])[0]

    def _units_all(self, items: Sequence[Tuple["TranslatorState", Optional[Tensor], Optional[Tensor], bool]],
                   clocks: Sequence[Optional[StageClock]]):
        """:meth:`_units` for ``(state, text states, encoder frames, text complete)`` of each stream:
        the incremental streams with new text step T2U and the unit decoder together."""
        results: List = [None] * len(items)
        batch = []
        for i, ((state, text_states, enc, complete), clock) in enumerate(zip(items, clocks)):
            if text_states is None:
                results[i] = ([], state)
                if clock:
                    clock.mark("units")
            elif self.config.reencode:
                if clock:
                    clock.restart()
                results[i] = self._reencode_units(state, enc, complete)
                if clock:
                    clock.mark("units")
            else:
                batch.append(i)
        if batch:
            started = time.perf_counter()
            for i, out in zip(batch, self._units_batch([items[i][0] for i in batch], [items[i][1] for i in batch])):
                results[i] = out
            credit_share(clocks, batch, "units", started)
        return [(units, [self.unit_ids[u] for u in units if u in self.unit_ids], state) for units, state in results]

    def _speech(self, items: Sequence[Tuple[List[int], "TranslatorState", bool]],
                clocks: Sequence[Optional[StageClock]]) -> List[Tuple[Tensor, "TranslatorState"]]:
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
        return [(wave, replace(state, vocoder=voc_state, units=state.units + len(ids)))
                for (ids, state, _), (wave, voc_state) in zip(items, spoken)]

    def _units_batch(self, states: Sequence["TranslatorState"], texts: Sequence[Tensor]):
        """T2U + unit CTC for new text states ``[1, n_b, D]`` of each stream (causal: earlier units
        never change). The streams feed one text state per round over left-padded caches; a stream
        with fewer states repeats its last one, and keeps the caches of its own last round."""
        t2u, decoder, window = self.model.t2u_encoder, self.model.unit_decoder, self.config.target_window
        counts = [text.size(1) for text in texts]
        t2u_caches, t2u_valid, _ = pad_caches([s.t2u_caches for s in states], len(t2u.layers))
        unit_caches, unit_valid, memory_valid = pad_caches([s.unit_caches for s in states], len(decoder.layers))
        logits: List[List[Tensor]] = [[] for _ in states]
        kept: List = [None] * len(states)
        for k in range(max(counts)):
            fed = [min(k, n - 1) for n in counts]
            x = torch.cat([text[:, j:j + 1] for text, j in zip(texts, fed)])
            positions = torch.tensor([s.text_states + j for s, j in zip(states, fed)], device=x.device)
            out, t2u_caches, t2u_valid = t2u.step_rows(x, t2u_caches, t2u_valid, window)
            step_logits, unit_caches, unit_valid, memory_valid = decoder.step_rows(
                out, positions, unit_caches, unit_valid, memory_valid, window)
            for b, n in enumerate(counts):
                if k < n:
                    logits[b].append(step_logits[b])
                if k == n - 1:
                    kept[b] = (unpad_row(t2u_caches, b, int(t2u_valid[b].sum()), 0),
                               unpad_row(unit_caches, b, int(unit_valid[b].sum()), int(memory_valid[b].sum())))
        results = []
        for state, rows, n, (t2u_row, unit_row) in zip(states, logits, counts, kept):
            units, last = ctc_greedy_extend(torch.cat(rows).float(), state.unit_last, self.unit_banned)
            results.append((units, replace(state, t2u_caches=t2u_row, unit_caches=unit_row,
                                           text_states=state.text_states + n, unit_last=last)))
        return results

    def _reencode_units(self, state: "TranslatorState", frames: Tensor, finish: bool):
        """StreamSpeech's way: decoder states, T2U and units of the whole text, every time."""
        eos = self.tgt_dict.eos()
        tokens = list(state.target_tokens) if finish else list(state.target_tokens[:-1])
        prev = torch.tensor([[eos] + tokens], device=self.device)
        enc = {"encoder_out": [frames.transpose(0, 1)], "encoder_padding_mask": []}
        hidden, _ = self.model.decoder(prev, enc, features_only=True)
        logits = self.model.text_to_units(hidden, torch.tensor([prev.size(1)], device=self.device), 0, 1)["unit_logits"]
        units = ctc_greedy(logits.float(), torch.tensor([logits.size(1)], device=self.device), self.unit_banned)[0]
        new = units[len(state.all_units):]
        return new, replace(state, all_units=tuple(units))

    def _reencode_speech(self, state: "TranslatorState", new_ids: List[int], finish: bool):
        """Re-synthesise every unit and keep the audio of the new ones (StreamSpeech's vocoder call)."""
        if not new_ids:
            return torch.zeros(0), state
        voc = self.vocoder.vocoder
        all_ids = torch.tensor([self.unit_ids[u] for u in state.all_units if u in self.unit_ids])
        if self.vocoder.dur_prediction:
            durations = voc.durations(all_ids)
            frames = torch.repeat_interleave(all_ids, durations)
            new_frames = int(durations[-len(new_ids):].sum())
        else:
            frames, new_frames = all_ids, len(new_ids)
        wave = voc.synthesize_frames(frames)
        return wave[wave.numel() - new_frames * voc.frame_hop:], replace(state, units=state.units + len(new_ids))
