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

Everything is drawn from a ``random.Random`` so a seed fixes the corpus.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple, Union

__all__ = [
    "Noun",
    "Adjective",
    "Verb",
    "Sentence",
    "NOUNS",
    "ADJECTIVES",
    "VERBS",
    "NAMES",
    "GRAMMAR_VERSION",
    "french_number",
    "english_number",
    "render_french",
    "SentenceSampler",
    "sample_splits",
    "lexicon_summary",
]

# Bump when the output for a seed changes: prep stamps record it, so old corpora are not reused.
GRAMMAR_VERSION = 1

# ---------------------------------------------------------------------------------------------
# Lexicon
# ---------------------------------------------------------------------------------------------

# noun kinds; verbs and adjectives say which kinds they combine with
ANIMAL, PERSON, FOOD, DRINK, THING, TEXT, CONTAINER, VEHICLE, PLACE, SOUND = (
    "animal", "person", "food", "drink", "thing", "text", "container", "vehicle", "place", "sound",
)
ANIMATE = frozenset({ANIMAL, PERSON})
CONCRETE = frozenset({ANIMAL, PERSON, FOOD, DRINK, THING, TEXT, CONTAINER, VEHICLE, PLACE})
OBJECTS = frozenset({THING, TEXT, CONTAINER})

# preposition codes -> (French, English)
PREPOSITIONS: Dict[str, Tuple[str, str]] = {
    "in": ("dans", "in"),
    "on": ("sur", "on"),
    "under": ("sous", "under"),
    "front": ("devant", "in front of"),
    "behind": ("derrière", "behind"),
    "near": ("près de", "near"),
    "next": ("à côté de", "next to"),
    "at": ("à", "at"),
}


@dataclass(frozen=True)
class Noun:
    """A noun: French singular/plural and gender, English singular/plural, kinds, prepositions.

    ``preps`` lists the :data:`PREPOSITIONS` codes it can follow as a place; ``countable`` nouns
    can take numbers and indefinite articles.
    """

    fr: str
    fr_plural: str
    gender: str  # "m" | "f"
    en: str
    en_plural: str
    kinds: FrozenSet[str]
    preps: Tuple[str, ...] = ()
    countable: bool = True


def _n(fr: str, gender: str, en: str, kinds: Union[str, Sequence[str]], *, fr_pl: str = "", en_pl: str = "",
       preps: str = "", countable: bool = True) -> Noun:
    kinds_set = frozenset([kinds] if isinstance(kinds, str) else kinds)
    return Noun(fr, fr_pl or fr + "s", gender, en, en_pl or en + "s", kinds_set, tuple(preps.split()), countable)


NOUNS: Tuple[Noun, ...] = (
    # animals
    _n("chat", "m", "cat", ANIMAL), _n("chien", "m", "dog", ANIMAL),
    _n("oiseau", "m", "bird", ANIMAL, fr_pl="oiseaux"), _n("cheval", "m", "horse", ANIMAL, fr_pl="chevaux"),
    _n("souris", "f", "mouse", ANIMAL, fr_pl="souris", en_pl="mice"), _n("lapin", "m", "rabbit", ANIMAL),
    _n("poisson", "m", "fish", ANIMAL, en_pl="fish"), _n("vache", "f", "cow", ANIMAL),
    _n("cochon", "m", "pig", ANIMAL), _n("mouton", "m", "sheep", ANIMAL, en_pl="sheep"),
    _n("canard", "m", "duck", ANIMAL), _n("éléphant", "m", "elephant", ANIMAL),
    _n("lion", "m", "lion", ANIMAL), _n("tigre", "m", "tiger", ANIMAL),
    _n("ours", "m", "bear", ANIMAL, fr_pl="ours"), _n("singe", "m", "monkey", ANIMAL),
    _n("renard", "m", "fox", ANIMAL, en_pl="foxes"), _n("loup", "m", "wolf", ANIMAL, en_pl="wolves"),
    _n("abeille", "f", "bee", ANIMAL), _n("tortue", "f", "turtle", ANIMAL),
    _n("grenouille", "f", "frog", ANIMAL), _n("poule", "f", "hen", ANIMAL),
    _n("serpent", "m", "snake", ANIMAL), _n("araignée", "f", "spider", ANIMAL),
    # people
    _n("homme", "m", "man", PERSON, en_pl="men"), _n("femme", "f", "woman", PERSON, en_pl="women"),
    _n("enfant", "m", "child", PERSON, en_pl="children"), _n("garçon", "m", "boy", PERSON),
    _n("fille", "f", "girl", PERSON), _n("ami", "m", "friend", PERSON), _n("amie", "f", "friend", PERSON),
    _n("voisin", "m", "neighbor", PERSON), _n("voisine", "f", "neighbor", PERSON),
    _n("professeur", "m", "teacher", PERSON), _n("médecin", "m", "doctor", PERSON),
    _n("étudiant", "m", "student", PERSON), _n("étudiante", "f", "student", PERSON),
    _n("boulanger", "m", "baker", PERSON), _n("soldat", "m", "soldier", PERSON),
    _n("roi", "m", "king", PERSON), _n("reine", "f", "queen", PERSON),
    _n("frère", "m", "brother", PERSON), _n("sœur", "f", "sister", PERSON),
    _n("père", "m", "father", PERSON), _n("mère", "f", "mother", PERSON), _n("cousin", "m", "cousin", PERSON),
    # food and drink
    _n("pomme", "f", "apple", FOOD), _n("orange", "f", "orange", FOOD), _n("banane", "f", "banana", FOOD),
    _n("gâteau", "m", "cake", FOOD, fr_pl="gâteaux"), _n("tomate", "f", "tomato", FOOD, en_pl="tomatoes"),
    _n("carotte", "f", "carrot", FOOD), _n("œuf", "m", "egg", FOOD), _n("poire", "f", "pear", FOOD),
    _n("citron", "m", "lemon", FOOD), _n("fraise", "f", "strawberry", FOOD, en_pl="strawberries"),
    _n("biscuit", "m", "cookie", FOOD), _n("tarte", "f", "pie", FOOD), _n("pizza", "f", "pizza", FOOD),
    _n("soupe", "f", "soup", FOOD, countable=False), _n("fromage", "m", "cheese", FOOD, countable=False),
    _n("pain", "m", "bread", FOOD, countable=False),
    _n("café", "m", "coffee", DRINK, en_pl="coffees"), _n("thé", "m", "tea", DRINK),
    _n("bière", "f", "beer", DRINK), _n("limonade", "f", "lemonade", DRINK),
    _n("lait", "m", "milk", DRINK, countable=False), _n("eau", "f", "water", DRINK, countable=False),
    # things
    _n("livre", "m", "book", (TEXT, THING, CONTAINER), preps="on under near next"),
    _n("lettre", "f", "letter", (TEXT, THING)), _n("journal", "m", "newspaper", (TEXT, THING), fr_pl="journaux"),
    _n("carte", "f", "map", (TEXT, THING)), _n("histoire", "f", "story", TEXT, en_pl="stories"),
    _n("porte", "f", "door", CONTAINER, preps="front behind near next"),
    _n("fenêtre", "f", "window", CONTAINER, preps="front near next"),
    _n("boîte", "f", "box", (CONTAINER, THING), en_pl="boxes", preps="in on under behind next"),
    _n("sac", "m", "bag", (CONTAINER, THING), preps="in next"),
    _n("clé", "f", "key", THING), _n("téléphone", "m", "phone", THING),
    _n("chapeau", "m", "hat", THING, fr_pl="chapeaux"), _n("manteau", "m", "coat", THING, fr_pl="manteaux"),
    _n("chaussure", "f", "shoe", THING), _n("table", "f", "table", THING, preps="on under near next"),
    _n("chaise", "f", "chair", THING, preps="on under behind next"), _n("lampe", "f", "lamp", THING, preps="under near next"),
    _n("balle", "f", "ball", THING), _n("stylo", "m", "pen", THING), _n("tasse", "f", "cup", THING),
    _n("assiette", "f", "plate", THING), _n("parapluie", "m", "umbrella", THING),
    _n("ordinateur", "m", "computer", THING), _n("montre", "f", "watch", THING, en_pl="watches"),
    _n("robe", "f", "dress", THING, en_pl="dresses"), _n("photo", "f", "photo", THING),
    _n("guitare", "f", "guitar", THING), _n("valise", "f", "suitcase", (THING, CONTAINER)),
    # vehicles
    _n("voiture", "f", "car", VEHICLE, preps="in behind front next"), _n("vélo", "m", "bike", VEHICLE),
    _n("bus", "m", "bus", VEHICLE, fr_pl="bus", en_pl="buses", preps="in"), _n("train", "m", "train", VEHICLE, preps="in"),
    _n("bateau", "m", "boat", VEHICLE, fr_pl="bateaux", preps="on"), _n("avion", "m", "plane", VEHICLE, preps="in"),
    _n("camion", "m", "truck", VEHICLE, preps="behind front next"),
    # places
    _n("maison", "f", "house", PLACE, preps="in front behind near next"),
    _n("école", "f", "school", PLACE, preps="in front behind near next at"),
    _n("église", "f", "church", PLACE, en_pl="churches", preps="in front behind near next"),
    _n("pont", "m", "bridge", PLACE, preps="on under near"),
    _n("château", "m", "castle", PLACE, fr_pl="châteaux", preps="in front behind near"),
    _n("hôtel", "m", "hotel", PLACE, preps="in front near next at"),
    _n("magasin", "m", "shop", PLACE, preps="in front near next"),
    _n("marché", "m", "market", PLACE, preps="near at"), _n("gare", "f", "station", PLACE, preps="in front near next at"),
    _n("jardin", "m", "garden", PLACE, preps="in"), _n("parc", "m", "park", PLACE, preps="in near"),
    _n("forêt", "f", "forest", PLACE, preps="in near"), _n("rivière", "f", "river", PLACE, preps="in near"),
    _n("plage", "f", "beach", PLACE, en_pl="beaches", preps="on near"),
    _n("montagne", "f", "mountain", PLACE, preps="on near"), _n("ville", "f", "city", PLACE, en_pl="cities", preps="in near"),
    _n("village", "m", "village", PLACE, preps="in near"), _n("cuisine", "f", "kitchen", PLACE, preps="in"),
    _n("chambre", "f", "bedroom", PLACE, preps="in"), _n("bureau", "m", "office", PLACE, fr_pl="bureaux", preps="in"),
    _n("restaurant", "m", "restaurant", PLACE, preps="in front near at"), _n("musée", "m", "museum", PLACE, preps="in near"),
    _n("bibliothèque", "f", "library", PLACE, en_pl="libraries", preps="in near at"),
    _n("hôpital", "m", "hospital", PLACE, fr_pl="hôpitaux", preps="in near at"),
    _n("lac", "m", "lake", PLACE, preps="in near"), _n("rue", "f", "street", PLACE, preps="in"),
    # things one hears
    _n("musique", "f", "music", SOUND, countable=False), _n("chanson", "f", "song", SOUND),
    _n("radio", "f", "radio", SOUND),
)


@dataclass(frozen=True)
class Adjective:
    """An adjective: French forms (m sg, f sg, m pl, f pl), English, position in French, noun kinds."""

    forms: Tuple[str, str, str, str]
    en: str
    before_noun: bool  # French position; English adjectives always precede the noun
    kinds: FrozenSet[str]

    def french(self, gender: str, plural: bool) -> str:
        return self.forms[(1 if gender == "f" else 0) + (2 if plural else 0)]


def _a(ms: str, en: str, kinds: Union[str, Sequence[str], FrozenSet[str]], *, fs: str = "", mp: str = "", fp: str = "",
       before: bool = False) -> Adjective:
    fs = fs or (ms if ms.endswith("e") else ms + "e")
    mp = mp or (ms if ms.endswith(("s", "x")) else ms + "s")
    fp = fp or fs + "s"
    kinds_set = frozenset([kinds] if isinstance(kinds, str) else kinds)
    return Adjective((ms, fs, mp, fp), en, before, kinds_set)


_COLOURED = frozenset({ANIMAL, THING, CONTAINER, VEHICLE, PLACE})
_OBJECTLIKE = frozenset({THING, CONTAINER, TEXT, VEHICLE})
ADJECTIVES: Tuple[Adjective, ...] = (
    # colours (after the noun in French)
    _a("noir", "black", _COLOURED), _a("blanc", "white", _COLOURED, fs="blanche"),
    _a("rouge", "red", _COLOURED | {FOOD}), _a("vert", "green", _COLOURED | {FOOD}),
    _a("bleu", "blue", _COLOURED), _a("jaune", "yellow", _COLOURED | {FOOD}),
    _a("gris", "gray", _COLOURED, fs="grise"), _a("brun", "brown", _COLOURED),
    _a("rose", "pink", _COLOURED), _a("violet", "purple", _OBJECTLIKE, fs="violette"),
    # people and animals
    _a("heureux", "happy", ANIMATE, fs="heureuse"), _a("triste", "sad", ANIMATE),
    _a("fatigué", "tired", ANIMATE), _a("malade", "sick", ANIMATE), _a("gentil", "kind", ANIMATE, fs="gentille"),
    _a("intelligent", "clever", ANIMATE), _a("curieux", "curious", ANIMATE, fs="curieuse"),
    _a("drôle", "funny", ANIMATE | {TEXT}), _a("célèbre", "famous", {PERSON, ANIMAL, PLACE, TEXT}),
    _a("calme", "calm", ANIMATE | {PLACE}), _a("fort", "strong", ANIMATE | {DRINK}),
    _a("rapide", "fast", {ANIMAL, VEHICLE}), _a("lent", "slow", {ANIMAL, VEHICLE}),
    # food, drink, things, places
    _a("frais", "fresh", {FOOD, DRINK}, fs="fraîche"), _a("délicieux", "delicious", {FOOD, DRINK}, fs="délicieuse"),
    _a("sucré", "sweet", {FOOD, DRINK}), _a("chaud", "hot", {FOOD, DRINK}), _a("froid", "cold", {FOOD, DRINK, PLACE}),
    _a("cassé", "broken", _OBJECTLIKE), _a("lourd", "heavy", _OBJECTLIKE | {ANIMAL}),
    _a("léger", "light", _OBJECTLIKE, fs="légère"), _a("cher", "expensive", _OBJECTLIKE | {FOOD, DRINK}, fs="chère"),
    _a("propre", "clean", _OBJECTLIKE | {PLACE}), _a("sale", "dirty", _OBJECTLIKE | {PLACE, ANIMAL}),
    _a("vide", "empty", {CONTAINER, PLACE}), _a("plein", "full", {CONTAINER}),
    _a("moderne", "modern", {PLACE, VEHICLE, THING}), _a("tranquille", "quiet", {PLACE}),
    _a("bruyant", "noisy", {PLACE, VEHICLE, ANIMAL}), _a("sombre", "dark", {PLACE}),
    _a("ancien", "old", {PLACE, THING, TEXT}, fs="ancienne"),
    # before the noun in French too (no reordering)
    _a("grand", "big", CONCRETE - {DRINK}, before=True), _a("petit", "small", CONCRETE - {DRINK}, before=True),
    _a("jeune", "young", ANIMATE, before=True), _a("joli", "pretty", CONCRETE - {DRINK, FOOD}, before=True),
    _a("bon", "good", {FOOD, DRINK, PERSON, TEXT}, fs="bonne", before=True),
    _a("mauvais", "bad", {FOOD, DRINK, TEXT}, before=True), _a("long", "long", {TEXT}, fs="longue", before=True),
)


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


def _er(infinitive: str, en: Tuple[str, str, str], objects=(), agents=ANIMATE, *, future_stem: str = "",
        present: Optional[Sequence[str]] = None) -> Verb:
    stem = infinitive[:-2]
    nous = stem + ("eons" if stem.endswith("g") else "ons")  # mangeons, nageons
    forms = tuple(present) if present else (stem + "e", stem + "es", stem + "e", nous, stem + "ez", stem + "ent")
    return Verb(infinitive, forms, future_stem or infinitive, stem + "é", en, frozenset(objects), frozenset(agents))


def _irr(infinitive: str, present: str, future_stem: str, participle: str, en: Tuple[str, str, str], objects=(),
         agents=ANIMATE) -> Verb:
    forms = tuple(present.split())
    assert len(forms) == 6, infinitive
    return Verb(infinitive, forms, future_stem, participle, en, frozenset(objects), frozenset(agents))


_P = frozenset({PERSON})
VERBS: Tuple[Verb, ...] = (
    # transitive
    _er("manger", ("eat", "eats", "ate"), {FOOD}),
    _irr("boire", "bois bois boit buvons buvez boivent", "boir", "bu", ("drink", "drinks", "drank"), {DRINK}),
    _er("acheter", ("buy", "buys", "bought"), {FOOD, DRINK, THING, TEXT, VEHICLE}, _P, future_stem="achèter",
        present=("achète", "achètes", "achète", "achetons", "achetez", "achètent")),
    _irr("vendre", "vends vends vend vendons vendez vendent", "vendr", "vendu", ("sell", "sells", "sold"),
         {FOOD, THING, TEXT, VEHICLE}, _P),
    _irr("voir", "vois vois voit voyons voyez voient", "verr", "vu", ("see", "sees", "saw"), CONCRETE),
    _er("regarder", ("watch", "watches", "watched"), {ANIMAL, PERSON, VEHICLE, THING}),
    _er("aimer", ("like", "likes", "liked"), CONCRETE | {SOUND}),
    _er("chercher", ("look for", "looks for", "looked for"), {ANIMAL, PERSON, THING, TEXT, VEHICLE}),
    _er("trouver", ("find", "finds", "found"), {ANIMAL, THING, TEXT, FOOD}),
    _irr("prendre", "prends prends prend prenons prenez prennent", "prendr", "pris", ("take", "takes", "took"),
         {THING, FOOD, TEXT, VEHICLE}, _P),
    _er("porter", ("carry", "carries", "carried"), {THING, FOOD, CONTAINER}),
    _irr("lire", "lis lis lit lisons lisez lisent", "lir", "lu", ("read", "reads", "read"), {TEXT}, _P),
    _irr("écrire", "écris écris écrit écrivons écrivez écrivent", "écrir", "écrit", ("write", "writes", "wrote"),
         {TEXT}, _P),
    _irr("ouvrir", "ouvre ouvres ouvre ouvrons ouvrez ouvrent", "ouvrir", "ouvert", ("open", "opens", "opened"),
         {CONTAINER}, _P),
    _er("fermer", ("close", "closes", "closed"), {CONTAINER}, _P),
    _er("laver", ("wash", "washes", "washed"), {THING, VEHICLE, ANIMAL}, _P),
    _er("préparer", ("prepare", "prepares", "prepared"), {FOOD, DRINK}, _P,
        present=("prépare", "prépares", "prépare", "préparons", "préparez", "préparent")),
    _er("appeler", ("call", "calls", "called"), {PERSON, ANIMAL}, _P, future_stem="appeller",
        present=("appelle", "appelles", "appelle", "appelons", "appelez", "appellent")),
    _irr("attendre", "attends attends attend attendons attendez attendent", "attendr", "attendu",
         ("wait for", "waits for", "waited for"), {PERSON, ANIMAL, VEHICLE}),
    _irr("suivre", "suis suis suit suivons suivez suivent", "suivr", "suivi", ("follow", "follows", "followed"),
         {PERSON, ANIMAL, VEHICLE}),
    _er("écouter", ("listen to", "listens to", "listened to"), {PERSON, SOUND, ANIMAL}),
    _irr("perdre", "perds perds perd perdons perdez perdent", "perdr", "perdu", ("lose", "loses", "lost"),
         {THING, TEXT, CONTAINER}, _P),
    _irr("construire", "construis construis construit construisons construisez construisent", "construir", "construit",
         ("build", "builds", "built"), {PLACE, VEHICLE}, _P),
    _irr("peindre", "peins peins peint peignons peignez peignent", "peindr", "peint", ("paint", "paints", "painted"),
         {PLACE, THING, VEHICLE, CONTAINER}, _P),
    _er("dessiner", ("draw", "draws", "drew"), {ANIMAL, PERSON, PLACE, VEHICLE, THING}, _P),
    _irr("choisir", "choisis choisis choisit choisissons choisissez choisissent", "choisir", "choisi",
         ("choose", "chooses", "chose"), {FOOD, DRINK, THING, TEXT, VEHICLE, ANIMAL}, _P),
    _irr("finir", "finis finis finit finissons finissez finissent", "finir", "fini", ("finish", "finishes", "finished"),
         {FOOD, DRINK, TEXT}, _P),
    _irr("nourrir", "nourris nourris nourrit nourrissons nourrissez nourrissent", "nourrir", "nourri",
         ("feed", "feeds", "fed"), {ANIMAL, PERSON}, _P),
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
    _irr("attendre", "attends attends attend attendons attendez attendent", "attendr", "attendu", ("wait", "waits", "waited")),
)

# (French, English, gender)
NAMES: Tuple[Tuple[str, str, str], ...] = (
    ("Marie", "Mary", "f"), ("Pierre", "Peter", "m"), ("Jean", "John", "m"), ("Sophie", "Sophie", "f"),
    ("Paul", "Paul", "m"), ("Lucie", "Lucy", "f"), ("Thomas", "Thomas", "m"), ("Julie", "Julie", "f"),
    ("Louis", "Louis", "m"), ("Claire", "Claire", "f"), ("Hélène", "Helen", "f"), ("Antoine", "Anthony", "m"),
)

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
    "past": (("hier", "yesterday"), ("hier soir", "last night"), ("la semaine dernière", "last week"),
             ("ce matin", "this morning")),
    "future": (("demain", "tomorrow"), ("demain matin", "tomorrow morning"), ("la semaine prochaine", "next week"),
               ("ce soir", "tonight"), ("bientôt", "soon")),
}

# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------

_FR_UNITS = (
    "zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix", "onze", "douze", "treize",
    "quatorze", "quinze", "seize",
)
_FR_TENS = {20: "vingt", 30: "trente", 40: "quarante", 50: "cinquante", 60: "soixante"}
_EN_UNITS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)
_EN_TENS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty", 90: "ninety"}


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


class _Det(NamedTuple):
    """A French determiner whose spelling depends on the word after it (cet, mon amie, l')."""

    kind: str  # def | indef | my | your | our | your_pl | their | this
    gender: str
    plural: bool


_POSSESSIVES = {  # kind -> (m sg, f sg, plural, English)
    "my": ("mon", "ma", "mes", "my"), "your": ("ton", "ta", "tes", "your"), "our": ("notre", "notre", "nos", "our"),
    "your_pl": ("votre", "votre", "vos", "your"), "their": ("leur", "leur", "leurs", "their"),
}


def _french_determiner(det: _Det, next_word: str) -> str:
    vowel = _starts_with_vowel_sound(next_word)
    if det.kind == "def":
        return "les" if det.plural else ("la" if det.gender == "f" else "le")  # l' comes from elision
    if det.kind == "indef":
        return "des" if det.plural else ("une" if det.gender == "f" else "un")
    if det.kind == "this":
        return "ces" if det.plural else ("cette" if det.gender == "f" else ("cet" if vowel else "ce"))
    m, f, pl, _ = _POSSESSIVES[det.kind]
    if det.plural:
        return pl
    return f if det.gender == "f" and not vowel else m  # mon amie


def _english_determiner(kind: str, plural: bool, next_word: str) -> str:
    if kind == "def":
        return "the"
    if kind == "indef":
        return "some" if plural else ("an" if next_word[:1].lower() in "aeiou" else "a")
    if kind == "this":
        return "these" if plural else "this"
    return _POSSESSIVES[kind][3]


Token = Union[str, _Det]


def render_french(tokens: Sequence[Token]) -> str:
    """Spell a French token sequence: resolve determiners, then elide, then contract."""
    words: List[str] = []
    for i, tok in enumerate(tokens):
        if isinstance(tok, _Det):
            following = next(t for t in tokens[i + 1:] if isinstance(t, str))
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


# ---------------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------------


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

    def noun_phrase(self, noun: Noun, *, determiners: Sequence[str] = ("def", "indef", "number", "poss", "this"),
                    possessor: bool = True) -> _Phrase:
        """A noun phrase around ``noun`` with one of ``determiners`` (uncountable nouns: no number/indef)."""
        usable = [d for d in determiners if noun.countable or d in ("def", "poss", "this")]
        kind = self.rng.choice(usable or ["def"])
        plural = noun.countable and self.rng.random() < 0.3
        count = 0
        if kind == "number":
            count, plural = self.rng.randint(2, 99), True
        if kind == "poss":
            kind = self.rng.choice(sorted(_POSSESSIVES))
        pre, post = self._adjectives(noun, allow_pre=not (kind == "indef" and plural))  # avoids "de grands"
        owner = self.rng.choice(NAMES) if possessor and kind == "def" and self.rng.random() < 0.12 else None

        gender = noun.gender
        fr: List[Token] = [french_number(count, feminine=gender == "f") if kind == "number" else _Det(kind, gender, plural)]
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
            en = [_english_determiner(kind, plural, en_words[0])] + en_words
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
            obj = self.noun_phrase(self._noun(CONCRETE - {PLACE}, countable_only=True), determiners=("indef", "number"),
                                   possessor=False)
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
    order = [s for s in ("test", "dev", "train") if s in sizes] + [s for s in sizes if s not in ("test", "dev", "train")]
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
