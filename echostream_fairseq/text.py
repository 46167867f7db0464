"""Text helpers shared by training metrics, offline decoding and scoring."""

from __future__ import annotations

from typing import List, Sequence

__all__ = ["pieces_to_words", "edit_distance"]


def pieces_to_words(dictionary, ids: Sequence[int]) -> List[str]:
    """Sentencepiece token ids -> words (pieces concatenated; ``▁`` starts a word; specials dropped)."""
    text = "".join(dictionary[i] for i in ids if i >= dictionary.nspecial)
    return text.replace("\u2581", " ").split()


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences (substitution, insertion, deletion cost 1)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]
