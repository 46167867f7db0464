"""The MT decoder's stage: its memory of encoder frames, and greedy incremental writing for one
stream or many at once.

Batched writing (:meth:`MTWriter.write_batch`) decodes the streams in lockstep over left-padded
caches (:func:`~echostream_fairseq.modules.transformer_layer.pad_caches`): every stream feeds one
subword per round until each has what its plan asked for, and each stream's caches, subwords and
decoder states equal those of :meth:`MTWriter.write` on it alone. Every write also returns the
decoder's next step after its kept subwords (the look ahead); a stream in a short pause is
confirmed or not by it, so the question costs no round of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from echostream_fairseq.data.text import whole_word_prefix
from echostream_fairseq.modules.transformer_layer import pad_caches, unpad_row
from echostream_fairseq.streaming.planning import WritePlan
from echostream_fairseq.streaming.policy import FINISH, repeated_ngram_ends
from echostream_fairseq.streaming.setup import TranslatorSetup
from echostream_fairseq.streaming.translator_state import TranslatorState

__all__ = ["Written", "Decoded", "MTWriter"]


@dataclass(frozen=True)
class Written:
    """One stream's write.

    Attributes:
        target_new: the new subwords.
        text_states: ``[1, n, D]`` the decoder states the T2U encoder reads for them (input
            positions ``written .. written + n - 1``, plus the state that predicted the end of
            sentence when writing to it); ``None`` for none.
        state: the stream's state after the write.
        look_ahead: the decoder's next step after the kept subwords: its scores ``[V]`` for the
            subword after them and its state ``[1, 1, D]`` (``None``: the stream did not write).
    """

    target_new: List[int]
    text_states: Optional[Tensor]
    state: TranslatorState
    look_ahead: Optional[Tuple[Tensor, Tensor]] = None


@dataclass(frozen=True)
class Decoded:
    """Greedy decoding from given decoder inputs (:meth:`MTWriter.decode`).

    Attributes:
        target_new: the kept new subwords.
        text_states: as :attr:`Written.text_states`.
        caches: the decoder caches holding the inputs up to the last kept subword (``None``: no
            subword kept).
        look_ahead: as :attr:`Written.look_ahead`.
    """

    target_new: List[int]
    text_states: Optional[Tensor]
    caches: Optional[list]
    look_ahead: Tuple[Tensor, Tensor]


class MTWriter:
    """The MT decoder's steps (see the module docstring).

    Args:
        setup: the translator's :class:`TranslatorSetup`.
        decoder: what runs the decoder's ``step``, ``step_rows`` and ``extend_memory`` (``None``:
            the model's decoder in torch;
            :class:`~echostream_fairseq.streaming.graph_decoder.GraphMTDecoder` under onnxruntime).
    """

    def __init__(self, setup: TranslatorSetup, decoder=None) -> None:
        self.decoder = setup.model.decoder if decoder is None else decoder
        self.config = setup.config
        self.rules = setup.rules
        self.device = setup.device

    # -- the memory of encoder frames --------------------------------------------------------------

    def memory_of(self, frames: Tensor, caches=None):
        """``caches`` (``None``: empty) with ``frames`` ``[1, t, D]`` added to the cross-attention
        memory (the most recent ``mt_source_window`` kept)."""
        if frames is None or frames.size(1) == 0:
            return caches
        no_tokens = torch.zeros(1, 0, dtype=torch.long, device=self.device)  # only the memory advances
        _, _, caches = self.decoder.step(
            no_tokens, caches, 0, new_memory=frames, memory_window=self.config.mt_source_window
        )
        return caches

    def extend_memories(
        self, states: Sequence[TranslatorState], frames: Sequence[Optional[Tensor]]
    ) -> List[TranslatorState]:
        """Every stream's new frames added to its MT memory, projected together."""
        having = [i for i, f in enumerate(frames) if f is not None and f.size(1) > 0]
        states = list(states)
        if having:
            caches = self.decoder.extend_memory(
                [states[i].mt_memory for i in having], [frames[i] for i in having], self.config.mt_source_window
            )
            for i, c in zip(having, caches):
                states[i] = replace(states[i], mt_memory=c)
        return states

    # -- writing -----------------------------------------------------------------------------------

    def token_step(self, caches, token: int, position: int):
        """Feed one decoder input token at ``position`` (0 = the begin-of-sentence eos): its scores
        ``[V]``, state ``[1, 1, D]`` and the caches after it."""
        tokens = torch.tensor([[token]], device=self.device)
        logits, hidden, caches = self.decoder.step(tokens, caches, position, self_window=self.config.target_window)
        return logits[0, -1], hidden, caches

    def pick(self, scores: Tensor, prefix: Sequence[int]) -> int:
        """The greedy choice for the next subword after ``prefix`` (the sentence's subwords);
        ``scores`` is changed."""
        eos = self.rules.target_eos
        scores[self.rules.target_banned] = float("-inf")
        if self.config.no_repeat_ngram:
            repeating = repeated_ngram_ends(tuple(prefix), self.config.no_repeat_ngram)
            if repeating:
                scores[repeating] = float("-inf")
        if not prefix:  # at least one subword, as fairseq's min_len=1 in offline decoding
            scores[eos] = float("-inf")
        return int(scores.argmax())

    def _kept(self, new: List[int], finishing: bool) -> List[int]:
        if self.config.policy.whole_word and not finishing:
            return new[: whole_word_prefix(new, 0, lambda t: self.rules.word_start[t])]
        return new

    def decode(self, caches, inputs: Sequence[int], prefix: Tuple[int, ...], finishing: bool, limit: int) -> Decoded:
        """Greedy decoding after the sentence's subwords ``prefix``: feed ``inputs`` (the last decoder inputs,
        ending with the last written subword, or eos for none; the caches hold the ones before),
        then up to ``limit`` new subwords, stopping at an end of sentence (before the source ends,
        an early end of sentence is simply not written)."""
        eos = self.rules.target_eos
        m = len(prefix)
        start = m + 1 - len(inputs)
        for offset, tok in enumerate(inputs):
            scores, hidden, caches = self.token_step(caches, tok, start + offset)
        hidden_rows, score_rows, snapshots = [hidden], [scores], [caches]
        new: List[int] = []
        while len(new) < limit:
            nxt = self.pick(scores.clone(), prefix + tuple(new))
            if nxt == eos:
                break
            new.append(nxt)
            scores, hidden, caches = self.token_step(caches, nxt, m + len(new))
            hidden_rows.append(hidden)
            score_rows.append(scores)
            snapshots.append(caches)
        new = self._kept(new, finishing)
        n_states = len(new) + (1 if finishing else 0)
        text_states = torch.cat(hidden_rows[:n_states], dim=1) if n_states else None
        return Decoded(
            new, text_states, snapshots[len(new) - 1] if new else None, (score_rows[len(new)], hidden_rows[len(new)])
        )

    def write(self, plan: WritePlan) -> Written:
        """One stream's write from its MT memory (which may be empty)."""
        state = plan.state
        prefix = state.target_tokens
        # the caches hold decoder inputs eos, y_1 .. y_{m-1}; y_m (or eos) is fed next
        decoded = self.decode(
            state.mt_memory,
            [prefix[-1] if prefix else self.rules.target_eos],
            prefix,
            plan.target == FINISH,
            plan.limit,
        )
        caches = decoded.caches if decoded.target_new else state.mt_memory
        return Written(
            decoded.target_new,
            decoded.text_states,
            replace(state, mt_memory=caches, target_tokens=prefix + tuple(decoded.target_new)),
            decoded.look_ahead,
        )

    def write_all(self, plans: Sequence[WritePlan]) -> List[Written]:
        """Every stream's write: one batched decoding for the streams whose MT memory holds frames,
        one by one for the rest (an empty memory); a stream without a write gets an empty one."""
        results: List[Written] = [Written([], None, plan.state) for plan in plans]
        batch, alone = [], []
        for i, plan in enumerate(plans):
            if plan.target is None:
                continue
            memory = plan.state.mt_memory
            (batch if memory is not None and memory[0].cross_key is not None else alone).append(i)
        if len(batch) == 1:
            alone, batch = alone + batch, []
        for i in alone:
            results[i] = self.write(plans[i])
        if batch:
            for i, written in zip(batch, self.write_batch([plans[i] for i in batch])):
                results[i] = written
        return results

    def write_batch(self, plans: Sequence[WritePlan]) -> List[Written]:
        """:meth:`write` for several streams, each with an MT memory: the decoder runs once per
        round for all of them (see the module docstring)."""
        cfg, eos = self.config, self.rules.target_eos
        states = [plan.state for plan in plans]
        prefix_lengths = [len(s.target_tokens) for s in states]
        caches, self_valid, memory_valid = pad_caches([s.mt_memory for s in states])
        memory_lengths = memory_valid.sum(dim=1).tolist()
        tokens = [s.target_tokens[-1] if m else eos for s, m in zip(states, prefix_lengths)]
        positions = list(prefix_lengths)
        news: List[List[int]] = [[] for _ in states]
        hidden_rows: List[List[Tensor]] = [[] for _ in states]
        steps = []  # (caches, self_valid) after each round
        round_scores = []  # row r's scores after its j-th new subword: round_scores[j][r]
        active = list(range(len(states)))
        while True:
            scores, hidden, caches, self_valid = self.decoder.step_rows(
                torch.tensor(tokens, device=self.device),
                torch.tensor(positions, device=self.device),
                caches,
                self_valid,
                memory_valid,
                cfg.target_window,
            )
            steps.append((caches, self_valid))
            round_scores.append(scores)
            for r in active:
                hidden_rows[r].append(hidden[r : r + 1])
            still = []
            for r in active:
                if len(news[r]) >= plans[r].limit:
                    continue
                nxt = self.pick(scores[r].clone(), states[r].target_tokens + tuple(news[r]))
                if nxt == eos:  # before the source ends, an early end of sentence is simply not written
                    continue
                news[r].append(nxt)
                tokens[r], positions[r] = nxt, prefix_lengths[r] + len(news[r])
                still.append(r)
            if not still:
                break
            active = still  # the others feed their last input again; those rounds are not read
        results = []
        for r, state in enumerate(states):
            finishing = plans[r].target == FINISH
            new = self._kept(news[r], finishing)
            # a write to the end of the sentence also hands on the state that predicted it
            n_states = len(new) + (1 if finishing else 0)
            text_states = torch.cat(hidden_rows[r][:n_states], dim=1) if n_states else None
            if new:  # the caches holding the inputs up to the last subword kept, which is fed next
                step_caches, step_valid = steps[len(new) - 1]
                next_caches = unpad_row(step_caches, r, int(step_valid[r].sum()), memory_lengths[r])
            else:
                next_caches = state.mt_memory
            results.append(
                Written(
                    new,
                    text_states,
                    replace(state, mt_memory=next_caches, target_tokens=state.target_tokens + tuple(new)),
                    (round_scores[len(new)][r], hidden_rows[r][len(new)]),
                )
            )
        return results
