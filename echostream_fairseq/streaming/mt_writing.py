"""The MT decoder's part of :class:`~echostream_fairseq.streaming.translator.SimultaneousTranslator`:
its memory of encoder frames, greedy incremental writing, and the same for many streams at once.

A mixin of the translator (its attributes: ``model``, ``config``, ``tgt_dict``, ``tgt_banned``,
``word_start``, ``device``), kept apart so each file stays small. Batched writing
(:meth:`MTWriting._write_batch`) decodes the streams in lockstep over left-padded caches
(:func:`~echostream_fairseq.modules.transformer_layer.pad_caches`): every stream feeds one subword
per round until each has what its policy asked for, and each stream's caches, subwords and decoder
states equal those of :meth:`MTWriting._write` on it alone. Every write also returns the decoder's
next step after its kept subwords; a stream in a short pause is confirmed or not by it (its write
a look ahead alone when the policy reads), so the question costs no round of its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from echostream_fairseq.data.text import whole_word_prefix
from echostream_fairseq.modules.transformer_layer import pad_caches, unpad_row
from echostream_fairseq.streaming.policy import FINISH, repeated_ngram_ends
from echostream_fairseq.streaming.translator_state import TranslatorState

__all__ = ["MTWriting"]


class MTWriting:
    """The translator's MT decoder steps (see the module docstring)."""

    def _extend_mt_memory(self, caches, frames: Optional[Tensor]):
        if frames is None or frames.size(1) == 0:
            return caches
        no_tokens = torch.zeros(1, 0, dtype=torch.long, device=self.device)  # only the memory advances
        _, _, caches = self.model.decoder.step(
            no_tokens, caches, 0, new_memory=frames, memory_window=self.config.mt_source_window
        )
        return caches

    def _extend_mt_memories(self, states: Sequence[TranslatorState], frames: Sequence[Optional[Tensor]]):
        """``_extend_mt_memory`` of many streams, their new frames projected together; the states
        with their MT memory extended."""
        having = [i for i, f in enumerate(frames) if f is not None and f.size(1) > 0]
        states = list(states)
        if having:
            caches = self.model.decoder.extend_memory(
                [states[i].mt_memory for i in having], [frames[i] for i in having], self.config.mt_source_window
            )
            for i, c in zip(having, caches):
                states[i] = replace(states[i], mt_memory=c)
        return states

    def _mt_token(self, caches, token: int, position: int):
        """Feed one decoder input token at ``position`` (0 = the begin-of-sentence eos)."""
        tokens = torch.tensor([[token]], device=self.device)
        logits, hidden, caches = self.model.decoder.step(
            tokens, caches, position, self_window=self.config.target_window
        )
        return logits[0, -1], hidden, caches

    def _write(self, state: TranslatorState, enc_new: Optional[Tensor], target: int):
        """Greedy MT decoding from the written prefix to ``target`` subwords (or end of sentence).

        Returns the new subwords, the decoder states the T2U encoder reads for them (``[1, n, D]``:
        input positions ``written .. written + n - 1``, plus the state that predicted the end of
        sentence when finishing), the new state, and the decoder's next step after the kept
        subwords: its scores ``[V]`` for the subword after them and its state ``[1, 1, D]`` (a
        ``target`` equal to the subwords written asks for this look ahead alone).
        """
        cfg = self.config
        eos = self.tgt_dict.eos()
        m = len(state.target_tokens)  # subwords written before
        # the caches hold decoder inputs eos, y_1 .. y_{m-1}; y_m (or eos) is fed next
        if cfg.reencode:  # StreamSpeech re-decodes the written prefix against the whole current source
            caches, prefix = self._extend_mt_memory(None, enc_new), [eos, *state.target_tokens]
        else:
            caches, prefix = state.mt_memory, [state.target_tokens[-1] if m else eos]
        start = m + 1 - len(prefix)
        for offset, tok in enumerate(prefix):
            logits, hidden, caches = self._mt_token(caches, tok, start + offset)
        hidden_rows, logit_rows, snapshots = [hidden], [logits], [caches]
        new: List[int] = []
        limit = target - m if target != FINISH else self._finish_limit(state)
        while len(new) < limit:
            nxt = self._pick(logits.clone(), state.target_tokens + tuple(new))
            if nxt == eos:  # before the source ends, an early end of sentence is simply not written
                break
            new.append(nxt)
            logits, hidden, caches = self._mt_token(caches, nxt, m + len(new))
            hidden_rows.append(hidden)
            logit_rows.append(logits)
            snapshots.append(caches)
        if cfg.policy.whole_word and target != FINISH:
            new = new[: whole_word_prefix(new, 0, lambda t: self.word_start[t])]
        n_states = len(new) + (1 if target == FINISH else 0)
        text_states = torch.cat(hidden_rows[:n_states], dim=1) if n_states else None
        if cfg.reencode:
            next_caches = None  # nothing is kept between chunks
        else:
            next_caches = snapshots[len(new) - 1] if new else state.mt_memory
        return (
            new,
            text_states,
            replace(state, mt_memory=next_caches, target_tokens=state.target_tokens + tuple(new)),
            (logit_rows[len(new)], hidden_rows[len(new)]),
        )

    def _pick(self, logits: Tensor, written: Sequence[int]) -> int:
        """The greedy choice for the next subword after ``written`` (the sentence's subwords)."""
        eos = self.tgt_dict.eos()
        logits[self.tgt_banned] = float("-inf")
        if self.config.no_repeat_ngram:
            repeating = repeated_ngram_ends(tuple(written), self.config.no_repeat_ngram)
            if repeating:
                logits[repeating] = float("-inf")
        if not written:  # at least one subword, as fairseq's min_len=1 in offline decoding
            logits[eos] = float("-inf")
        return int(logits.argmax())

    def _finish_limit(self, state: TranslatorState) -> int:
        """The most subwords a finishing write adds: ``max_len``, or up to the sentence's limit in
        long-form mode."""
        sentence_limit = self._sentence_limit(state)
        m = len(state.target_tokens)
        return self.config.max_len if sentence_limit is None else max(0, sentence_limit - m)

    def _write_batch(self, states: List[TranslatorState], targets: List[int]):
        """:meth:`_write` for several streams in incremental mode, each with an MT memory (targets
        may be :data:`FINISH`: the end of a sentence or of the source, or the subwords written: the
        look ahead alone): the decoder runs once per round for all of them (see the module
        docstring)."""
        cfg, eos, decoder = self.config, self.tgt_dict.eos(), self.model.decoder
        written = [len(s.target_tokens) for s in states]
        caches, self_valid, memory_valid = pad_caches([s.mt_memory for s in states])
        memory_lengths = memory_valid.sum(dim=1).tolist()
        tokens = [s.target_tokens[-1] if m else eos for s, m in zip(states, written)]
        positions = list(written)
        limits = [self._finish_limit(s) if t == FINISH else t - m for s, t, m in zip(states, targets, written)]
        news: List[List[int]] = [[] for _ in states]
        hidden_rows: List[List[Tensor]] = [[] for _ in states]
        steps = []  # (caches, self_valid) after each round
        round_logits = []  # row r's scores after its j-th new subword: round_logits[j][r]
        active = list(range(len(states)))
        while True:
            logits, hidden, caches, self_valid = decoder.step_rows(
                torch.tensor(tokens, device=self.device),
                torch.tensor(positions, device=self.device),
                caches,
                self_valid,
                memory_valid,
                cfg.target_window,
            )
            steps.append((caches, self_valid))
            round_logits.append(logits)
            for r in active:
                hidden_rows[r].append(hidden[r : r + 1])
            still = []
            for r in active:
                if len(news[r]) >= limits[r]:
                    continue
                nxt = self._pick(logits[r].clone(), states[r].target_tokens + tuple(news[r]))
                if nxt == eos:  # before the source ends, an early end of sentence is simply not written
                    continue
                news[r].append(nxt)
                tokens[r], positions[r] = nxt, written[r] + len(news[r])
                still.append(r)
            if not still:
                break
            active = still  # the others feed their last input again; those rounds are not read
        results = []
        for r, state in enumerate(states):
            new = news[r]
            finishing = targets[r] == FINISH
            if cfg.policy.whole_word and not finishing:
                new = new[: whole_word_prefix(new, 0, lambda t: self.word_start[t])]
            # a finishing write also hands on the state that predicted the end of sentence
            n_states = len(new) + (1 if finishing else 0)
            text_states = torch.cat(hidden_rows[r][:n_states], dim=1) if n_states else None
            if new:  # the caches holding the inputs up to the last subword kept, which is fed next
                step_caches, step_valid = steps[len(new) - 1]
                next_caches = unpad_row(step_caches, r, int(step_valid[r].sum()), memory_lengths[r])
            else:
                next_caches = state.mt_memory
            results.append(
                (
                    new,
                    text_states,
                    replace(state, mt_memory=next_caches, target_tokens=state.target_tokens + tuple(new)),
                    (round_logits[len(new)][r], hidden_rows[r][len(new)]),
                )
            )
        return results
