"""French and English word forms that depend on context: numbers, determiners, elision, contraction.

* :func:`french_number` / :func:`english_number`: 0..99 spelled out (``vingt et une``,
  ``quatre-vingts``, ``twenty-one``).
* :func:`render_french`: spells a French token sequence. A :class:`Determiner` token is resolved
  against the word after it (``cet``/``ce``, ``mon amie``), then ``le``/``la``/``je``/``ne``/``de``/``que``
  elide before a vowel sound (``l'``, ``j'``, ...; not before an aspirated h), then ``à``/``de`` contract
  with ``le``/``les`` (``au``, ``aux``, ``du``, ``des``).
* :func:`english_determiner`: the English determiner of a determiner kind (``a``/``an``, ``some``, ...).
"""

from __future__ import annotations

from typing import List, NamedTuple, Sequence, Union

__all__ = [
    "french_number",
    "english_number",
    "Determiner",
    "POSSESSIVES",
    "Token",
    "english_determiner",
    "render_french",
]

# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------

_FR_UNITS = (
    "zéro",
    "un",
    "deux",
    "trois",
    "quatre",
    "cinq",
    "six",
    "sept",
    "huit",
    "neuf",
    "dix",
    "onze",
    "douze",
    "treize",
    "quatorze",
    "quinze",
    "seize",
)
_FR_TENS = {20: "vingt", 30: "trente", 40: "quarante", 50: "cinquante", 60: "soixante"}
_EN_UNITS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_EN_TENS = {
    20: "twenty",
    30: "thirty",
    40: "forty",
    50: "fifty",
    60: "sixty",
    70: "seventy",
    80: "eighty",
    90: "ninety",
}


def french_number(n: int, feminine: bool = False) -> str:
    """``n`` in 0..99 spelled in French (traditional spelling: ``vingt et un``, ``quatre-vingts``)."""
    if not 0 <= n <= 99:
        raise ValueError(f"french_number handles 0..99, got {n}")
    if n <= 16:
        word = _FR_UNITS[n]
    elif n < 20:
        word = "dix-" + _FR_UNITS[n - 10]
    elif n < 70:
        tens, unit = divmod(n, 10)
        word = _FR_TENS[tens * 10] + ("" if unit == 0 else " et un" if unit == 1 else "-" + _FR_UNITS[unit])
    elif n < 80:
        word = "soixante et onze" if n == 71 else "soixante-" + french_number(n - 60)
    elif n == 80:
        word = "quatre-vingts"
    else:
        word = "quatre-vingt-" + french_number(n - 80)
    if feminine and word.endswith("un"):
        word += "e"  # vingt et une pommes
    return word


def english_number(n: int) -> str:
    """``n`` in 0..99 spelled in English (``twenty-one``)."""
    if not 0 <= n <= 99:
        raise ValueError(f"english_number handles 0..99, got {n}")
    if n < 20:
        return _EN_UNITS[n]
    tens, unit = divmod(n, 10)
    return _EN_TENS[tens * 10] + ("" if unit == 0 else "-" + _EN_UNITS[unit])


# ---------------------------------------------------------------------------------------------
# French spelling: determiners that depend on the next word, elision, contraction
# ---------------------------------------------------------------------------------------------

_VOWELS = set("aàâäeéèêëiîïoôöuùûüyœæ")
_ASPIRATED_H = {"haricot", "héros", "hibou", "homard", "honte", "hamster", "hangar", "haut", "hutte", "hache"}
_ELIDED = {"le": "l'", "la": "l'", "je": "j'", "ne": "n'", "de": "d'", "que": "qu'"}
_CONTRACTED = {("à", "le"): "au", ("à", "les"): "aux", ("de", "le"): "du", ("de", "les"): "des"}


def _starts_with_vowel_sound(word: str) -> bool:
    w = word.lower()
    if not w:
        return False
    if w[0] == "h":
        return w not in _ASPIRATED_H
    return w[0] in _VOWELS


class Determiner(NamedTuple):
    """A French determiner whose spelling depends on the word after it (cet, mon amie, l')."""

    kind: str  # def | indef | my | your | our | your_pl | their | this
    gender: str
    plural: bool


POSSESSIVES = {  # kind -> (m sg, f sg, plural, English)
    "my": ("mon", "ma", "mes", "my"),
    "your": ("ton", "ta", "tes", "your"),
    "our": ("notre", "notre", "nos", "our"),
    "your_pl": ("votre", "votre", "vos", "your"),
    "their": ("leur", "leur", "leurs", "their"),
}


def _french_determiner(det: Determiner, next_word: str) -> str:
    vowel = _starts_with_vowel_sound(next_word)
    if det.kind == "def":
        return "les" if det.plural else ("la" if det.gender == "f" else "le")  # l' comes from elision
    if det.kind == "indef":
        return "des" if det.plural else ("une" if det.gender == "f" else "un")
    if det.kind == "this":
        return "ces" if det.plural else ("cette" if det.gender == "f" else ("cet" if vowel else "ce"))
    m, f, pl, _ = POSSESSIVES[det.kind]
    if det.plural:
        return pl
    return f if det.gender == "f" and not vowel else m  # mon amie


def english_determiner(kind: str, plural: bool, next_word: str) -> str:
    if kind == "def":
        return "the"
    if kind == "indef":
        return "some" if plural else ("an" if next_word[:1].lower() in "aeiou" else "a")
    if kind == "this":
        return "these" if plural else "this"
    return POSSESSIVES[kind][3]


Token = Union[str, Determiner]


def render_french(tokens: Sequence[Token]) -> str:
    """Spell a French token sequence: resolve determiners, then elide, then contract."""
    words: List[str] = []
    for i, tok in enumerate(tokens):
        if isinstance(tok, Determiner):
            following = next(t for t in tokens[i + 1 :] if isinstance(t, str))
            words.append(_french_determiner(tok, following.split()[0]))
        else:
            words.extend(tok.split())
    elided: List[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in _ELIDED and i + 1 < len(words) and _starts_with_vowel_sound(words[i + 1]):
            elided.append(_ELIDED[w] + words[i + 1])
            i += 2
        else:
            elided.append(w)
            i += 1
    out: List[str] = []
    for w in elided:
        if out and (out[-1], w) in _CONTRACTED:
            out[-1] = _CONTRACTED[(out[-1], w)]
        else:
            out.append(w)
    return " ".join(out)
