"""Long-form streams and their scoring: echostream-prep longform and concat, resegmentation,
LAAL and StreamLAAL, boundaries, the lag trend, and echostream-longform."""

import numpy as np
import pytest
import soundfile as sf
import yaml

from echostream_fairseq.data.concat import ConcatOptions, build_concat_split
from echostream_fairseq.data.longform import LongFormOptions, build_longform, read_stream_sentences
from echostream_fairseq.data.manifest import read_tsv
from echostream_fairseq.data.steps import PrepError
from echostream_fairseq.evaluation.longform import (
    ReferenceSentence,
    TimedWord,
    boundary_scores,
    laal,
    lag_trend,
    longform_scores,
    resegment,
)
from echostream_fairseq.evaluation.omnisteval_bridge import long_yaal


def test_long_yaal_is_omnistevals_on_a_hand_made_case():
    """Two sentences (1-4 s and 5-9 s of a 9 s recording); each word's LongYAAL term by hand: the
    first sentence's 6 words at 1.0, 1.5, ... s after its start with 7 reference words over 3 s,
    the second's last word cut at the recording's end."""
    refs = [
        ReferenceSentence("Hello world, this is a test.", 1.0, 4.0),
        ReferenceSentence("We talk about it.", 5.0, 9.0),
    ]
    hyp = "Hello world, this is a test. We talk about it.".split()
    delays = [2.0, 2.5, 3.0, 3.4, 3.8, 4.2, 6.0, 6.5, 7.0, 9.5]
    words = [TimedWord(w, d, d + 0.3) for w, d in zip(hyp, delays)]
    scores = long_yaal(words, refs)
    # sentence 1: gamma = 6 / 3000 ms; terms d - t / gamma = 1000, 1000, 1000, 900, 800, 700 -> 900 ms
    # sentence 2: gamma = 4 / 4000 ms; 1000, 500, 0 (the word at 9.5 s is past the recording's end) -> 500 ms
    assert scores["long_yaal"] == pytest.approx((0.9 + 0.5) / 2)
    assert scores["long_yaal_ca"] == pytest.approx((0.9 + 0.5) / 2 + 0.3)


def test_laal_matches_its_definition():
    # 3 words at 1, 2, 3 s of a 4 s sentence with a 4-word reference: rate 1 word/s
    assert laal([1.0, 2.0, 3.0], 4.0, 4) == pytest.approx(((1 - 0) + (2 - 1) + (3 - 2)) / 3)
    # rate max(3 words, 2) / 4 s; stops at the first delay past the source end
    assert laal([1.0, 5.0, 6.0], 4.0, 2) == pytest.approx(((1 - 0) + (5 - 1 / 0.75)) / 2)
    assert laal([7.0], 4.0, 2) == 7.0
    with pytest.raises(ValueError, match="no delays"):
        laal([], 1.0, 1)


def test_resegment_cuts_the_hypothesis_at_the_sentences():
    pieces = resegment("the cat sleeps , a dog runs fast".split(), ["The cat sleeps.", "A dog runs."])
    assert pieces == [[0, 1, 2], [4, 5, 6, 7]]  # "," normalises to nothing and joins no piece
    assert resegment([], ["a", "b"]) == [[], []]


def test_longform_scores_coverage_and_lags():
    words = [TimedWord(w, d, d + 0.5) for w, d in (("the", 1.0), ("cat", 1.4), ("sleeps", 2.2))]
    refs = [ReferenceSentence("The cat sleeps.", 0.5, 2.0), ReferenceSentence("A dog runs.", 3.0, 4.0)]
    s = longform_scores(words, refs)
    assert s["covered"] == 1 and s["coverage"] == 0.5
    assert s["lags"][0] == pytest.approx(0.2) and s["lags"][1] is None
    assert s["stream_laal"] == pytest.approx(laal([0.5, 0.9, 1.7], 1.5, 3))
    assert s["stream_laal_ca"] == pytest.approx(laal([1.0, 1.4, 2.2], 1.5, 3))


def test_longform_streams_hold_new_sentences_with_their_times(corpus, tmp_path):
    out = tmp_path / "streams"
    tables = build_longform(LongFormOptions(str(corpus), str(out), minutes=(0.25,), seed=2), progress=False)
    table = tables["stream_0.25min"]
    assert table == read_stream_sentences(str(out / "stream_0.25min.tsv"))
    audio, rate = sf.read(str(out / "stream_0.25min.wav"))
    assert rate == 16000 and len(audio) / rate >= 15.0
    known = {
        r["tgt_text"]
        for split in ("train", "dev", "test")
        for r in read_tsv(str(corpus / "text" / f"{split}.tsv"), ("tgt_text",))
    }
    assert not {s.tgt_text for s in table} & known
    for a, b in zip(table, table[1:]):
        assert 0.2 - 1e-3 <= b.start - a.end <= 1.5 + 1e-3
    for s in table:  # the sentence's own wav is the stream's samples between its start and end
        alone, _ = sf.read(str(out / "sentences" / f"stream_0.25min_{s.index:04d}.wav"))
        start = round(s.start * rate)
        assert np.array_equal(audio[start : start + len(alone)], alone)
    voices = {
        r["variant"]
        for r in read_tsv(str(corpus / "audio" / "src_voices.tsv"), ("id", "variant"))
        if r["id"].startswith("train_")
    }
    assert {s.voice.split()[0].split("+")[1] for s in table} <= voices
    assert (out / "streams.target").read_text().strip() == " ".join(s.tgt_text for s in table)
    with pytest.raises(PrepError, match="--pause-range"):
        build_longform(LongFormOptions(str(corpus), str(out), pause_range=(1.0, 0.5)), progress=False)


def test_concat_split_joins_utterances_and_their_targets(corpus, tmp_path):
    import shutil

    data = tmp_path / "corpus"
    shutil.copytree(corpus, data)
    assert build_concat_split(ConcatOptions(str(data), count=5, seed=4), progress=False) == 5
    rows = read_tsv(str(data / "train_concat.tsv"), ("id", "src_audio", "src_n_frames", "tgt_audio", "tgt_n_frames"))
    src = {r["id"]: r["tgt_text"] for r in read_tsv(str(data / "src_unigram" / "train.tsv"), ("id", "tgt_text"))}
    joined = read_tsv(str(data / "src_unigram" / "train_concat.tsv"), ("id", "tgt_text"))
    units = {r["id"]: r["units"] for r in read_tsv(str(data / "units" / "train.tsv"), ("id", "units"))}
    for row, text in zip(rows, joined):
        feats = np.load(data / row["src_audio"])
        assert feats.shape == (int(row["src_n_frames"]), 80)
        assert int(row["tgt_n_frames"]) == len(row["tgt_audio"].split())
        # every example is at least two train utterances: its text is longer than any one alone
        assert len(text["tgt_text"].split()) > min(len(v.split()) for v in src.values())
        assert set(row["tgt_audio"].split()) <= {u for v in units.values() for u in v.split()}
    with pytest.raises(PrepError, match="overwrite"):
        build_concat_split(ConcatOptions(str(data), split="train"), progress=False)


def test_lag_trend_on_hand_made_cases():
    ends = [10.0 * k for k in range(1, 61)]  # a sentence ending every 10 s for 10 minutes
    growing = [0.1 + 0.02 * e / 60 for e in ends]  # 20 ms more lag per minute, exactly
    t = lag_trend(ends, growing)
    assert (t["first_sentences"], t["last_sentences"]) == (5, 6)  # ends < 60 s; ends > 540 s
    assert t["first"] == pytest.approx(0.1 + 0.02 * 30 / 60)
    assert t["last"] == pytest.approx(0.1 + 0.02 * 575 / 60)
    assert t["slope_per_minute"] == pytest.approx(0.02)
    assert t["slope_ci"] == pytest.approx([0.02, 0.02])  # no noise: every resample has the slope
    lo, hi = t["difference_ci"]
    assert lo <= t["difference"] <= hi and lo > 0.15
    rng = np.random.default_rng(1)
    flat = list(0.1 + rng.normal(0, 0.05, len(ends)))  # no trend, noise of 50 ms
    t = lag_trend(ends, flat, seed=3)
    assert t["slope_ci"][0] < 0 < t["slope_ci"][1] and t["difference_ci"][0] < 0 < t["difference_ci"][1]
    assert lag_trend(ends, flat, seed=3) == t  # seeded
    with pytest.raises(ValueError, match="60 sentence ends but 2 lags"):
        lag_trend(ends, [0.1, 0.2])


def test_boundary_scores_on_a_hand_made_case():
    refs = [ReferenceSentence("a", 0.0, 2.0), ReferenceSentence("b", 3.0, 5.0), ReferenceSentence("c", 5.5, 8.0)]
    # 1.0: inside the first sentence (a split); 1.9: 0.1 s early, on its boundary; 3.3: a second
    # end for that boundary (within 0.5 s of the next start); 6.5: a split; 8.2: after the last
    got = boundary_scores([1.0, 1.9, 3.3, 6.5, 8.2], refs)
    assert got["precision"] == pytest.approx(3 / 5) and got["splits"] == 2
    assert got["recall"] == pytest.approx(1 / 2) and got["delay"] == pytest.approx(-0.1)
    late = boundary_scores([5.2], refs)  # between 5.0 and the next start + 0.5: on the second boundary
    assert late["precision"] == 1.0 and late["recall"] == 0.5 and late["delay"] == pytest.approx(0.2)
    assert boundary_scores([], refs)["recall"] == 0.0


def test_stream_laal_equals_simulstream_on_a_small_case():
    # simulstream 1.0.0's StreamLaal scorer (word latency unit) gives 0.641667 and 0.854167 on
    # this hypothesis and these two reference sentences (start, duration 1.5 s / 1.0 s)
    hyp = "the cat sleeps a dog runs fast".split()
    ideal = [1.0, 1.4, 2.2, 3.5, 3.9, 4.6, 5.0]
    words = [TimedWord(w, d, d + 0.3) for w, d in zip(hyp, ideal)]
    refs = [ReferenceSentence("the cat sleeps", 0.5, 2.0), ReferenceSentence("a dog runs", 3.0, 4.0)]
    s = longform_scores(words, refs)
    assert s["stream_laal"] == pytest.approx(0.6416667, abs=1e-6)
    assert s["stream_laal_ca"] == pytest.approx(0.8541667, abs=1e-6)


def test_longform_cli_translates_a_stream_and_names_bad_input(trained, corpus, tmp_path, capsys):
    import json

    from echostream_fairseq.cli.longform import main

    save, _ = trained
    streams = tmp_path / "streams"
    build_longform(LongFormOptions(str(corpus), str(streams), minutes=(0.1,), seed=5), progress=False)
    common = [
        "--model-path",
        str(save / "checkpoint_last.pt"),
        "--data-bin",
        str(corpus),
        "--streams",
        str(streams),
        "--threads",
        "1",
    ]
    out = tmp_path / "eval"
    assert main(common + ["--out", str(out), "--sentence-level", "--sentence-pause-ms", "200"]) == 0
    record = json.loads((out / "stream_0.1min.json").read_text())
    table = read_stream_sentences(str(streams / "stream_0.1min.tsv"))
    assert record["sentences"] == len(table) and len(record["lags"]) == len(table)
    assert 0 <= record["bleu"] <= 100 and 0 <= record["sentence_level_bleu"] <= 100
    assert 0 <= record["coverage"] <= 1 and record["state_bytes"][0][1] > 0
    # OmniSTEval's LongYAAL beside StreamLAAL, and the files its own command reads
    # (the toy model writes its words when the source ends: OmniSTEval counts none past the recording)
    assert "long_yaal" in record and (record["long_yaal"] is None or record["long_yaal_ca"] >= record["long_yaal"])
    hypothesis = json.loads((out / "stream_0.1min.omnisteval.jsonl").read_text())
    assert len(hypothesis["delays"]) == len(hypothesis["elapsed"]) == len(hypothesis["prediction"].split())
    segments = yaml.safe_load((out / "stream_0.1min.segmentation.yaml").read_text())
    assert [s["offset"] for s in segments] == [round(s.start, 3) for s in table]
    assert len((out / "stream_0.1min.references.txt").read_text().splitlines()) == len(table)
    words = (out / "stream_0.1min.words.tsv").read_text().splitlines()
    assert words[0] == "word\tdelay\tcomputation_aware_delay" and len(words) == record["words"] + 1
    assert "| stream_0.1min |" in capsys.readouterr().out
    assert main(common + ["--out", str(out), "--names", "stream_9min"]) == 2
    assert "stream_9min.tsv: no such stream" in capsys.readouterr().err
    assert main(common + ["--out", str(out), "--sentence-pause-ms", "-1"]) == 2
    assert "--sentence-pause-ms must be >= 0 milliseconds, got -1" in capsys.readouterr().err
    assert main(common + ["--out", str(out), "--asr-sentence-ends", "on"]) == 2
    assert (
        "was not trained with --asr-sentence-ends, its ASR CTC head writes no sentence-end marks"
        in capsys.readouterr().err
    )
