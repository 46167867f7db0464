"""A small French -> English grammar for the synthetic parallel speech corpus.

Sentences are drawn from four templates (transitive, intransitive, copula, existential) in three
tenses (présent -> present simple, passé composé -> past simple, futur simple -> will), with
optional negation, prepositional phrases of place and time adverbs. Noun phrases agree in gender
and number (determiners, adjectives, numbers 2..99 spelled out, ``vingt et une``), and French
spelling rules are applied (elision ``l'``/``j'``/``n'``/``d'``, ``cet``/``mon`` before a vowel,
contractions ``au``/``aux``/``du``/``des``).

Word order differs where a simultaneous policy has to wait: most French adjectives follow the noun
and precede it in English (``le chien noir`` -> ``the black dog``), and a possessor follows in
French and comes first in English (``le chien noir de Marie`` -> ``Mary's black dog``); fronted or
final time adverbs keep their place. Each :class:`Sentence` counts its reorderings.

Everything is drawn from a ``random.Random`` so a seed fixes the corpus. The words and their
tables are in :mod:`~echostream_fairseq.data.lexicon`, the spelling rules and numbers in
:mod:`~echostream_fairseq.data.morphology`; this module holds the templates that combine them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from echostream_fairseq.data.lexicon import (
    ADJECTIVES,
    CONCRETE,
    NAMES,
    NOUNS,
    PERSON,
    PLACE,
    PREPOSITIONS,
    Adjective,
    Noun,
)
from echostream_fairseq.data.morphology import (
    POSSESSIVES,
    Determiner,
    Token,
    english_determiner,
    english_number,
    french_number,
    render_french,
)
from echostream_fairseq.data.verbs import (
    AVOIR,
    EN_BE,
    EN_PRONOUNS,
    ETRE,
    FR_PRONOUNS,
    FUTURE_ENDINGS,
    TIME_ADVERBS,
    VERBS,
    Verb,
)

__all__ = [
    "GRAMMAR_VERSION",
    "Sentence",
    "SentenceSampler",
    "sample_splits",
]

# Bump when the output for a seed changes: prep stamps record it, so old corpora are not reused.
GRAMMAR_VERSION = 1


@dataclass
class Sentence:
    """A French sentence and its English translation (raw: capitalised, final punctuation).

    ``reorderings`` counts the places where English puts a word earlier than French does
    (post-nominal adjectives, possessors).
    """

    fr: str
    en: str
    reorderings: int = 0
    template: str = ""


@dataclass
class _Phrase:
    fr: List[Token] = field(default_factory=list)
    en: List[str] = field(default_factory=list)
    person: int = 2  # 2: third singular, 5: third plural
    gender: str = "m"
    kinds: FrozenSet[str] = frozenset({PERSON})  # kinds of the head (pronouns and names: people)
    reorderings: int = 0


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


class SentenceSampler:
    """Draws random sentence pairs from the grammar; the seed fixes the sequence."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._places = [n for n in NOUNS if n.preps]

    # -- noun phrases ---------------------------------------------------------------------------
    def _noun(self, kinds: FrozenSet[str], countable_only: bool = False) -> Noun:
        pool = [n for n in NOUNS if n.kinds & kinds and (n.countable or not countable_only)]
        return self.rng.choice(pool)

    def _adjectives(self, noun: Noun, *, allow_pre: bool = True) -> Tuple[Optional[Adjective], Optional[Adjective]]:
        """(before-noun adjective, after-noun adjective), either may be None."""
        fitting = [a for a in ADJECTIVES if a.kinds & noun.kinds]
        pre = [a for a in fitting if a.before_noun]
        post = [a for a in fitting if not a.before_noun]
        r = self.rng.random()
        use_post = bool(post) and r < 0.55
        use_pre = allow_pre and bool(pre) and (0.55 <= r < 0.7 or (r < 0.15 and use_post))
        return (self.rng.choice(pre) if use_pre else None, self.rng.choice(post) if use_post else None)

    def noun_phrase(
        self,
        noun: Noun,
        *,
        determiners: Sequence[str] = ("def", "indef", "number", "poss", "this"),
        possessor: bool = True,
    ) -> _Phrase:
        """A noun phrase around ``noun`` with one of ``determiners`` (uncountable nouns: no number/indef)."""
        usable = [d for d in determiners if noun.countable or d in ("def", "poss", "this")]
        kind = self.rng.choice(usable or ["def"])
        plural = noun.countable and self.rng.random() < 0.3
        count = 0
        if kind == "number":
            count, plural = self.rng.randint(2, 99), True
        if kind == "poss":
            kind = self.rng.choice(sorted(POSSESSIVES))
        pre, post = self._adjectives(noun, allow_pre=not (kind == "indef" and plural))  # avoids "de grands"
        owner = self.rng.choice(NAMES) if possessor and kind == "def" and self.rng.random() < 0.12 else None

        gender = noun.gender
        fr: List[Token] = [
            french_number(count, feminine=gender == "f") if kind == "number" else Determiner(kind, gender, plural)
        ]
        if pre:
            fr.append(pre.french(gender, plural))
        fr.append(noun.fr_plural if plural else noun.fr)
        if post:
            fr.append(post.french(gender, plural))
        en_words = [a.en for a in (pre, post) if a] + [noun.en_plural if plural else noun.en]
        if owner:
            fr += ["de", owner[0]]
            en = [owner[1] + "'s"] + en_words  # le chien de Marie -> Mary's dog
        elif kind == "number":
            en = [english_number(count)] + en_words
        else:
            en = [english_determiner(kind, plural, en_words[0])] + en_words
        reorderings = (1 if post else 0) + (1 if owner else 0)
        return _Phrase(fr, en, 5 if plural else 2, gender, noun.kinds, reorderings)

    def subject(self, agents: FrozenSet[str]) -> _Phrase:
        r = self.rng.random()
        if r < 0.3:
            person = self.rng.randrange(6)
            gender = self.rng.choice("mf")
            if person == 2:
                return _Phrase(["elle" if gender == "f" else "il"], ["she" if gender == "f" else "he"], 2, gender)
            if person == 5:
                return _Phrase(["elles" if gender == "f" else "ils"], ["they"], 5, gender)
            return _Phrase([FR_PRONOUNS[person]], [EN_PRONOUNS[person]], person, gender)
        if r < 0.45 and PERSON in agents:
            fr_name, en_name, gender = self.rng.choice(NAMES)
            return _Phrase([fr_name], [en_name], 2, gender)
        return self.noun_phrase(self._noun(agents))

    def place_phrase(self) -> _Phrase:
        place = self.rng.choice(self._places)
        prep_fr, prep_en = PREPOSITIONS[self.rng.choice(place.preps)]
        np = self.noun_phrase(place, determiners=("def", "def", "poss", "this"), possessor=False)
        return _Phrase([prep_fr] + np.fr, prep_en.split() + np.en, reorderings=np.reorderings)

    # -- clauses --------------------------------------------------------------------------------
    def _verb_group(self, verb: Verb, person: int, tense: str, negative: bool) -> Tuple[List[str], List[str]]:
        """(French words, English words) of the conjugated verb, negation included."""
        if tense == "present":
            fr = [verb.present[person]]
            base, third, _ = verb.en
            if negative:
                en = ["does" if person == 2 else "do", "not", base]
            else:
                en = [third if person == 2 else base]
        elif tense == "past":
            fr = [AVOIR[person], verb.participle]
            en = ["did", "not", verb.en[0]] if negative else [verb.en[2]]
        else:
            fr = [verb.future_stem + FUTURE_ENDINGS[person]]
            en = ["will", "not", verb.en[0]] if negative else ["will", verb.en[0]]
        if negative:
            fr = ["ne", fr[0], "pas"] + fr[1:]  # je n'ai pas mangé
        return fr, " ".join(en).split()

    def _with_place(self, fr: List[Token], en: List[str], reorderings: int, probability: float):
        if self.rng.random() < probability:
            pp = self.place_phrase()
            return fr + pp.fr, en + pp.en, reorderings + pp.reorderings
        return fr, en, reorderings

    def sample(self) -> Sentence:
        """One random sentence pair."""
        r = self.rng.random()
        tense = self.rng.choice(("present", "present", "past", "future", "future"))
        negative = self.rng.random() < 0.2
        if r < 0.5:
            template = "transitive"
            verb = self.rng.choice([v for v in VERBS if v.objects])
            subj = self.subject(verb.agents)
            fr_v, en_v = self._verb_group(verb, subj.person, tense, negative)
            # a negated indefinite object would take "de" in French: keep to definite-like determiners
            dets = ("def", "poss", "this") if negative else ("def", "indef", "number", "poss", "this")
            obj = self.noun_phrase(self._noun(verb.objects), determiners=dets)
            fr, en, reorderings = self._with_place(
                subj.fr + fr_v + obj.fr, subj.en + en_v + obj.en, subj.reorderings + obj.reorderings, 0.3
            )
        elif r < 0.7:
            template = "intransitive"
            verb = self.rng.choice([v for v in VERBS if not v.objects])
            subj = self.subject(verb.agents)
            fr_v, en_v = self._verb_group(verb, subj.person, tense, negative)
            fr, en, reorderings = self._with_place(subj.fr + fr_v, subj.en + en_v, subj.reorderings, 0.6)
        elif r < 0.88:
            template = "copula"
            subj = self.subject(CONCRETE)
            adjective = self.rng.choice([a for a in ADJECTIVES if a.kinds & subj.kinds])
            plural = subj.person in (3, 5) or (subj.person == 4 and self.rng.random() < 0.5)
            fr_be = ETRE[tense][subj.person]
            fr_v = ["ne", fr_be, "pas"] if negative else [fr_be]
            if tense == "future":
                en_v = ["will", "not", "be"] if negative else ["will", "be"]
            else:
                en_v = [EN_BE[tense][subj.person]] + (["not"] if negative else [])
            fr = subj.fr + fr_v + [adjective.french(subj.gender, plural)]
            en = subj.en + en_v + [adjective.en]
            reorderings = subj.reorderings
        else:
            template = "existential"
            obj = self.noun_phrase(
                self._noun(CONCRETE - {PLACE}, countable_only=True), determiners=("indef", "number"), possessor=False
            )
            pp = self.place_phrase()
            plural = obj.person == 5
            fr_v = {"present": ["il", "y", "a"], "past": ["il", "y", "avait"], "future": ["il", "y", "aura"]}[tense]
            en_v = {
                "present": ["there", "are" if plural else "is"],
                "past": ["there", "were" if plural else "was"],
                "future": ["there", "will", "be"],
            }[tense]
            fr, en = fr_v + obj.fr + pp.fr, en_v + obj.en + pp.en
            reorderings = obj.reorderings + pp.reorderings
        fr_text, en_text = render_french(fr), " ".join(en)
        if self.rng.random() < 0.35:
            time_fr, time_en = self.rng.choice(TIME_ADVERBS[tense])
            if self.rng.random() < 0.4:
                fr_text, en_text = f"{time_fr}, {fr_text}", f"{time_en}, {en_text}"
            else:
                fr_text, en_text = f"{fr_text} {time_fr}", f"{en_text} {time_en}"
        return Sentence(_capitalise(fr_text) + ".", _capitalise(en_text) + ".", reorderings, template)


def sample_splits(seed: int, sizes: Dict[str, int], max_tries_per_sentence: int = 1000) -> Dict[str, List[Sentence]]:
    """Draw ``sizes[split]`` distinct sentence pairs per split.

    No French or English sentence appears twice in the whole corpus, so dev/test sentences are
    never in train. Splits are drawn in the order test, dev, train (then any others), so changing
    the train size keeps the same dev and test sentences.
    """
    sampler = SentenceSampler(seed)
    seen_fr, seen_en = set(), set()
    order = [s for s in ("test", "dev", "train") if s in sizes] + [
        s for s in sizes if s not in ("test", "dev", "train")
    ]
    out: Dict[str, List[Sentence]] = {}
    for split in order:
        sentences: List[Sentence] = []
        tries = 0
        while len(sentences) < sizes[split]:
            tries += 1
            if tries > max_tries_per_sentence * max(1, sizes[split]):
                raise ValueError(f"the grammar ran out of distinct sentences after {len(seen_fr)}")
            sentence = sampler.sample()
            key_fr, key_en = sentence.fr.lower(), sentence.en.lower()
            if key_fr in seen_fr or key_en in seen_en:
                continue
            seen_fr.add(key_fr)
            seen_en.add(key_en)
            sentences.append(sentence)
        out[split] = sentences
    return {split: out[split] for split in sizes}
