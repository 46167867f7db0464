"""The lexicon of the synthetic French -> English grammar: the noun kinds, nouns, adjectives and
names (the verbs and the conjugation tables: :mod:`~echostream_fairseq.data.verbs`).

Each entry carries both languages' forms and what it combines with: nouns have kinds (animal,
person, food, ...), adjectives say which kinds they take, and place nouns list the prepositions
they can follow.

The content and order of every table are part of the corpus:
:class:`~echostream_fairseq.data.grammar.SentenceSampler` draws from them by position, so changing
one changes the sentences of a seed (bump :data:`~echostream_fairseq.data.grammar.GRAMMAR_VERSION`
then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Sequence, Tuple, Union

__all__ = [
    "ANIMAL",
    "PERSON",
    "FOOD",
    "DRINK",
    "THING",
    "TEXT",
    "CONTAINER",
    "VEHICLE",
    "PLACE",
    "SOUND",
    "ANIMATE",
    "CONCRETE",
    "OBJECTS",
    "PREPOSITIONS",
    "Noun",
    "Adjective",
    "NOUNS",
    "ADJECTIVES",
    "NAMES",
]

# noun kinds; verbs and adjectives say which kinds they combine with
ANIMAL, PERSON, FOOD, DRINK, THING, TEXT, CONTAINER, VEHICLE, PLACE, SOUND = (
    "animal",
    "person",
    "food",
    "drink",
    "thing",
    "text",
    "container",
    "vehicle",
    "place",
    "sound",
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


def _n(
    fr: str,
    gender: str,
    en: str,
    kinds: Union[str, Sequence[str]],
    *,
    fr_pl: str = "",
    en_pl: str = "",
    preps: str = "",
    countable: bool = True,
) -> Noun:
    kinds_set = frozenset([kinds] if isinstance(kinds, str) else kinds)
    return Noun(fr, fr_pl or fr + "s", gender, en, en_pl or en + "s", kinds_set, tuple(preps.split()), countable)


NOUNS: Tuple[Noun, ...] = (
    # animals
    _n("chat", "m", "cat", ANIMAL),
    _n("chien", "m", "dog", ANIMAL),
    _n("oiseau", "m", "bird", ANIMAL, fr_pl="oiseaux"),
    _n("cheval", "m", "horse", ANIMAL, fr_pl="chevaux"),
    _n("souris", "f", "mouse", ANIMAL, fr_pl="souris", en_pl="mice"),
    _n("lapin", "m", "rabbit", ANIMAL),
    _n("poisson", "m", "fish", ANIMAL, en_pl="fish"),
    _n("vache", "f", "cow", ANIMAL),
    _n("cochon", "m", "pig", ANIMAL),
    _n("mouton", "m", "sheep", ANIMAL, en_pl="sheep"),
    _n("canard", "m", "duck", ANIMAL),
    _n("éléphant", "m", "elephant", ANIMAL),
    _n("lion", "m", "lion", ANIMAL),
    _n("tigre", "m", "tiger", ANIMAL),
    _n("ours", "m", "bear", ANIMAL, fr_pl="ours"),
    _n("singe", "m", "monkey", ANIMAL),
    _n("renard", "m", "fox", ANIMAL, en_pl="foxes"),
    _n("loup", "m", "wolf", ANIMAL, en_pl="wolves"),
    _n("abeille", "f", "bee", ANIMAL),
    _n("tortue", "f", "turtle", ANIMAL),
    _n("grenouille", "f", "frog", ANIMAL),
    _n("poule", "f", "hen", ANIMAL),
    _n("serpent", "m", "snake", ANIMAL),
    _n("araignée", "f", "spider", ANIMAL),
    # people
    _n("homme", "m", "man", PERSON, en_pl="men"),
    _n("femme", "f", "woman", PERSON, en_pl="women"),
    _n("enfant", "m", "child", PERSON, en_pl="children"),
    _n("garçon", "m", "boy", PERSON),
    _n("fille", "f", "girl", PERSON),
    _n("ami", "m", "friend", PERSON),
    _n("amie", "f", "friend", PERSON),
    _n("voisin", "m", "neighbor", PERSON),
    _n("voisine", "f", "neighbor", PERSON),
    _n("professeur", "m", "teacher", PERSON),
    _n("médecin", "m", "doctor", PERSON),
    _n("étudiant", "m", "student", PERSON),
    _n("étudiante", "f", "student", PERSON),
    _n("boulanger", "m", "baker", PERSON),
    _n("soldat", "m", "soldier", PERSON),
    _n("roi", "m", "king", PERSON),
    _n("reine", "f", "queen", PERSON),
    _n("frère", "m", "brother", PERSON),
    _n("sœur", "f", "sister", PERSON),
    _n("père", "m", "father", PERSON),
    _n("mère", "f", "mother", PERSON),
    _n("cousin", "m", "cousin", PERSON),
    # food and drink
    _n("pomme", "f", "apple", FOOD),
    _n("orange", "f", "orange", FOOD),
    _n("banane", "f", "banana", FOOD),
    _n("gâteau", "m", "cake", FOOD, fr_pl="gâteaux"),
    _n("tomate", "f", "tomato", FOOD, en_pl="tomatoes"),
    _n("carotte", "f", "carrot", FOOD),
    _n("œuf", "m", "egg", FOOD),
    _n("poire", "f", "pear", FOOD),
    _n("citron", "m", "lemon", FOOD),
    _n("fraise", "f", "strawberry", FOOD, en_pl="strawberries"),
    _n("biscuit", "m", "cookie", FOOD),
    _n("tarte", "f", "pie", FOOD),
    _n("pizza", "f", "pizza", FOOD),
    _n("soupe", "f", "soup", FOOD, countable=False),
    _n("fromage", "m", "cheese", FOOD, countable=False),
    _n("pain", "m", "bread", FOOD, countable=False),
    _n("café", "m", "coffee", DRINK, en_pl="coffees"),
    _n("thé", "m", "tea", DRINK),
    _n("bière", "f", "beer", DRINK),
    _n("limonade", "f", "lemonade", DRINK),
    _n("lait", "m", "milk", DRINK, countable=False),
    _n("eau", "f", "water", DRINK, countable=False),
    # things
    _n("livre", "m", "book", (TEXT, THING, CONTAINER), preps="on under near next"),
    _n("lettre", "f", "letter", (TEXT, THING)),
    _n("journal", "m", "newspaper", (TEXT, THING), fr_pl="journaux"),
    _n("carte", "f", "map", (TEXT, THING)),
    _n("histoire", "f", "story", TEXT, en_pl="stories"),
    _n("porte", "f", "door", CONTAINER, preps="front behind near next"),
    _n("fenêtre", "f", "window", CONTAINER, preps="front near next"),
    _n("boîte", "f", "box", (CONTAINER, THING), en_pl="boxes", preps="in on under behind next"),
    _n("sac", "m", "bag", (CONTAINER, THING), preps="in next"),
    _n("clé", "f", "key", THING),
    _n("téléphone", "m", "phone", THING),
    _n("chapeau", "m", "hat", THING, fr_pl="chapeaux"),
    _n("manteau", "m", "coat", THING, fr_pl="manteaux"),
    _n("chaussure", "f", "shoe", THING),
    _n("table", "f", "table", THING, preps="on under near next"),
    _n("chaise", "f", "chair", THING, preps="on under behind next"),
    _n("lampe", "f", "lamp", THING, preps="under near next"),
    _n("balle", "f", "ball", THING),
    _n("stylo", "m", "pen", THING),
    _n("tasse", "f", "cup", THING),
    _n("assiette", "f", "plate", THING),
    _n("parapluie", "m", "umbrella", THING),
    _n("ordinateur", "m", "computer", THING),
    _n("montre", "f", "watch", THING, en_pl="watches"),
    _n("robe", "f", "dress", THING, en_pl="dresses"),
    _n("photo", "f", "photo", THING),
    _n("guitare", "f", "guitar", THING),
    _n("valise", "f", "suitcase", (THING, CONTAINER)),
    # vehicles
    _n("voiture", "f", "car", VEHICLE, preps="in behind front next"),
    _n("vélo", "m", "bike", VEHICLE),
    _n("bus", "m", "bus", VEHICLE, fr_pl="bus", en_pl="buses", preps="in"),
    _n("train", "m", "train", VEHICLE, preps="in"),
    _n("bateau", "m", "boat", VEHICLE, fr_pl="bateaux", preps="on"),
    _n("avion", "m", "plane", VEHICLE, preps="in"),
    _n("camion", "m", "truck", VEHICLE, preps="behind front next"),
    # places
    _n("maison", "f", "house", PLACE, preps="in front behind near next"),
    _n("école", "f", "school", PLACE, preps="in front behind near next at"),
    _n("église", "f", "church", PLACE, en_pl="churches", preps="in front behind near next"),
    _n("pont", "m", "bridge", PLACE, preps="on under near"),
    _n("château", "m", "castle", PLACE, fr_pl="châteaux", preps="in front behind near"),
    _n("hôtel", "m", "hotel", PLACE, preps="in front near next at"),
    _n("magasin", "m", "shop", PLACE, preps="in front near next"),
    _n("marché", "m", "market", PLACE, preps="near at"),
    _n("gare", "f", "station", PLACE, preps="in front near next at"),
    _n("jardin", "m", "garden", PLACE, preps="in"),
    _n("parc", "m", "park", PLACE, preps="in near"),
    _n("forêt", "f", "forest", PLACE, preps="in near"),
    _n("rivière", "f", "river", PLACE, preps="in near"),
    _n("plage", "f", "beach", PLACE, en_pl="beaches", preps="on near"),
    _n("montagne", "f", "mountain", PLACE, preps="on near"),
    _n("ville", "f", "city", PLACE, en_pl="cities", preps="in near"),
    _n("village", "m", "village", PLACE, preps="in near"),
    _n("cuisine", "f", "kitchen", PLACE, preps="in"),
    _n("chambre", "f", "bedroom", PLACE, preps="in"),
    _n("bureau", "m", "office", PLACE, fr_pl="bureaux", preps="in"),
    _n("restaurant", "m", "restaurant", PLACE, preps="in front near at"),
    _n("musée", "m", "museum", PLACE, preps="in near"),
    _n("bibliothèque", "f", "library", PLACE, en_pl="libraries", preps="in near at"),
    _n("hôpital", "m", "hospital", PLACE, fr_pl="hôpitaux", preps="in near at"),
    _n("lac", "m", "lake", PLACE, preps="in near"),
    _n("rue", "f", "street", PLACE, preps="in"),
    # things one hears
    _n("musique", "f", "music", SOUND, countable=False),
    _n("chanson", "f", "song", SOUND),
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


def _a(
    ms: str,
    en: str,
    kinds: Union[str, Sequence[str], FrozenSet[str]],
    *,
    fs: str = "",
    mp: str = "",
    fp: str = "",
    before: bool = False,
) -> Adjective:
    fs = fs or (ms if ms.endswith("e") else ms + "e")
    mp = mp or (ms if ms.endswith(("s", "x")) else ms + "s")
    fp = fp or fs + "s"
    kinds_set = frozenset([kinds] if isinstance(kinds, str) else kinds)
    return Adjective((ms, fs, mp, fp), en, before, kinds_set)


_COLOURED = frozenset({ANIMAL, THING, CONTAINER, VEHICLE, PLACE})
_OBJECTLIKE = frozenset({THING, CONTAINER, TEXT, VEHICLE})
ADJECTIVES: Tuple[Adjective, ...] = (
    # colours (after the noun in French)
    _a("noir", "black", _COLOURED),
    _a("blanc", "white", _COLOURED, fs="blanche"),
    _a("rouge", "red", _COLOURED | {FOOD}),
    _a("vert", "green", _COLOURED | {FOOD}),
    _a("bleu", "blue", _COLOURED),
    _a("jaune", "yellow", _COLOURED | {FOOD}),
    _a("gris", "gray", _COLOURED, fs="grise"),
    _a("brun", "brown", _COLOURED),
    _a("rose", "pink", _COLOURED),
    _a("violet", "purple", _OBJECTLIKE, fs="violette"),
    # people and animals
    _a("heureux", "happy", ANIMATE, fs="heureuse"),
    _a("triste", "sad", ANIMATE),
    _a("fatigué", "tired", ANIMATE),
    _a("malade", "sick", ANIMATE),
    _a("gentil", "kind", ANIMATE, fs="gentille"),
    _a("intelligent", "clever", ANIMATE),
    _a("curieux", "curious", ANIMATE, fs="curieuse"),
    _a("drôle", "funny", ANIMATE | {TEXT}),
    _a("célèbre", "famous", {PERSON, ANIMAL, PLACE, TEXT}),
    _a("calme", "calm", ANIMATE | {PLACE}),
    _a("fort", "strong", ANIMATE | {DRINK}),
    _a("rapide", "fast", {ANIMAL, VEHICLE}),
    _a("lent", "slow", {ANIMAL, VEHICLE}),
    # food, drink, things, places
    _a("frais", "fresh", {FOOD, DRINK}, fs="fraîche"),
    _a("délicieux", "delicious", {FOOD, DRINK}, fs="délicieuse"),
    _a("sucré", "sweet", {FOOD, DRINK}),
    _a("chaud", "hot", {FOOD, DRINK}),
    _a("froid", "cold", {FOOD, DRINK, PLACE}),
    _a("cassé", "broken", _OBJECTLIKE),
    _a("lourd", "heavy", _OBJECTLIKE | {ANIMAL}),
    _a("léger", "light", _OBJECTLIKE, fs="légère"),
    _a("cher", "expensive", _OBJECTLIKE | {FOOD, DRINK}, fs="chère"),
    _a("propre", "clean", _OBJECTLIKE | {PLACE}),
    _a("sale", "dirty", _OBJECTLIKE | {PLACE, ANIMAL}),
    _a("vide", "empty", {CONTAINER, PLACE}),
    _a("plein", "full", {CONTAINER}),
    _a("moderne", "modern", {PLACE, VEHICLE, THING}),
    _a("tranquille", "quiet", {PLACE}),
    _a("bruyant", "noisy", {PLACE, VEHICLE, ANIMAL}),
    _a("sombre", "dark", {PLACE}),
    _a("ancien", "old", {PLACE, THING, TEXT}, fs="ancienne"),
    # before the noun in French too (no reordering)
    _a("grand", "big", CONCRETE - {DRINK}, before=True),
    _a("petit", "small", CONCRETE - {DRINK}, before=True),
    _a("jeune", "young", ANIMATE, before=True),
    _a("joli", "pretty", CONCRETE - {DRINK, FOOD}, before=True),
    _a("bon", "good", {FOOD, DRINK, PERSON, TEXT}, fs="bonne", before=True),
    _a("mauvais", "bad", {FOOD, DRINK, TEXT}, before=True),
    _a("long", "long", {TEXT}, fs="longue", before=True),
)


NAMES: Tuple[Tuple[str, str, str], ...] = (
    ("Marie", "Mary", "f"),
    ("Pierre", "Peter", "m"),
    ("Jean", "John", "m"),
    ("Sophie", "Sophie", "f"),
    ("Paul", "Paul", "m"),
    ("Lucie", "Lucy", "f"),
    ("Thomas", "Thomas", "m"),
    ("Julie", "Julie", "f"),
    ("Louis", "Louis", "m"),
    ("Claire", "Claire", "f"),
    ("Hélène", "Helen", "f"),
    ("Antoine", "Anthony", "m"),
)
