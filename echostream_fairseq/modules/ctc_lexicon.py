"""CTC prefix beam search restricted to a word list and scored with a word n-gram model, in one
pass or chunk by chunk.

Greedy CTC reads each frame's best label on its own, so a subword head can spell words that do
not exist ("cinqcs", two words run together) and cannot use the sentence to choose between words
that sound the same ("noire" / "noirs"). :class:`CtcLexiconDecoder` keeps the ``beam`` best
hypotheses frame by frame, as CTC prefix search does (each with its probability of ending in a
blank and of ending in its last label), allows only those that spell words of the lexicon or their
beginnings, and adds ``lm_weight`` times the word model's log-probability and ``word_bonus`` per
word as each word is completed (the next word's first piece or the end of the input completes it).

A hypothesis is its text (words and the word in progress) and its last label: two label sequences
that spell the same text the same way from here on are one hypothesis, whatever their
segmentation. Subwords follow sentencepiece: a piece that starts with ``▁`` starts a word.

Streaming (:meth:`CtcLexiconDecoder.step`): after each chunk, the best hypothesis's oldest word is
made final when the hypotheses that share it hold ``commit_mass`` of the beam's probability (or
when the best hypothesis holds more than ``max_pending`` words); the others are dropped, so every
later hypothesis extends that word. Final words are returned once and leave the state, which keeps
only the words still in doubt: no word returned is ever taken back, and the state stays bounded
however long the stream. Over a whole utterance in one pass (:meth:`CtcLexiconDecoder.decode`)
nothing is dropped early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from torch import Tensor

from echostream_fairseq.common.text import WORD_START
from echostream_fairseq.modules.ctc import CTC_BLANK
from echostream_fairseq.modules.ngram_lm import SENTENCE_END, NgramLM

__all__ = ["CtcLexiconDecoder", "LexiconSearchState", "lexicon_decoder_from_text"]

_NEG_INF = float("-inf")
_NO_LABEL = -1


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


@dataclass(frozen=True)
class _Hypothesis:
    words: Tuple[str, ...]  # complete words not yet final
    partial: str  # the word in progress
    last: int  # the last label written (_NO_LABEL: none yet)
    p_blank: float  # log P(these frames, ending in blank)
    p_label: float  # log P(these frames, ending in ``last``)
    lm_score: float  # weighted word-model log-probability plus the bonus, of ``words``

    @property
    def acoustic(self) -> float:
        return _logaddexp(self.p_blank, self.p_label)


@dataclass(frozen=True)
class LexiconSearchState:
    """One stream's search: the kept hypotheses (best first) and the last final words (the word
    model's context). Explicit data: :meth:`CtcLexiconDecoder.step` takes and returns it."""

    hypotheses: Tuple[_Hypothesis, ...]
    context: Tuple[str, ...]


class CtcLexiconDecoder:
    """Args:
    pieces: the symbol of every label id (the CTC dictionary's strings; blank is id 0).
    lm: the word model; its vocabulary (less the sentence end) is the lexicon.
    beam: hypotheses kept after each frame.
    lm_weight: weight of the word model's natural-log probability.
    word_bonus: added per word (counters the model's preference for few, long words).
    banned: ids never chosen (pad, eos, unk).
    labels_per_frame: only the this-many most likely labels of a frame extend the hypotheses.
    max_pending: streaming: words the best hypothesis may hold before its oldest is made final.
    commit_mass: streaming: the share of the beam's probability that must agree on a word to
        make it final (1: every kept hypothesis).
    """

    def __init__(
        self,
        pieces: Sequence[str],
        lm: NgramLM,
        beam: int = 8,
        lm_weight: float = 0.5,
        word_bonus: float = 0.0,
        banned: Sequence[int] = (),
        labels_per_frame: int = 8,
        max_pending: int = 4,
        commit_mass: float = 0.9,
    ) -> None:
        for name, value in (("beam", beam), ("labels_per_frame", labels_per_frame), ("max_pending", max_pending)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not 0.0 < commit_mass <= 1.0:
            raise ValueError(f"commit_mass must lie in (0, 1], got {commit_mass}")
        self.commit_mass = commit_mass
        self.pieces = list(pieces)
        self.lm, self.beam, self.lm_weight, self.word_bonus = lm, beam, lm_weight, word_bonus
        self.labels_per_frame, self.max_pending = labels_per_frame, max_pending
        self._banned = sorted(set(banned) - {CTC_BLANK})  # blank is scored, never written
        self.lexicon: FrozenSet[str] = frozenset(w for w in lm.vocabulary if w != SENTENCE_END)
        prefixes = set()
        for word in self.lexicon:
            prefixes.update(word[:i] for i in range(len(word) + 1))
        self._word_prefixes = frozenset(prefixes)
        self._history = max(lm.order - 1, 0)

    # -- spelling ---------------------------------------------------------------------------------

    def _word_score(self, context: Tuple[str, ...], words: Tuple[str, ...], word: str) -> float:
        history = (context + words)[-self._history :] if self._history else ()
        return self.lm_weight * self.lm.log_prob(history, word)

    def _spell(
        self, context: Tuple[str, ...], hyp: _Hypothesis, label: int
    ) -> Optional[Tuple[Tuple[str, ...], str, float]]:
        """``(words, partial, added score)`` after one more label (``None``: it leaves the lexicon)."""
        piece = self.pieces[label]
        words, added = hyp.words, 0.0
        partial = hyp.partial
        if piece.startswith(WORD_START):
            if partial:
                if partial not in self.lexicon:
                    return None
                added = self._word_score(context, words, partial) + self.word_bonus
                words = words + (partial,)
            piece, partial = piece[len(WORD_START) :], ""
        partial = partial + piece
        if partial not in self._word_prefixes:
            return None
        return words, partial, added

    # -- search -----------------------------------------------------------------------------------

    def initial_state(self) -> LexiconSearchState:
        """A stream before its first frame."""
        return LexiconSearchState((_Hypothesis((), "", _NO_LABEL, 0.0, _NEG_INF, 0.0),), ())

    def step(
        self, state: LexiconSearchState, log_probs: Tensor, settle: bool = True
    ) -> Tuple[List[str], LexiconSearchState]:
        """Advance a stream by new frames' CTC log-probabilities ``[t, V]``.

        Returns the words that became final (in order) and the new state; ``settle=False`` makes
        none final (one pass over a whole utterance: nothing is dropped early).
        """
        if log_probs.dim() != 2:
            raise ValueError(f"log_probs must be [T, V], got shape {tuple(log_probs.shape)}")
        if log_probs.size(1) != len(self.pieces):
            raise ValueError(f"log_probs has {log_probs.size(1)} labels, the dictionary {len(self.pieces)}")
        hyps = list(state.hypotheses)
        if log_probs.size(0):
            scores = log_probs.detach().float().cpu().clone()
            if self._banned:
                scores[:, self._banned] = _NEG_INF
            candidates = scores.clone()
            candidates[:, CTC_BLANK] = _NEG_INF
            k = min(self.labels_per_frame, scores.size(1) - 1)
            top_labels = candidates.topk(k, dim=1).indices.tolist()
            for row, labels in zip(scores.tolist(), top_labels):
                hyps = self._frame(state.context, hyps, row, labels)
        if not settle:
            return [], LexiconSearchState(tuple(hyps), state.context)
        return self._settle(state.context, hyps)

    def _frame(
        self, context: Tuple[str, ...], hyps: List[_Hypothesis], row: List[float], labels: List[int]
    ) -> List[_Hypothesis]:
        grown: Dict[Tuple, List] = {}  # key -> [words, partial, last, p_blank, p_label, lm_score]

        def add(words, partial, last, in_blank, in_label, lm_score) -> None:
            entry = grown.get((words, partial, last))
            if entry is None:
                grown[(words, partial, last)] = [words, partial, last, in_blank, in_label, lm_score]
            else:
                entry[3] = _logaddexp(entry[3], in_blank)
                entry[4] = _logaddexp(entry[4], in_label)

        blank = row[CTC_BLANK]
        for hyp in hyps:
            total = hyp.acoustic
            add(hyp.words, hyp.partial, hyp.last, total + blank, _NEG_INF, hyp.lm_score)
            if hyp.last != _NO_LABEL:  # the last label held over this frame
                add(hyp.words, hyp.partial, hyp.last, _NEG_INF, hyp.p_label + row[hyp.last], hyp.lm_score)
            for label in labels:
                if row[label] == _NEG_INF:
                    continue
                spelled = self._spell(context, hyp, label)
                if spelled is None:
                    continue
                words, partial, added = spelled
                source = hyp.p_blank if label == hyp.last else total  # a repeat needs a blank between
                add(words, partial, label, _NEG_INF, source + row[label], hyp.lm_score + added)
        ranked = sorted(grown.values(), key=lambda e: _logaddexp(e[3], e[4]) + e[5], reverse=True)
        return [_Hypothesis(*entry) for entry in ranked[: self.beam]]

    def _settle(self, context: Tuple[str, ...], hyps: List[_Hypothesis]) -> Tuple[List[str], LexiconSearchState]:
        """Make final the oldest word of the best hypothesis while the hypotheses that share it hold
        ``commit_mass`` of the beam's probability, or while it holds more than ``max_pending`` words;
        the hypotheses that disagree are dropped."""
        final: List[str] = []
        while hyps and hyps[0].words:
            first = hyps[0].words[:1]
            scores = [h.acoustic + h.lm_score for h in hyps]
            top = max(scores)
            weights = [math.exp(x - top) for x in scores]
            agreeing = sum(w for h, w in zip(hyps, weights) if h.words[:1] == first) / sum(weights)
            if agreeing < self.commit_mass and len(hyps[0].words) <= self.max_pending:
                break
            final.append(first[0])
            hyps = [replace(h, words=h.words[1:]) for h in hyps if h.words[:1] == first]
        if hyps:  # keep the numbers small over a long stream: only differences matter
            top_acoustic, top_lm = hyps[0].acoustic, hyps[0].lm_score
            hyps = [
                replace(
                    h, p_blank=h.p_blank - top_acoustic, p_label=h.p_label - top_acoustic, lm_score=h.lm_score - top_lm
                )
                for h in hyps
            ]
        new_context = (context + tuple(final))[-self._history :] if self._history else ()
        return final, LexiconSearchState(tuple(hyps), new_context)

    def finish(self, state: LexiconSearchState) -> List[str]:
        """The end of the input: the rest of the best hypothesis whose word in progress is a word
        (if none is, the best hypothesis's complete words)."""
        best, best_score = list(state.hypotheses[0].words) if state.hypotheses else [], _NEG_INF
        for hyp in state.hypotheses:
            words, score = hyp.words, hyp.acoustic + hyp.lm_score
            if hyp.partial:
                if hyp.partial not in self.lexicon:
                    continue
                score += self._word_score(state.context, words, hyp.partial) + self.word_bonus
                words = words + (hyp.partial,)
            score += self._word_score(state.context, words, SENTENCE_END)
            if score > best_score:
                best, best_score = list(words), score
        return best

    def decode(self, log_probs: Tensor) -> List[str]:
        """The words of one whole utterance's CTC log-probabilities ``[T, V]``."""
        return self.finish(self.step(self.initial_state(), log_probs, settle=False)[1])

    def decode_batch(self, log_probs: Tensor, lengths: Tensor) -> List[List[str]]:
        """:meth:`decode` for each row of ``[B, T, V]``, the first ``lengths[b]`` frames."""
        return [self.decode(log_probs[b, :n]) for b, n in enumerate(lengths.tolist())]


def lexicon_decoder_from_text(pieces: Sequence[str], sentences: Sequence[Sequence[str]], **kwargs) -> CtcLexiconDecoder:
    """A :class:`CtcLexiconDecoder` whose trigram model and lexicon are fitted on ``sentences``."""
    return CtcLexiconDecoder(pieces, NgramLM(sentences, order=3), **kwargs)
