"""The synthetic French -> English grammar: spelling rules, numbers, reordering, reproducibility."""

import hashlib
import json

import pytest

from echostream_fairseq.data.grammar import GRAMMAR_VERSION, SentenceSampler, sample_splits
from echostream_fairseq.data.lexicon import ADJECTIVES, NOUNS
from echostream_fairseq.data.morphology import Determiner, english_number, french_number, render_french
from echostream_fairseq.data.verbs import lexicon_summary


@pytest.mark.parametrize(
    "n, fr, en",
    [
        (2, "deux", "two"),
        (17, "dix-sept", "seventeen"),
        (21, "vingt et un", "twenty-one"),
        (45, "quarante-cinq", "forty-five"),
        (70, "soixante-dix", "seventy"),
        (71, "soixante et onze", "seventy-one"),
        (77, "soixante-dix-sept", "seventy-seven"),
        (80, "quatre-vingts", "eighty"),
        (81, "quatre-vingt-un", "eighty-one"),
        (91, "quatre-vingt-onze", "ninety-one"),
        (99, "quatre-vingt-dix-neuf", "ninety-nine"),
    ],
)
def test_numbers(n, fr, en):
    assert french_number(n) == fr and english_number(n) == en


def test_feminine_numbers():
    assert french_number(21, feminine=True) == "vingt et une"
    assert french_number(81, feminine=True) == "quatre-vingt-une"
    assert french_number(71, feminine=True) == "soixante et onze"


@pytest.mark.parametrize(
    "tokens, expected",
    [
        ([Determiner("def", "m", False), "arbre"], "l'arbre"),
        ([Determiner("def", "m", False), "grand", "arbre"], "le grand arbre"),
        ([Determiner("def", "m", False), "hôtel"], "l'hôtel"),
        ([Determiner("this", "m", False), "oiseau"], "cet oiseau"),
        ([Determiner("this", "m", False), "chat"], "ce chat"),
        ([Determiner("my", "f", False), "amie"], "mon amie"),
        ([Determiner("my", "f", False), "grande", "amie"], "ma grande amie"),
        (["je", "ai", "mangé"], "j'ai mangé"),
        (["il", "ne", "aime", "pas"], "il n'aime pas"),
        (["près", "de", Determiner("def", "m", False), "marché"], "près du marché"),
        (["à", Determiner("def", "m", False), "marché"], "au marché"),
        (["à", Determiner("def", "f", True), "écoles"], "aux écoles"),
        (["à", Determiner("def", "m", False), "hôpital"], "à l'hôpital"),
        (["le", "chien", "de", "Antoine"], "le chien d'Antoine"),
    ],
)
def test_french_spelling(tokens, expected):
    assert render_french(tokens) == expected


def test_noun_adjective_reordering_is_present():
    sentences = [s for split in sample_splits(3, {"train": 300}).values() for s in split]
    reordered = [s for s in sentences if s.reorderings > 0]
    assert len(reordered) > 0.3 * len(sentences)
    # find a post-nominal adjective in French whose English adjective comes before the noun
    post = [a for a in ADJECTIVES if not a.before_noun]
    found = 0
    for s in sentences:
        fr, en = s.fr.lower(), s.en.lower()
        for noun in NOUNS:
            for adj in post:
                if (
                    f" {noun.fr} {adj.french(noun.gender, False)} " in f" {fr[:-1]} "
                    and f" {adj.en} {noun.en} " in f" {en[:-1]} "
                ):
                    found += 1
    assert found >= 10


def test_splits_are_distinct_and_reproducible():
    a = sample_splits(7, {"train": 200, "dev": 30, "test": 30})
    b = sample_splits(7, {"train": 200, "dev": 30, "test": 30})
    assert [(s.fr, s.en) for s in a["train"]] == [(s.fr, s.en) for s in b["train"]]
    train_fr = {s.fr for s in a["train"]}
    train_en = {s.en for s in a["train"]}
    for split in ("dev", "test"):
        assert not {s.fr for s in a[split]} & train_fr
        assert not {s.en for s in a[split]} & train_en
    assert not {s.fr for s in a["dev"]} & {s.fr for s in a["test"]}
    # more training data keeps dev and test
    c = sample_splits(7, {"train": 50, "dev": 30, "test": 30})
    assert [s.fr for s in c["test"]] == [s.fr for s in a["test"]]
    assert sample_splits(8, {"train": 5})["train"][0].fr != a["train"][0].fr


def test_sentences_look_right():
    sampler = SentenceSampler(11)
    for _ in range(300):
        s = sampler.sample()
        for text in (s.fr, s.en):
            assert text[0].isupper() and text.endswith(".") and "  " not in text
        assert " le a" not in s.fr and " de le " not in s.fr and " à les " not in s.fr


def test_lexicon_has_a_few_hundred_words():
    summary = lexicon_summary()
    assert summary["lemmas"] >= 200
    assert summary["french_content_word_forms"] > summary["english_content_word_forms"] > 300


def test_a_seed_gives_the_sentences_corpora_were_stamped_with():
    # prep stamps corpora with GRAMMAR_VERSION: if these sentences change, bump it so old corpora are rebuilt
    splits = sample_splits(0, {"train": 400, "dev": 50, "test": 50})
    blob = json.dumps(
        {k: [[s.fr, s.en, s.reorderings, s.template] for s in v] for k, v in splits.items()}, ensure_ascii=False
    )
    assert GRAMMAR_VERSION == 1
    assert (
        hashlib.sha256(blob.encode()).hexdigest() == "344ad4b842bc59e997a9adf1f6f608ab8c460eaf9c4554b4acdebd4c4fa95e5c"
    )
    assert [(s.fr, s.en) for s in splits["test"][:2]] == [
        ("Leur musée ne sera pas froid.", "Their museum will not be cold."),
        ("Il y aura un loup célèbre dans mes lacs.", "There will be a famous wolf in my lakes."),
    ]
