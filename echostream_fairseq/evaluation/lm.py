"""A closed-vocabulary word bigram language model for the recogniser, counted from English text.

pocketsphinx's general English model does poorly on espeak-ng's formant speech, so for our
corpora the recogniser decodes with a bigram model of the training side's English text
(:func:`write_bigram_arpa`), normalised with :func:`echostream_fairseq.data.text.normalize_text`
like every other text of the project.

Interpolated absolute discounting (Ney's discount ``D = n1 / (n1 + 2 n2)`` from the bigram
count-of-counts) written in back-off form. For a history ``h`` seen ``c(h)`` times and followed
by ``N(h)`` distinct words::

    P(w | h) = (c(h, w) - D) / c(h) + gamma(h) P(w)     for bigrams seen in training
    P(w | h) = gamma(h) P(w)                             otherwise
    gamma(h) = D N(h) / c(h)

``P(w)`` is the maximum-likelihood unigram over the words and ``</s>`` (``<s>`` is never
predicted). ``gamma(h)`` is the ARPA back-off weight: the unseen words receive exactly the mass the
seen ones gave away, so every conditional distribution sums to 1.
"""

from __future__ import annotations

import collections
import math
from typing import Dict, Iterable, List

from echostream_fairseq.common.files import atomic_open
from echostream_fairseq.data.text import normalize_text

__all__ = ["SENTENCE_START", "SENTENCE_END", "sentence_words", "write_bigram_arpa"]

SENTENCE_START = "<s>"
SENTENCE_END = "</s>"
# ARPA convention for "never predicted" (<s> as a next word); log10 probability
_LOG10_ZERO = -99.0


def sentence_words(sentences: Iterable[str]) -> List[List[str]]:
    """Normalised word lists of ``sentences``; sentences with no words left are dropped."""
    out = []
    for sentence in sentences:
        words = normalize_text(sentence).split()
        if words:
            out.append(words)
    return out


def write_bigram_arpa(sentences: Iterable[str], path: str) -> Dict[str, int]:
    """Count a back-off word bigram model from ``sentences`` and write it as an ARPA file.

    Args:
        sentences: raw English text, one sentence each (normalised here with ``normalize_text``;
            sentences that normalise to nothing are skipped).
        path: the ARPA file to write (atomically: an interrupted write leaves the old file).

    Returns:
        ``{"sentences", "tokens", "unigrams", "bigrams"}``: sentences used, predicted tokens
        (words plus one ``</s>`` per sentence), ARPA unigram entries (vocabulary plus ``<s>`` and
        ``</s>``) and bigram entries.

    Raises:
        ValueError: no sentence has a word.
    """
    word_lists = sentence_words(sentences)
    if not word_lists:
        raise ValueError("cannot build a language model from no words (all sentences empty after normalisation)")

    unigram_counts: collections.Counter = collections.Counter()
    bigram_counts: collections.Counter = collections.Counter()
    for words in word_lists:
        tokens = [SENTENCE_START, *words, SENTENCE_END]
        unigram_counts.update(tokens[1:])  # <s> is a context only, never predicted
        bigram_counts.update(zip(tokens[:-1], tokens[1:]))

    total = sum(unigram_counts.values())
    unigram_prob = {w: c / total for w, c in unigram_counts.items()}

    # Ney's estimate of the absolute discount from the count-of-counts; kept inside [0.1, 0.9]
    # so that each history always leaves some mass to unseen words (tiny corpora can have
    # n1 = 0 or n2 = 0) and every seen bigram keeps a positive share of its count.
    count_of_counts = collections.Counter(bigram_counts.values())
    n1, n2 = count_of_counts.get(1, 0), count_of_counts.get(2, 0)
    discount = n1 / (n1 + 2 * n2) if n1 > 0 and n2 > 0 else 0.5
    discount = min(max(discount, 0.1), 0.9)

    history_total: collections.Counter = collections.Counter()
    history_types: collections.Counter = collections.Counter()
    for (history, _), count in bigram_counts.items():
        history_total[history] += count
        history_types[history] += 1
    backoff = {h: discount * history_types[h] / history_total[h] for h in history_total}

    vocabulary = sorted(set(unigram_counts) | {SENTENCE_START})
    bigrams = sorted(bigram_counts)
    with atomic_open(path) as f:
        f.write("\\data\\\n")
        f.write(f"ngram 1={len(vocabulary)}\n")
        f.write(f"ngram 2={len(bigrams)}\n\n")
        f.write("\\1-grams:\n")
        for word in vocabulary:
            log_prob = _LOG10_ZERO if word == SENTENCE_START else math.log10(unigram_prob[word])
            line = f"{log_prob:.7f}\t{word}"
            if word in backoff:  # </s> is never a history, so it gets no back-off weight
                line += f"\t{math.log10(backoff[word]):.7f}"
            f.write(line + "\n")
        f.write("\n\\2-grams:\n")
        for history, word in bigrams:
            prob = (bigram_counts[history, word] - discount) / history_total[history] + backoff[history] * unigram_prob[
                word
            ]
            f.write(f"{math.log10(prob):.7f}\t{history} {word}\n")
        f.write("\n\\end\\\n")
    return {
        "sentences": len(word_lists),
        "tokens": total,
        "unigrams": len(vocabulary),
        "bigrams": len(bigrams),
    }
