"""The word trigram and the lexicon-constrained CTC beam search (``--asr-beam``), on hand-made cases."""

import math

import pytest
import torch

from echostream_fairseq.data.manifest import ManifestError
from echostream_fairseq.data.speech_to_unit_dataset import read_word_sentences
from echostream_fairseq.modules.ctc import ctc_greedy
from echostream_fairseq.modules.ctc_lexicon import CtcLexiconDecoder, lexicon_decoder_from_text
from echostream_fairseq.modules.ngram_lm import SENTENCE_END, NgramLM

# ids 0-3 are fairseq's specials (0 is the CTC blank)
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "\u2581la", "\u2581nuit", "\u2581noir", "e", "s", "\u2581les", "\u2581nuits"]
LA, NUIT, NOIR, E, S, LES, NUITS = 4, 5, 6, 7, 8, 9, 10
SPECIALS = [1, 2, 3]
TEXT = [["la", "nuit", "noire"]] * 3 + [["les", "nuits", "noires"]] * 3


def _frames(*rows):
    """Log-probabilities ``[T, V]`` from per-frame ``{label: probability}`` (the rest shared evenly)."""
    out = torch.full((len(rows), len(PIECES)), 1e-6)
    for t, row in enumerate(rows):
        for label, p in row.items():
            out[t, label] = p
    return (out / out.sum(dim=1, keepdim=True)).log()


def test_kneser_ney_sums_to_one_in_seen_and_unseen_contexts():
    lm = NgramLM([["a", "b", "c"], ["a", "c"], ["b", "b", "a"]], order=3)
    assert lm.vocabulary == {"a", "b", "c", SENTENCE_END}
    for context in ([], ["a"], ["a", "b"], ["c", "c"], ["b", "b"]):
        total = sum(math.exp(lm.log_prob(context, w)) for w in lm.vocabulary)
        assert total == pytest.approx(1.0, abs=1e-12)
    assert lm.log_prob(["a"], "zebra") == float("-inf")


def test_kneser_ney_value_by_hand():
    lm = NgramLM([["a", "b"], ["a", "c"]], order=2, discount=0.5)
    # unigram continuation counts: a follows <s> (1 context), b and c follow a, </s> follows b and c
    # -> a 1, b 1, c 1, </s> 2 over 5; interpolated with uniform 1/4 by 0.5 * 4 / 5
    p_b = (1 - 0.5) / 5 + 0.5 * 4 / 5 * 0.25
    # bigram after "a": b seen once of 2, two distinct followers
    expected = (1 - 0.5) / 2 + 0.5 * 2 / 2 * p_b
    assert lm.log_prob(["a"], "b") == pytest.approx(math.log(expected), abs=1e-12)
    assert lm.sentence_log_prob(["a", "b"]) == pytest.approx(
        lm.log_prob([], "a") + lm.log_prob(["a"], "b") + lm.log_prob(["a", "b"], SENTENCE_END), abs=1e-12
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(order=0), "order must be at least 1"),
        (dict(discount=1.0), r"discount must lie in \(0, 1\)"),
    ],
)
def test_ngram_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NgramLM([["a"]], **kwargs)


def test_ngram_needs_text():
    with pytest.raises(ValueError, match="no sentences"):
        NgramLM([[], []])


def test_lexicon_turns_a_non_word_into_the_nearest_word():
    # "s" is a little more likely than "e" at the last frame: greedy spells "noirs", not a word here
    lp = _frames({LA: 0.9}, {NUIT: 0.9}, {NOIR: 0.9}, {S: 0.5, E: 0.45})
    assert ctc_greedy(lp[None], torch.tensor([4]), SPECIALS)[0] == [LA, NUIT, NOIR, S]
    decoder = lexicon_decoder_from_text(PIECES, TEXT, beam=8, lm_weight=0.0, banned=SPECIALS)
    assert decoder.decode(lp) == ["la", "nuit", "noire"]


def test_the_word_model_chooses_between_words_that_sound_alike():
    # the plural ending is heard weakly: alone, "noire" wins; the trigram knows "les nuits noires"
    lp = _frames({LES: 0.9}, {NUITS: 0.9}, {NOIR: 0.9}, {E: 0.9}, {0: 0.55, S: 0.45})
    acoustic = lexicon_decoder_from_text(PIECES, TEXT, beam=8, lm_weight=0.0, banned=SPECIALS)
    assert acoustic.decode(lp) == ["les", "nuits", "noire"]
    with_lm = lexicon_decoder_from_text(PIECES, TEXT, beam=8, lm_weight=1.0, banned=SPECIALS)
    assert with_lm.decode(lp) == ["les", "nuits", "noires"]


def test_collapsing_as_ctc_defines_it():
    text = [["la", "la", "nuit"]]
    decoder = lexicon_decoder_from_text(PIECES, text, beam=8, lm_weight=0.0, banned=SPECIALS)
    held = _frames({LA: 0.99}, {LA: 0.99}, {NUIT: 0.99})  # one "la" held over two frames
    assert decoder.decode(held) == ["la", "nuit"]
    twice = _frames({LA: 0.99}, {0: 0.99}, {LA: 0.99}, {NUIT: 0.99})  # a blank between: two words
    assert decoder.decode(twice) == ["la", "la", "nuit"]
    assert decoder.decode_batch(torch.stack([twice, twice]), torch.tensor([4, 3])) == [
        ["la", "la", "nuit"],
        ["la", "la"],
    ]


def test_nothing_spelled_gives_an_empty_transcript():
    # only "e" and "s" are tried at each frame, and no word starts with them
    decoder = lexicon_decoder_from_text(PIECES, TEXT, beam=4, banned=SPECIALS, labels_per_frame=2)
    assert decoder.decode(_frames({E: 0.6, S: 0.3}, {S: 0.6, E: 0.3})) == []
    assert decoder.decode(_frames()) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(beam=0), "beam must be at least 1"),
        (dict(labels_per_frame=0), "labels_per_frame must be at least 1"),
        (dict(max_pending=0), "max_pending must be at least 1"),
        (dict(commit_mass=0.0), r"commit_mass must lie in \(0, 1\]"),
    ],
)
def test_decoder_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CtcLexiconDecoder(PIECES, NgramLM(TEXT), **kwargs)


def test_decoder_wants_one_utterance():
    decoder = lexicon_decoder_from_text(PIECES, TEXT)
    with pytest.raises(ValueError, match=r"log_probs must be \[T, V\], got shape \(1, 2, 11\)"):
        decoder.decode(torch.zeros(1, 2, 11))
    with pytest.raises(ValueError, match="log_probs has 12 labels, the dictionary 11"):
        decoder.decode(torch.zeros(2, 12))


def test_language_model_text_from_a_task_file(tmp_path):
    tsv = tmp_path / "train.tsv"
    tsv.write_text(
        "id\ttgt_text\na\t\u2581la \u2581nuit \u2581noir e\nb\t\u2581les \u2581nuits </s> \u2581la \u2581nuit\n",
        encoding="utf-8",
    )
    assert read_word_sentences(tsv) == [["la", "nuit", "noire"], ["les", "nuits"], ["la", "nuit"]]
    with pytest.raises(ManifestError, match="missing.tsv: text for the language model not found"):
        read_word_sentences(tmp_path / "missing.tsv")


def _noisy_stream(seed=0):
    torch.manual_seed(seed)
    spoken = [LA, NUIT, NOIR, E, LES, NUITS, NOIR, E, S, LA, NUIT]
    rows = []
    for label in spoken:  # each label over two frames, then a blank, with some noise
        rows += [{label: 0.7, 0: 0.2}, {label: 0.5, 0: 0.4}, {0: 0.8}]
    return (_frames(*rows) + 0.3 * torch.randn(len(rows), len(PIECES))).log_softmax(dim=-1)


STREAM_TEXT = [["la", "nuit", "noire"], ["les", "nuits", "noires"], ["la", "nuit"], ["les", "nuits"]] * 2
STREAM_WORDS = ["la", "nuit", "noire", "les", "nuits", "noires", "la", "nuit"]


def _stream(decoder, lp, frames_per_chunk=4):
    """Words made final after each chunk, the state's largest pending word count, and the rest."""
    state, finals, pending = decoder.initial_state(), [], 0
    for a in range(0, lp.size(0), frames_per_chunk):
        words, state = decoder.step(state, lp[a : a + frames_per_chunk])
        finals.append(words)
        pending = max(pending, max(len(h.words) for h in state.hypotheses))
    return finals, pending, decoder.finish(state)


def test_streaming_search_makes_words_final_early_and_ends_as_one_pass():
    lp = _noisy_stream()
    decoder = lexicon_decoder_from_text(PIECES, STREAM_TEXT, beam=6, lm_weight=0.5, word_bonus=1.0, banned=SPECIALS)
    assert decoder.decode(lp) == STREAM_WORDS
    finals, pending, rest = _stream(decoder, lp)
    # chunk by chunk (4 frames of 33): the words, each once, as soon as 90% of the beam agrees
    assert finals == [[], ["la"], ["nuit"], ["noire"], ["les"], ["nuits"], [], ["noires"], []]
    assert sum(finals, []) + rest == STREAM_WORDS
    assert pending <= 2
    # every kept hypothesis must agree: words come later, the transcript is the same
    unanimous = lexicon_decoder_from_text(
        PIECES, STREAM_TEXT, beam=6, lm_weight=0.5, word_bonus=1.0, banned=SPECIALS, commit_mass=1.0
    )
    finals, _, rest = _stream(unanimous, lp)
    assert sum(finals, []) + rest == STREAM_WORDS
    assert sum(len(f) for f in finals) == 3


def test_a_word_long_in_doubt_is_made_final_by_the_best_hypothesis():
    decoder = lexicon_decoder_from_text(
        PIECES, [["la", "la", "la"], ["les", "les"]], beam=4, lm_weight=0.0, banned=SPECIALS, max_pending=2
    )
    # "la" and "les" equally likely, word after word: the hypotheses never agree on their own
    lp = _frames(*[{LA: 0.45, LES: 0.44}, {0: 0.9}] * 6)
    finals, pending, rest = _stream(decoder, lp, frames_per_chunk=2)
    assert pending <= 3  # two in doubt, and the one just completed
    assert sum(len(f) for f in finals) == 4
    assert sum(finals, []) + rest == ["la"] * 6
