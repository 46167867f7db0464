"""A pronunciation dictionary for the recogniser: the CMU entries of the words it has to know.

The recogniser only knows the words of its dictionary, so for our corpora
:func:`write_pronunciation_dict` writes the entries of the training side's words, taken from the
CMU dictionary bundled with pocketsphinx. That dictionary is lower case with the apostrophe
forms that :func:`echostream_fairseq.data.text.normalize_text` keeps (``king's``). Regular
``-s`` forms it lacks (``lemonades``) get their stem's pronunciation plus the ending
(:func:`derive_s_form`).
"""

from __future__ import annotations

import collections
import functools
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from echostream_fairseq.common.files import atomic_open
from echostream_fairseq.evaluation.pocketsphinx_model import bundled_paths

__all__ = ["cmu_dictionary", "derive_s_form", "write_pronunciation_dict"]


@functools.lru_cache(maxsize=None)
def cmu_dictionary(path: str) -> Dict[str, Tuple[str, ...]]:
    """word -> its pronunciations (phone strings, in the file's order) from a CMU-format file."""
    entries: Dict[str, List[str]] = collections.defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            # alternative pronunciations are spelled "word(2)", "word(3)", ...
            word = fields[0].split("(", 1)[0] if fields[0].endswith(")") else fields[0]
            entries[word].append(" ".join(fields[1:]))
    return {word: tuple(prons) for word, prons in entries.items()}


# Regular English "-s" ending (plural, third person, possessive): /IH Z/ after a sibilant,
# /S/ after another voiceless consonant, /Z/ otherwise.
_SIBILANTS = frozenset({"S", "Z", "SH", "ZH", "CH", "JH"})
_VOICELESS = frozenset({"P", "T", "K", "F", "TH"})


def _s_suffix(pronunciation: str) -> str:
    last = pronunciation.split()[-1]
    if last in _SIBILANTS:
        return pronunciation + " IH Z"
    if last in _VOICELESS:
        return pronunciation + " S"
    return pronunciation + " Z"


def derive_s_form(word: str, dictionary: Mapping[str, Tuple[str, ...]]) -> Tuple[str, ...]:
    """Pronunciations of ``word`` as the regular "-s"/"-es"/"-'s" form of a dictionary word; ``()`` if none."""
    candidates = []
    if word.endswith("'s"):
        candidates.append(word[:-2])
    elif word.endswith("es"):
        candidates += [word[:-1], word[:-2]]  # "lemonades" -> "lemonade"; "boxes" -> "box"
    elif word.endswith("s") and not word.endswith("ss"):
        candidates.append(word[:-1])
    for stem in candidates:
        if stem in dictionary:
            prons = tuple(_s_suffix(p) for p in dictionary[stem])
            if stem == word[:-2] and word.endswith("es"):
                # a bare "-es" after the stem is the regular ending only after a sibilant ("box-es");
                # "tomato-es" and the like are left to the caller
                prons = tuple(p for p in prons if p.endswith(" IH Z"))
            if prons:
                return prons
    return ()


def write_pronunciation_dict(
    words: Iterable[str], path: str, derive_s_forms: bool = True, source: Optional[str] = None
) -> List[str]:
    """Write the CMU dictionary entries (all pronunciations) of ``words`` to ``path``.

    Args:
        words: normalised words (lower case, as :func:`normalize_text` gives them); repeats are fine.
        path: output dictionary, pocketsphinx format (``word PH ...``, ``word(2) PH ...``), written
            atomically, words sorted.
        derive_s_forms: a word missing from the dictionary that is the regular ``-s``, ``-es`` or
            ``-'s`` form of a word in it (``lemonades`` from ``lemonade``) gets the stem's
            pronunciations plus /S/, /Z/ or /IH Z/ chosen by the stem's last phone. Without it,
            such words are missing too.
        source: CMU-format dictionary to take the entries from; the one bundled with pocketsphinx
            by default.

    Returns:
        The words whose pronunciations were derived (sorted; empty when all were in the dictionary).

    Raises:
        ValueError: some words have no pronunciation; the message lists them.
    """
    dictionary = cmu_dictionary(source or bundled_paths()["dict"])
    wanted = sorted(set(words))
    entries: Dict[str, Tuple[str, ...]] = {}
    derived: List[str] = []
    missing: List[str] = []
    for word in wanted:
        if word in dictionary:
            entries[word] = dictionary[word]
            continue
        prons = derive_s_form(word, dictionary) if derive_s_forms else ()
        if prons:
            entries[word] = prons
            derived.append(word)
        else:
            missing.append(word)
    if missing:
        shown = ", ".join(repr(w) for w in missing[:50]) + (" ..." if len(missing) > 50 else "")
        raise ValueError(f"{len(missing)} word(s) have no pronunciation in the CMU dictionary: {shown}")
    if not entries:
        raise ValueError("no words to write a pronunciation dictionary for")
    with atomic_open(path) as f:
        for word in wanted:
            for index, pronunciation in enumerate(entries[word]):
                name = word if index == 0 else f"{word}({index + 1})"
                f.write(f"{name} {pronunciation}\n")
    return derived
