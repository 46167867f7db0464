"""The pocketsphinx ASR used for intelligibility (WER) and ASR-BLEU: LM, dictionary, recognition, errors."""

import math
import os
from collections import defaultdict

import numpy as np
import pytest
import torch

pocketsphinx = pytest.importorskip("pocketsphinx")

from echostream_fairseq.data.audio import write_wav  # noqa: E402
from echostream_fairseq.data.tts import TARGET_VOICE, get_synthesizer  # noqa: E402
from echostream_fairseq.evaluation.lm import write_bigram_arpa  # noqa: E402
from echostream_fairseq.evaluation.pronunciations import write_pronunciation_dict  # noqa: E402
from echostream_fairseq.evaluation.recognizer import PocketsphinxRecognizer  # noqa: E402
from echostream_fairseq.evaluation.wer import evaluate_wavs, word_error_rate  # noqa: E402

# Spoken in the recognition tests; the LM also holds the other sentences, so it has to choose.
SPOKEN = ["The good sister bought these broken coats last night.", "John walks in front of the churches now."]
LM_SENTENCES = SPOKEN + [
    "A good teacher will paint the old church.",
    "These happy sisters walk to the city.",
    "John bought a small coat last week.",
    "The broken guitar is in front of the house now.",
    "My brother will buy these red apples tomorrow.",
    "Last night, the dog slept in the garden.",
    "Your neighbor walks his black dog.",
    "The churches in this city are old.",
]


def read_arpa(path):
    """{1: {word: (log10 p, log10 bow)}, 2: {(h, w): log10 p}} and the header's counts."""
    header, grams, order = {}, {1: {}, 2: {}}, None
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    assert lines[0] == "\\data\\" and lines[-1] == "\\end\\"
    for line in lines[1:-1]:
        if not line:
            continue
        if line.startswith("ngram "):
            n, count = line[len("ngram ") :].split("=")
            header[int(n)] = int(count)
        elif line in ("\\1-grams:", "\\2-grams:"):
            order = int(line[1])
        else:
            fields = line.split("\t")
            if order == 1:
                bow = float(fields[2]) if len(fields) == 3 else 0.0
                grams[1][fields[1]] = (float(fields[0]), bow)
            else:
                assert len(fields) == 2
                grams[2][tuple(fields[1].split(" "))] = float(fields[0])
    return header, grams


def conditional(grams, history, word):
    """P(word | history) by the ARPA back-off rule."""
    if (history, word) in grams[2]:
        return 10 ** grams[2][history, word]
    return 10 ** (grams[1][history][1] + grams[1][word][0])


def test_arpa_counts_probabilities_and_normalisation(tmp_path):
    path = str(tmp_path / "lm.arpa")
    # "..." normalises to nothing and is skipped; case and punctuation are normalised away
    counts = write_bigram_arpa(["The cat sat.", "the cat ran", "...", "A dog sat!"], path)
    assert counts == {"sentences": 3, "tokens": 12, "unigrams": 8, "bigrams": 9}
    header, grams = read_arpa(path)
    assert header == {1: 8, 2: 9}
    assert len(grams[1]) == 8 and len(grams[2]) == 9
    assert set(grams[1]) == {"<s>", "</s>", "the", "cat", "sat", "ran", "a", "dog"}
    assert grams[1]["<s>"][0] == -99.0
    assert 10 ** grams[1]["cat"][0] == pytest.approx(2 / 12, abs=1e-6)
    # bigram count-of-counts n1 = 6, n2 = 3 -> D = 0.5; "the" is followed by "cat" twice (1 type):
    # P(cat | the) = (2 - 0.5) / 2 + (0.5 * 1 / 2) * P(cat) = 0.75 + 0.25 / 6
    assert conditional(grams, "the", "cat") == pytest.approx(0.75 + 0.25 / 6, abs=1e-6)
    assert conditional(grams, "the", "dog") == pytest.approx(0.25 / 12, abs=1e-6)  # backed off
    # pocketsphinx reads the file and agrees (its scores are natural logs in units of ln 1.0001;
    # prob() takes the words most recent first)
    lm = pocketsphinx.NGramModel(pocketsphinx.Config(loglevel="FATAL"), pocketsphinx.LogMath(), path)
    for history, word in (("the", "cat"), ("the", "dog"), ("sat", "</s>")):
        score = lm.prob([word, history])
        assert score * math.log(1.0001) == pytest.approx(math.log(conditional(grams, history, word)), abs=1e-3)


def test_arpa_distributions_sum_to_one(tmp_path):
    path = str(tmp_path / "lm.arpa")
    counts = write_bigram_arpa(LM_SENTENCES * 2 + LM_SENTENCES[:3], path)
    header, grams = read_arpa(path)
    assert header == {1: counts["unigrams"], 2: counts["bigrams"]} == {1: len(grams[1]), 2: len(grams[2])}
    predictable = [w for w in grams[1] if w != "<s>"]
    assert sum(10 ** grams[1][w][0] for w in predictable) == pytest.approx(1.0, abs=1e-3)
    histories = [w for w in grams[1] if w != "</s>"]
    assert len(histories) == counts["unigrams"] - 1
    for history in histories:
        total = sum(conditional(grams, history, w) for w in predictable)
        assert total == pytest.approx(1.0, abs=1e-3), history
    # every bigram's history is in the unigram section with a back-off weight
    seen = defaultdict(int)
    for history, word in grams[2]:
        seen[history] += 1
        assert history in grams[1] and word in grams[1]
    assert all(grams[1][h][1] < 0 for h in seen)


def test_arpa_refuses_no_words(tmp_path):
    with pytest.raises(ValueError, match="no words"):
        write_bigram_arpa(["", "?!", "  "], str(tmp_path / "lm.arpa"))
    assert not os.path.exists(tmp_path / "lm.arpa")


def test_pronunciation_dict_subset(tmp_path):
    path = tmp_path / "lm.dict"
    words = ["the", "cat", "a", "cat", "lemonades", "guitar's", "teapots", "abacuses"]
    derived = write_pronunciation_dict(words, str(path))
    assert derived == ["abacuses", "guitar's", "lemonades", "teapots"]  # not in the CMU dictionary
    assert path.read_text().splitlines() == [
        "a AH",
        "a(2) EY",
        "abacuses AE B AH K AH S IH Z",  # after a sibilant: /IH Z/
        "cat K AE T",
        "guitar's G IH T AA R Z",  # after a voiced sound: /Z/
        "lemonades L EH M AH N EY D Z",
        "teapots T IY P AA T S",  # after a voiceless consonant: /S/
        "the DH AH",
        "the(2) DH IY",
    ]


def test_pronunciation_dict_missing_words(tmp_path):
    path = tmp_path / "lm.dict"
    with pytest.raises(ValueError, match=r"2 word\(s\) have no pronunciation.*'qzxv', 'zzyzzx'"):
        write_pronunciation_dict(["the", "zzyzzx", "qzxv"], str(path))
    with pytest.raises(ValueError, match=r"1 word\(s\).*'lemonades'"):
        write_pronunciation_dict(["lemonades"], str(path), derive_s_forms=False)
    assert not path.exists()  # nothing half-written


@pytest.fixture(scope="module")
def recognizer():
    return PocketsphinxRecognizer.from_sentences(LM_SENTENCES)


@pytest.fixture(scope="module")
def spoken():
    synth = get_synthesizer()
    return [synth.synthesize(text, TARGET_VOICE, sample_rate=16000) for text in SPOKEN]


def test_recognizes_espeak_english(recognizer, spoken):
    assert recognizer.lm_counts["sentences"] == len(LM_SENTENCES)
    hypotheses = [recognizer.transcribe(waveform, 16000) for waveform in spoken]
    # measured: both exact; allow one word error in the 17 words
    assert word_error_rate(SPOKEN, hypotheses) <= 100 / 17
    # deterministic and independent of what was decoded before; numpy input works the same
    assert [recognizer.transcribe(w.numpy(), 16000) for w in reversed(spoken)] == hypotheses[::-1]
    # other rates are resampled: the same words from espeak-ng's own 22050 Hz output
    native = get_synthesizer().synthesize(SPOKEN[0], TARGET_VOICE, sample_rate=22050)
    assert word_error_rate(SPOKEN[:1], [recognizer.transcribe(native, 22050)]) <= 100 / 9


def test_evaluate_wavs(recognizer, spoken, tmp_path):
    paths = []
    for i, waveform in enumerate(spoken):
        paths.append(str(tmp_path / f"{i}.wav"))
        write_wav(paths[-1], waveform)
    result = evaluate_wavs(paths, SPOKEN, recognizer)
    assert result["utterances"] == 2 and result["reference_words"] == 17
    assert result["wer"] == pytest.approx(100 * result["errors"] / 17)
    assert result["wer"] == pytest.approx(word_error_rate(SPOKEN, result["hypotheses"]))
    assert result["wer"] <= 100 / 17
    total = sum(w.numel() for w in spoken) / 16000
    assert result["audio_seconds"] == pytest.approx(total)
    assert result["seconds_per_utterance"] == pytest.approx(result["decode_seconds"] / 2)
    with pytest.raises(ValueError, match="2 audio files but 1 references"):
        evaluate_wavs(paths, SPOKEN[:1], recognizer)


def test_bad_input(recognizer):
    good = np.zeros(16000, dtype=np.float32)
    with pytest.raises(ValueError, match="empty"):
        recognizer.transcribe(np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="empty"):
        recognizer.transcribe(torch.zeros(1, 0), 16000)
    for rate in (0, -16000, 4000):
        with pytest.raises(ValueError, match="too low"):
            recognizer.transcribe(good, rate)
    for rate in (16000.0, "16000", True):
        with pytest.raises(ValueError, match="integer"):
            recognizer.transcribe(good, rate)
    with pytest.raises(ValueError, match="mono"):
        recognizer.transcribe(np.zeros((2, 16000), dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="NaN"):
        recognizer.transcribe(np.full(16000, np.nan, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="int16-scale"):
        recognizer.transcribe(np.full(16000, 1000.0, dtype=np.float32), 16000)
    with pytest.raises(TypeError, match="float"):
        recognizer.transcribe(np.zeros(16000, dtype=np.int16), 16000)
    with pytest.raises(TypeError, match="torch.Tensor or numpy.ndarray"):
        recognizer.transcribe([0.0] * 16000, 16000)
    # silence is valid input: no words
    assert recognizer.transcribe(good, 16000) == ""
    with pytest.raises(FileNotFoundError, match="language model not found"):
        PocketsphinxRecognizer("/nonexistent/lm.arpa", None)


def test_word_error_rate():
    # case and punctuation do not count; 1 deletion + 1 insertion over 5 reference words
    assert word_error_rate(["The cat sat.", "a dog"], ["the cat", "A dog ran!"]) == pytest.approx(40.0)
    assert word_error_rate(["one two"], ["one two"]) == 0.0
    assert word_error_rate(["one"], ["two three four"]) == pytest.approx(300.0)
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        word_error_rate(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no words"):
        word_error_rate(["", "!"], ["a", "b"])
