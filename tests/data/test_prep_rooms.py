"""``echostream-prep --rooms SHARE --test-room``: a seeded share of the training sources and a
test_room split put in simulated rooms with noise, every draw listed, the rest untouched."""

import json

import numpy as np
import pytest
import soundfile as sf

from echostream_fairseq.cli.prep import main
from echostream_fairseq.data.corpus import ROOM_SPLIT, synthetic_corpus, with_rooms
from echostream_fairseq.data.manifest import ManifestError, read_tsv
from echostream_fairseq.data.rooms import TEST_ROOMS, TRAINING, apply_room, draw

ARGS = ["--num-train", "20", "--num-dev", "8", "--num-test", "3", "--num-units", "12", "--seed", "3", "--no-progress"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("rooms") / "corpus"
    main(["synthetic", "--out", str(out), *ARGS, "--rooms", "0.5", "--test-room"])
    return out


def _wav(path):
    audio, rate = sf.read(path, dtype="float32")
    assert rate == 16000
    return audio


def test_a_share_of_training_and_the_room_split_are_in_rooms(corpus):
    expected = with_rooms(synthetic_corpus(3, {"train": 20, "dev": 8, "test": 3}), 0.5, True)
    in_rooms = {u.id: u.room for u in expected.all() if u.room}
    assert 6 <= sum(r == "training" for r in in_rooms.values()) <= 14  # about half of 20
    listed = read_tsv(corpus / "audio" / "rooms.tsv", ("id", "room", "rt60_s", "snr_db", "noise"))
    assert {r["id"]: r["room"] for r in listed} == in_rooms
    rows = {r["id"]: r for r in listed}
    for uid, room in in_rooms.items():
        drawn = draw(uid, TRAINING if room == "training" else TEST_ROOMS)
        assert json.loads(rows[uid]["rt60_s"]) == round(drawn.rt60, 3) and rows[uid]["noise"] == drawn.noise
    # the room split: the test sentences, in its own manifest and simuleval lists
    assert len(read_tsv(corpus / f"{ROOM_SPLIT}.tsv", ("id",))) == 3
    sources = (corpus / "simuleval" / f"{ROOM_SPLIT}.source").read_text().split()
    assert [s.rsplit("/", 1)[1] for s in sources] == [f"{ROOM_SPLIT}_{i:05d}.wav" for i in range(3)]
    assert (corpus / "simuleval" / f"{ROOM_SPLIT}.target").read_text() == (
        corpus / "simuleval" / "test.target"
    ).read_text()


def test_the_room_split_is_the_test_speech_in_its_room(corpus):
    for i in range(3):
        clean = _wav(corpus / "audio" / "src" / f"test_{i:05d}.wav")
        roomed = _wav(corpus / "audio" / "src" / f"{ROOM_SPLIT}_{i:05d}.wav")
        assert roomed.shape == clean.shape and not np.allclose(roomed, clean, atol=1e-2)
        room = draw(f"{ROOM_SPLIT}_{i:05d}", TEST_ROOMS)
        if room.noise != "babble":  # the same room applied again to the (16-bit) clean speech
            assert np.abs(apply_room(clean, room, 16000) - roomed).max() < 2e-3
    # a training source not drawn for a room is as synthesised; one drawn is not
    from echostream_fairseq.data.tts import get_synthesizer

    corpus_def = with_rooms(synthetic_corpus(3, {"train": 20, "dev": 8, "test": 3}), 0.5, True)
    plain = next(u for u in corpus_def.splits["train"] if u.room is None)
    roomed = next(u for u in corpus_def.splits["train"] if u.room == "training")
    for u, same in ((plain, True), (roomed, False)):
        synthesised = get_synthesizer().synthesize(u.src_text, u.src_voice, 16000).numpy()
        written = _wav(corpus / "audio" / "src" / f"{u.id}.wav")
        assert (written.shape == synthesised.shape and np.abs(written - synthesised).max() < 1e-3) == same


def test_bad_shares_are_refused():
    corpus = synthetic_corpus(3, {"train": 4, "dev": 1, "test": 1})
    with pytest.raises(
        ManifestError, match="--rooms is the share of training utterances put in a room: 0 to 1, got 1.5"
    ):
        with_rooms(corpus, 1.5, False)
    assert with_rooms(corpus, 0.0, False) is corpus


def test_a_babble_larger_than_its_pool_is_refused_before_any_audio(tmp_path, capsys):
    # test_room_00011 draws babble of 4 talkers; the dev split holds 2
    out = tmp_path / "corpus"
    args = ["--num-train", "4", "--num-dev", "2", "--num-test", "12", "--num-units", "4", "--no-progress"]
    with pytest.raises(SystemExit) as exit_info:
        main(["synthetic", "--out", str(out), *args, "--test-room"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "a test room's babble needs 4 other utterances from dev; this corpus has 2 (a larger --num-dev" in err
    assert not list((out / "audio" / "src").glob("*.wav"))
