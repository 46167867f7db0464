"""A word n-gram language model with interpolated Kneser-Ney smoothing, estimated in memory.

It is small on purpose: a closed vocabulary (the words of the text it is fitted on, plus the
sentence end), counts in dictionaries, no file format.
:class:`~echostream_fairseq.modules.ctc_lexicon.CtcLexiconDecoder` uses it to score the words a CTC
head spells; for a corpus of tens of thousands of sentences it fits in about a second.

Smoothing (Chen and Goodman's interpolated Kneser-Ney, one discount per order): the highest order
uses counts, the lower orders continuation counts (in how many distinct contexts a word follows),
and the unigram level is interpolated with the uniform distribution over the vocabulary, so every
known word has a probability in every context.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from typing import Dict, Iterable, List, Sequence, Tuple

__all__ = ["NgramLM", "SENTENCE_START", "SENTENCE_END"]

SENTENCE_START = "<s>"
SENTENCE_END = "</s>"


class NgramLM:
    """Interpolated Kneser-Ney n-gram model over words.

    Args:
        sentences: the training text, one list of words per sentence.
        order: n (2 = bigram, 3 = trigram).
        discount: the absolute discount D in (0, 1) at every order.
    """

    def __init__(self, sentences: Iterable[Sequence[str]], order: int = 3, discount: float = 0.75) -> None:
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        if not 0.0 < discount < 1.0:
            raise ValueError(f"discount must lie in (0, 1), got {discount}")
        self.order, self.discount = order, discount
        # counts[k][(context, word)] for contexts of length k; the top order counts occurrences,
        # the lower orders count distinct left extensions (continuation counts)
        top: Dict[Tuple[str, ...], int] = defaultdict(int)
        num_sentences = 0
        for words in sentences:
            words = list(words)
            if not words:
                continue
            num_sentences += 1
            padded = [SENTENCE_START] * (order - 1) + words + [SENTENCE_END]
            for i in range(order - 1, len(padded)):
                top[tuple(padded[i - order + 1 : i + 1])] += 1
        if num_sentences == 0:
            raise ValueError("cannot fit a language model on no sentences")
        self._counts: List[Dict[Tuple[str, ...], int]] = [dict() for _ in range(order)]
        self._counts[order - 1] = dict(top)
        for k in range(order - 1, 0, -1):
            lower: Dict[Tuple[str, ...], int] = defaultdict(int)
            for gram in self._counts[k]:
                lower[gram[1:]] += 1  # one more distinct word before this (k)-gram
            self._counts[k - 1] = dict(lower)
        # per context: total count and number of distinct followers
        self._context_total: List[Dict[Tuple[str, ...], int]] = [defaultdict(int) for _ in range(order)]
        self._context_types: List[Dict[Tuple[str, ...], int]] = [defaultdict(int) for _ in range(order)]
        for k in range(order):
            for gram, count in self._counts[k].items():
                self._context_total[k][gram[:-1]] += count
                self._context_types[k][gram[:-1]] += 1
        self.vocabulary = frozenset(gram[-1] for gram in self._counts[0])
        # bounded: a decoder shared by streams running for hours asks for ever new trigrams
        self._cached_log_prob = functools.lru_cache(maxsize=1 << 16)(
            lambda context, word: math.log(self._prob(context, word))
        )

    def log_prob(self, context: Sequence[str], word: str) -> float:
        """Natural log of P(``word`` | the last ``order - 1`` words of ``context``).

        ``context`` may start with :data:`SENTENCE_START` marks (or be shorter: it is padded with
        them); ``word`` may be :data:`SENTENCE_END`. A word outside the vocabulary gets ``-inf``.
        """
        if word not in self.vocabulary:
            return float("-inf")
        context = tuple(context)[-(self.order - 1) :] if self.order > 1 else ()
        context = (SENTENCE_START,) * (self.order - 1 - len(context)) + context
        return self._cached_log_prob(context, word)

    def _prob(self, context: Tuple[str, ...], word: str) -> float:
        probability = 1.0 / len(self.vocabulary)
        for k in range(self.order):  # from the unigram level up to the full context
            ctx = context[len(context) - k :] if k else ()
            total = self._context_total[k].get(ctx, 0)
            if total == 0:
                continue  # an unseen context: keep the lower order's estimate
            count = self._counts[k].get(ctx + (word,), 0)
            backoff = self.discount * self._context_types[k][ctx] / total
            probability = max(count - self.discount, 0.0) / total + backoff * probability
        return probability

    def sentence_log_prob(self, words: Sequence[str]) -> float:
        """Natural log of P(``words``, then the sentence end)."""
        history: List[str] = []
        total = 0.0
        for word in list(words) + [SENTENCE_END]:
            total += self.log_prob(history, word)
            history.append(word)
        return total
