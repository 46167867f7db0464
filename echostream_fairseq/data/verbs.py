"""The verbs of the synthetic French -> English grammar, and the conjugation tables: *avoir*,
*être*, the future endings, the pronouns and the time adverbs per tense.

Each verb says which noun kinds (:mod:`~echostream_fairseq.data.lexicon`) it takes as subjects and
objects. As the lexicon's, the content and order of every table are part of the corpus
(:data:`~echostream_fairseq.data.grammar.GRAMMAR_VERSION`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional, Sequence, Tuple

from echostream_fairseq.data.lexicon import (
    ADJECTIVES,
    ANIMAL,
    ANIMATE,
    CONCRETE,
    CONTAINER,
    DRINK,
    FOOD,
    NAMES,
    NOUNS,
    PERSON,
    PLACE,
    SOUND,
    TEXT,
    THING,
    VEHICLE,
)
from echostream_fairseq.data.morphology import english_number, french_number

__all__ = [
    "Verb",
    "VERBS",
    "FR_PRONOUNS",
    "EN_PRONOUNS",
    "AVOIR",
    "ETRE",
    "EN_BE",
    "FUTURE_ENDINGS",
    "TIME_ADVERBS",
    "lexicon_summary",
]


@dataclass(frozen=True)
class Verb:
    """A verb: French present (6 persons), future stem, participle; English base/3sg/past forms.

    ``objects``: kinds of direct object (empty: used intransitively); ``agents``: kinds of subject.
    English forms may carry a particle (``look for``): negation puts ``not`` before the base form.
    """

    infinitive: str
    present: Tuple[str, str, str, str, str, str]
    future_stem: str
    participle: str
    en: Tuple[str, str, str]  # base, 3rd singular present, past
    objects: FrozenSet[str]
    agents: FrozenSet[str]


def _er(
    infinitive: str,
    en: Tuple[str, str, str],
    objects=(),
    agents=ANIMATE,
    *,
    future_stem: str = "",
    present: Optional[Sequence[str]] = None,
) -> Verb:
    stem = infinitive[:-2]
    nous = stem + ("eons" if stem.endswith("g") else "ons")  # mangeons, nageons
    forms = tuple(present) if present else (stem + "e", stem + "es", stem + "e", nous, stem + "ez", stem + "ent")
    return Verb(infinitive, forms, future_stem or infinitive, stem + "é", en, frozenset(objects), frozenset(agents))


def _irr(
    infinitive: str,
    present: str,
    future_stem: str,
    participle: str,
    en: Tuple[str, str, str],
    objects=(),
    agents=ANIMATE,
) -> Verb:
    forms = tuple(present.split())
    assert len(forms) == 6, infinitive
    return Verb(infinitive, forms, future_stem, participle, en, frozenset(objects), frozenset(agents))


_P = frozenset({PERSON})
VERBS: Tuple[Verb, ...] = (
    # transitive
    _er("manger", ("eat", "eats", "ate"), {FOOD}),
    _irr("boire", "bois bois boit buvons buvez boivent", "boir", "bu", ("drink", "drinks", "drank"), {DRINK}),
    _er(
        "acheter",
        ("buy", "buys", "bought"),
        {FOOD, DRINK, THING, TEXT, VEHICLE},
        _P,
        future_stem="achèter",
        present=("achète", "achètes", "achète", "achetons", "achetez", "achètent"),
    ),
    _irr(
        "vendre",
        "vends vends vend vendons vendez vendent",
        "vendr",
        "vendu",
        ("sell", "sells", "sold"),
        {FOOD, THING, TEXT, VEHICLE},
        _P,
    ),
    _irr("voir", "vois vois voit voyons voyez voient", "verr", "vu", ("see", "sees", "saw"), CONCRETE),
    _er("regarder", ("watch", "watches", "watched"), {ANIMAL, PERSON, VEHICLE, THING}),
    _er("aimer", ("like", "likes", "liked"), CONCRETE | {SOUND}),
    _er("chercher", ("look for", "looks for", "looked for"), {ANIMAL, PERSON, THING, TEXT, VEHICLE}),
    _er("trouver", ("find", "finds", "found"), {ANIMAL, THING, TEXT, FOOD}),
    _irr(
        "prendre",
        "prends prends prend prenons prenez prennent",
        "prendr",
        "pris",
        ("take", "takes", "took"),
        {THING, FOOD, TEXT, VEHICLE},
        _P,
    ),
    _er("porter", ("carry", "carries", "carried"), {THING, FOOD, CONTAINER}),
    _irr("lire", "lis lis lit lisons lisez lisent", "lir", "lu", ("read", "reads", "read"), {TEXT}, _P),
    _irr(
        "écrire",
        "écris écris écrit écrivons écrivez écrivent",
        "écrir",
        "écrit",
        ("write", "writes", "wrote"),
        {TEXT},
        _P,
    ),
    _irr(
        "ouvrir",
        "ouvre ouvres ouvre ouvrons ouvrez ouvrent",
        "ouvrir",
        "ouvert",
        ("open", "opens", "opened"),
        {CONTAINER},
        _P,
    ),
    _er("fermer", ("close", "closes", "closed"), {CONTAINER}, _P),
    _er("laver", ("wash", "washes", "washed"), {THING, VEHICLE, ANIMAL}, _P),
    _er(
        "préparer",
        ("prepare", "prepares", "prepared"),
        {FOOD, DRINK},
        _P,
        present=("prépare", "prépares", "prépare", "préparons", "préparez", "préparent"),
    ),
    _er(
        "appeler",
        ("call", "calls", "called"),
        {PERSON, ANIMAL},
        _P,
        future_stem="appeller",
        present=("appelle", "appelles", "appelle", "appelons", "appelez", "appellent"),
    ),
    _irr(
        "attendre",
        "attends attends attend attendons attendez attendent",
        "attendr",
        "attendu",
        ("wait for", "waits for", "waited for"),
        {PERSON, ANIMAL, VEHICLE},
    ),
    _irr(
        "suivre",
        "suis suis suit suivons suivez suivent",
        "suivr",
        "suivi",
        ("follow", "follows", "followed"),
        {PERSON, ANIMAL, VEHICLE},
    ),
    _er("écouter", ("listen to", "listens to", "listened to"), {PERSON, SOUND, ANIMAL}),
    _irr(
        "perdre",
        "perds perds perd perdons perdez perdent",
        "perdr",
        "perdu",
        ("lose", "loses", "lost"),
        {THING, TEXT, CONTAINER},
        _P,
    ),
    _irr(
        "construire",
        "construis construis construit construisons construisez construisent",
        "construir",
        "construit",
        ("build", "builds", "built"),
        {PLACE, VEHICLE},
        _P,
    ),
    _irr(
        "peindre",
        "peins peins peint peignons peignez peignent",
        "peindr",
        "peint",
        ("paint", "paints", "painted"),
        {PLACE, THING, VEHICLE, CONTAINER},
        _P,
    ),
    _er("dessiner", ("draw", "draws", "drew"), {ANIMAL, PERSON, PLACE, VEHICLE, THING}, _P),
    _irr(
        "choisir",
        "choisis choisis choisit choisissons choisissez choisissent",
        "choisir",
        "choisi",
        ("choose", "chooses", "chose"),
        {FOOD, DRINK, THING, TEXT, VEHICLE, ANIMAL},
        _P,
    ),
    _irr(
        "finir",
        "finis finis finit finissons finissez finissent",
        "finir",
        "fini",
        ("finish", "finishes", "finished"),
        {FOOD, DRINK, TEXT},
        _P,
    ),
    _irr(
        "nourrir",
        "nourris nourris nourrit nourrissons nourrissez nourrissent",
        "nourrir",
        "nourri",
        ("feed", "feeds", "fed"),
        {ANIMAL, PERSON},
        _P,
    ),
    _er("visiter", ("visit", "visits", "visited"), {PLACE}, _P),
    _er("aider", ("help", "helps", "helped"), {PERSON, ANIMAL}, _P),
    _er("rencontrer", ("meet", "meets", "met"), {PERSON}, _P),
    _er("oublier", ("forget", "forgets", "forgot"), {THING, TEXT, CONTAINER}, _P),
    _er("cacher", ("hide", "hides", "hid"), {THING, FOOD, TEXT, CONTAINER}),
    # intransitive
    _irr("dormir", "dors dors dort dormons dormez dorment", "dormir", "dormi", ("sleep", "sleeps", "slept")),
    _irr("courir", "cours cours court courons courez courent", "courr", "couru", ("run", "runs", "ran")),
    _er("chanter", ("sing", "sings", "sang")),
    _er("danser", ("dance", "dances", "danced"), agents=_P),
    _er("marcher", ("walk", "walks", "walked")),
    _er("travailler", ("work", "works", "worked"), agents=_P),
    _er("jouer", ("play", "plays", "played")),
    _er("nager", ("swim", "swims", "swam")),
    _er("parler", ("speak", "speaks", "spoke"), agents=_P),
    _irr("rire", "ris ris rit rions riez rient", "rir", "ri", ("laugh", "laughs", "laughed"), agents=_P),
    _er("pleurer", ("cry", "cries", "cried")),
    _er("étudier", ("study", "studies", "studied"), agents=_P),
    _irr(
        "attendre",
        "attends attends attend attendons attendez attendent",
        "attendr",
        "attendu",
        ("wait", "waits", "waited"),
    ),
)

# (French, English, gender)

# person index: 0 je, 1 tu, 2 il/elle/singular noun, 3 nous, 4 vous, 5 ils/elles/plural noun
FR_PRONOUNS = ("je", "tu", None, "nous", "vous", None)
EN_PRONOUNS = ("I", "you", None, "we", "you", "they")
AVOIR = ("ai", "as", "a", "avons", "avez", "ont")
ETRE = {
    "present": ("suis", "es", "est", "sommes", "êtes", "sont"),
    "past": ("étais", "étais", "était", "étions", "étiez", "étaient"),
    "future": ("serai", "seras", "sera", "serons", "serez", "seront"),
}
EN_BE = {"present": ("am", "are", "is", "are", "are", "are"), "past": ("was", "were", "was", "were", "were", "were")}
FUTURE_ENDINGS = ("ai", "as", "a", "ons", "ez", "ont")

# time adverbs per tense: (French, English)
TIME_ADVERBS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "present": (("aujourd'hui", "today"), ("maintenant", "now")),
    "past": (
        ("hier", "yesterday"),
        ("hier soir", "last night"),
        ("la semaine dernière", "last week"),
        ("ce matin", "this morning"),
    ),
    "future": (
        ("demain", "tomorrow"),
        ("demain matin", "tomorrow morning"),
        ("la semaine prochaine", "next week"),
        ("ce soir", "tonight"),
        ("bientôt", "soon"),
    ),
}


def lexicon_summary() -> Dict[str, int]:
    """Sizes of the lexicon: entries per class and distinct word forms per language."""
    fr_words, en_words = set(), set()
    for n in NOUNS:
        fr_words |= {n.fr, n.fr_plural}
        en_words |= {n.en, n.en_plural}
    for a in ADJECTIVES:
        fr_words |= set(a.forms)
        en_words.add(a.en)
    for v in VERBS:
        fr_words |= set(v.present) | {v.participle} | {v.future_stem + e for e in FUTURE_ENDINGS}
        en_words |= set(" ".join(v.en).split())
    for fr, en, _ in NAMES:
        fr_words.add(fr)
        en_words |= {en, en + "'s"}
    for i in range(100):
        fr_words |= set(french_number(i).replace("-", " ").split()) | {"une"}
        en_words |= set(english_number(i).replace("-", " ").split())
    return {
        "nouns": len(NOUNS),
        "adjectives": len(ADJECTIVES),
        "verbs": len(VERBS),
        "names": len(NAMES),
        "lemmas": len(NOUNS) + len(ADJECTIVES) + len({v.infinitive for v in VERBS}) + len(NAMES),
        "french_content_word_forms": len(fr_words),
        "english_content_word_forms": len(en_words),
    }
