"""CTC prefix beam search restricted to a word list and scored with a word n-gram model.

Greedy CTC reads each frame's best label on its own, so a subword head can spell words that do
not exist ("cinqcs", two words run together) and cannot use the sentence to choose between words
that sound the same ("noire" / "noirs"). :class:`CtcLexiconDecoder` keeps the ``beam`` best label
sequences (prefixes) frame by frame, as CTC prefix search does (each prefix with its probability of
ending in a blank and of ending in its last label), allows only prefixes that spell words of the
lexicon or their beginnings, and adds ``lm_weight`` times the word model's log-probability and
``word_bonus`` per word as each word is completed (the next word's first piece or the end of the
input completes it).

Subwords follow sentencepiece: a piece that starts with ``▁`` starts a word. Any segmentation of a
lexicon word is allowed, not just the one sentencepiece would choose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from torch import Tensor

from echostream_fairseq.modules.ctc import CTC_BLANK
from echostream_fairseq.modules.ngram_lm import SENTENCE_END, NgramLM

__all__ = ["CtcLexiconDecoder", "WORD_START", "lexicon_decoder_from_text"]

WORD_START = "\u2581"
_NEG_INF = float("-inf")


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


@dataclass(frozen=True)
class _Spelling:
    """What a prefix has spelled: complete words, the word in progress, their language score."""

    words: Tuple[str, ...]
    partial: str
    lm_score: float  # weighted LM log-probability plus the word bonus, of ``words``


class CtcLexiconDecoder:
    """Args:
        pieces: the symbol of every label id (the CTC dictionary's strings; blank is id 0).
        lm: the word model; its vocabulary (less the sentence end) is the lexicon.
        beam: prefixes kept after each frame.
        lm_weight: weight of the word model's natural-log probability.
        word_bonus: added per word (counters the model's preference for few, long words).
        banned: ids never chosen (pad, eos, unk).
        labels_per_frame: only the this-many most likely labels of a frame extend the prefixes.
    """

    def __init__(self, pieces: Sequence[str], lm: NgramLM, beam: int = 8, lm_weight: float = 0.5,
                 word_bonus: float = 0.0, banned: Sequence[int] = (), labels_per_frame: int = 8) -> None:
        if beam < 1:
            raise ValueError(f"beam must be at least 1, got {beam}")
        if labels_per_frame < 1:
            raise ValueError(f"labels_per_frame must be at least 1, got {labels_per_frame}")
        self.pieces = list(pieces)
        self.lm, self.beam, self.lm_weight, self.word_bonus = lm, beam, lm_weight, word_bonus
        self.labels_per_frame = labels_per_frame
        self.banned = sorted(set(banned) | {CTC_BLANK})
        self.lexicon: FrozenSet[str] = frozenset(w for w in lm.vocabulary if w != SENTENCE_END)
        prefixes = set()
        for word in self.lexicon:
            prefixes.update(word[:i] for i in range(len(word) + 1))
        self._word_prefixes = frozenset(prefixes)

    def _complete(self, spelling: _Spelling) -> Optional[_Spelling]:
        """The spelling with its word in progress completed (``None`` if that is not a word)."""
        if not spelling.partial:
            return spelling
        if spelling.partial not in self.lexicon:
            return None
        score = self.lm_weight * self.lm.log_prob(spelling.words, spelling.partial) + self.word_bonus
        return _Spelling(spelling.words + (spelling.partial,), "", spelling.lm_score + score)

    def _extend(self, spelling: _Spelling, label: int) -> Optional[_Spelling]:
        """The spelling after one more label (``None`` if it leaves the lexicon)."""
        piece = self.pieces[label]
        if piece.startswith(WORD_START):
            done = self._complete(spelling)
            if done is None:
                return None
            piece = piece[len(WORD_START):]
            spelling = done
        partial = spelling.partial + piece
        if partial not in self._word_prefixes:
            return None
        return _Spelling(spelling.words, partial, spelling.lm_score)

    def decode(self, log_probs: Tensor) -> List[int]:
        """Best label sequence for one utterance's CTC log-probabilities ``[T, V]``.

        Returns label ids (blank-free, collapsed); ``[]`` when no prefix spells lexicon words.
        """
        if log_probs.dim() != 2:
            raise ValueError(f"log_probs must be [T, V], got shape {tuple(log_probs.shape)}")
        scores = log_probs.detach().float().cpu().clone()
        if self.banned[1:]:
            scores[:, self.banned[1:]] = _NEG_INF
        candidates = scores.clone()
        candidates[:, CTC_BLANK] = _NEG_INF
        k = min(self.labels_per_frame, scores.size(1) - 1)
        top_labels = candidates.topk(k, dim=1).indices.tolist()
        blank = scores[:, CTC_BLANK].tolist()
        rows = scores.tolist()

        root = _Spelling((), "", 0.0)
        # prefix -> (log P(prefix, ends in blank), log P(prefix, ends in its last label))
        beams: Dict[Tuple[int, ...], Tuple[float, float]] = {(): (0.0, _NEG_INF)}
        spellings: Dict[Tuple[int, ...], _Spelling] = {(): root}
        for t, row in enumerate(rows):
            grown: Dict[Tuple[int, ...], List[float]] = {}

            def add(prefix: Tuple[int, ...], in_blank: float, in_label: float) -> None:
                entry = grown.setdefault(prefix, [_NEG_INF, _NEG_INF])
                entry[0] = _logaddexp(entry[0], in_blank)
                entry[1] = _logaddexp(entry[1], in_label)

            for prefix, (p_blank, p_label) in beams.items():
                total = _logaddexp(p_blank, p_label)
                add(prefix, total + blank[t], _NEG_INF)
                last = prefix[-1] if prefix else None
                if last is not None:
                    add(prefix, _NEG_INF, p_label + row[last])  # the last label held over this frame
                for label in top_labels[t]:
                    if row[label] == _NEG_INF:
                        continue
                    new = prefix + (label,)
                    if new not in spellings:
                        spelling = self._extend(spellings[prefix], label)
                        if spelling is None:
                            continue
                        spellings[new] = spelling
                    # a repeated label needs a blank in between to count twice
                    source = p_blank if label == last else total
                    add(new, _NEG_INF, source + row[label])
            ranked = sorted(grown.items(), key=lambda kv: _logaddexp(*kv[1]) + spellings[kv[0]].lm_score,
                            reverse=True)
            beams = {prefix: (p[0], p[1]) for prefix, p in ranked[:self.beam]}

        best, best_score = None, _NEG_INF
        for prefix, (p_blank, p_label) in beams.items():
            done = self._complete(spellings[prefix])
            if done is None or not done.words:
                continue
            end = self.lm_weight * self.lm.log_prob(done.words, SENTENCE_END)
            score = _logaddexp(p_blank, p_label) + done.lm_score + end
            if score > best_score:
                best, best_score = prefix, score
        return list(best) if best is not None else []

    def decode_batch(self, log_probs: Tensor, lengths: Tensor) -> List[List[int]]:
        """:meth:`decode` for each row of ``[B, T, V]``, the first ``lengths[b]`` frames."""
        return [self.decode(log_probs[b, :n]) for b, n in enumerate(lengths.tolist())]


def lexicon_decoder_from_text(pieces: Sequence[str], sentences: Sequence[Sequence[str]], **kwargs) -> CtcLexiconDecoder:
    """A :class:`CtcLexiconDecoder` whose trigram model and lexicon are fitted on ``sentences``."""
    return CtcLexiconDecoder(pieces, NgramLM(sentences, order=3), **kwargs)

