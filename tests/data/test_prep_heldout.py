"""``echostream-prep synthetic``: the held-out-voice test split and precomputed fbank."""

import numpy as np
import pytest
from fairseq.data import Dictionary

from echostream_fairseq.cli.prep import build_parser, main
from echostream_fairseq.data.audio import fbank, read_audio
from echostream_fairseq.data.corpus import DEFAULT_HELD_OUT_VOICES, HELD_OUT_SPLIT, synthetic_corpus
from echostream_fairseq.data.manifest import ManifestError, read_tsv
from echostream_fairseq.data.speech_to_unit_dataset import SpeechToUnitDataset
from echostream_fairseq.data.tts import SOURCE_VOICES

ARGS = ["--num-train", "20", "--num-dev", "3", "--num-test", "4", "--num-units", "12", "--seed", "3", "--no-progress"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("heldout") / "corpus"
    main(["synthetic", "--out", str(out), *ARGS, "--precompute-fbank"])
    return out


def test_held_out_voices_never_occur_in_train_dev_or_test():
    corpus = synthetic_corpus(1, {"train": 400, "dev": 20, "test": 30}, held_out_voices=DEFAULT_HELD_OUT_VOICES)
    for split in ("train", "dev", "test"):
        assert not {u.src_voice.variant for u in corpus.splits[split]} & set(DEFAULT_HELD_OUT_VOICES)
    assert {u.src_voice.variant for u in corpus.splits["train"]} == set(SOURCE_VOICES) - set(DEFAULT_HELD_OUT_VOICES)
    held = corpus.splits[HELD_OUT_SPLIT]
    assert {u.src_voice.variant for u in held} == set(DEFAULT_HELD_OUT_VOICES)
    # the same sentences as test, so the two splits differ by their voices alone
    assert [(u.src_text, u.tgt_text) for u in held] == [(u.src_text, u.tgt_text) for u in corpus.splits["test"]]
    assert corpus.splits["train"][0].id == "train_00000" and held[0].id == f"{HELD_OUT_SPLIT}_00000"


def test_without_held_out_voices_every_voice_trains():
    corpus = synthetic_corpus(1, {"train": 400, "dev": 2, "test": 2})
    assert set(corpus.splits) == {"train", "dev", "test"}
    assert {u.src_voice.variant for u in corpus.splits["train"]} == set(SOURCE_VOICES)


@pytest.mark.parametrize(
    "voices, message",
    [
        (["es-nope"], "--held-out-voices: unknown voice variant(s) ['es-nope']"),
        (list(SOURCE_VOICES), "holds out every voice variant"),
    ],
)
def test_bad_held_out_voices_are_named(voices, message):
    with pytest.raises(ManifestError) as info:
        synthetic_corpus(1, {"train": 4, "dev": 1, "test": 1}, held_out_voices=voices)
    assert message in str(info.value)


def test_cli_default_and_none(corpus, tmp_path, capsys):
    assert build_parser().parse_args(["synthetic", "--out", "x"]).held_out_voices is None  # -> the defaults
    help_text = build_parser()._subparsers._group_actions[0].choices["synthetic"].format_help()
    assert " ".join(DEFAULT_HELD_OUT_VOICES) in " ".join(help_text.split())
    voices = {r["id"]: r["variant"] for r in read_tsv(corpus / "audio" / "src_voices.tsv", ("id", "variant"))}
    assert {v for i, v in voices.items() if i.startswith(HELD_OUT_SPLIT)} <= set(DEFAULT_HELD_OUT_VOICES)
    assert not {v for i, v in voices.items() if not i.startswith(HELD_OUT_SPLIT)} & set(DEFAULT_HELD_OUT_VOICES)
    for suffix in ("source", "target", "src_text"):
        assert (corpus / "simuleval" / f"{HELD_OUT_SPLIT}.{suffix}").is_file()
    assert (corpus / "simuleval" / f"{HELD_OUT_SPLIT}.target").read_text() == (
        corpus / "simuleval" / "test.target"
    ).read_text()
    main(["synthetic", "--out", str(tmp_path / "none"), *ARGS, "--held-out-voices"])
    assert not (tmp_path / "none" / f"{HELD_OUT_SPLIT}.tsv").exists()
    with pytest.raises(SystemExit) as info:
        main(["synthetic", "--out", str(tmp_path / "bad"), *ARGS, "--held-out-voices", "es-nope"])
    assert info.value.code == 2 and "unknown voice variant" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_precomputed_fbank_equals_the_fbank_of_the_wav(corpus):
    for split in ("train", "dev", "test", HELD_OUT_SPLIT):
        rows = read_tsv(corpus / f"{split}.tsv", ("id", "src_audio", "src_n_frames"))
        for row in rows:
            assert row["src_audio"] == f"features/{row['id']}.npy"
            feats = np.load(corpus / row["src_audio"])
            expected = fbank(read_audio(corpus / "audio" / "src" / f"{row['id']}.wav")).numpy()
            assert feats.dtype == np.float32 and feats.shape == expected.shape == (int(row["src_n_frames"]), 80)
            np.testing.assert_array_equal(feats, expected)


def test_dataset_reads_the_same_features_from_npy_and_wav(corpus, tmp_path):
    units = Dictionary()
    for u in range(12):
        units.add_symbol(str(u))
    npy = SpeechToUnitDataset(corpus / "train.tsv", units, {})
    lines = (corpus / "train.tsv").read_text().splitlines()
    wav_lines = [lines[0]] + [
        "\t".join([f[0], f"audio/src/{f[0]}.wav", *f[2:]]) for f in (x.split("\t") for x in lines[1:])
    ]
    (corpus / "train_wav.tsv").write_text("\n".join(wav_lines) + "\n")
    wav = SpeechToUnitDataset(corpus / "train_wav.tsv", units, {})
    for i in range(3):
        np.testing.assert_allclose(npy.features(i).numpy(), wav.features(i).numpy(), atol=0)


def test_rerun_without_the_option_needs_force(corpus, tmp_path, capsys):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(corpus, out)
    with pytest.raises(SystemExit) as info:
        main(["synthetic", "--out", str(out), *ARGS])
    assert info.value.code == 2 and "--force" in capsys.readouterr().err
    main(["synthetic", "--out", str(out), *ARGS, "--force"])
    assert read_tsv(out / "train.tsv", ("src_audio",))[0]["src_audio"] == "audio/src/train_00000.wav"


def test_no_specaugment_leaves_it_out_of_the_training_transforms(corpus, tmp_path):
    import shutil

    import yaml

    from echostream_fairseq.tasks.configs import DataConfig

    assert yaml.safe_load((corpus / "config.yaml").read_text())["transforms"]["_train"] == [
        "global_cmvn",
        "specaugment",
    ]
    out = tmp_path / "nospec"
    shutil.copytree(corpus, out)
    main(["synthetic", "--out", str(out), *ARGS, "--precompute-fbank", "--no-specaugment", "--force"])
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["transforms"]["_train"] == ["global_cmvn"] and config["specaugment"]["freq_mask_F"] == 27
    names = [type(t).__name__ for t in DataConfig.load(out / "config.yaml").feature_transforms(True).transforms]
    assert names == ["GlobalCMVN"]
    assert (out / "features" / "train_00000.npy").read_bytes() == (corpus / "features" / "train_00000.npy").read_bytes()


def test_extra_voices_join_train_dev_and_test_but_not_the_held_out_split():
    from echostream_fairseq.data.tts import GENERATED_VOICES

    plain = synthetic_corpus(1, {"train": 600, "dev": 20, "test": 30}, held_out_voices=DEFAULT_HELD_OUT_VOICES)
    extra = synthetic_corpus(
        1, {"train": 600, "dev": 20, "test": 30}, held_out_voices=DEFAULT_HELD_OUT_VOICES, extra_voices=8
    )
    train_voices = {u.src_voice.variant for u in extra.splits["train"]}
    assert train_voices == (set(SOURCE_VOICES) - set(DEFAULT_HELD_OUT_VOICES)) | set(GENERATED_VOICES[:8])
    assert not {u.src_voice.variant for s in ("train", "dev", "test") for u in extra.splits[s]} & set(
        DEFAULT_HELD_OUT_VOICES
    )
    # the held-out split, voices and all, and every sentence are those of the corpus without extra voices
    assert extra.splits[HELD_OUT_SPLIT] == plain.splits[HELD_OUT_SPLIT]
    assert [u.src_text for u in extra.splits["train"]] == [u.src_text for u in plain.splits["train"]]
    assert extra.fingerprint["extra_voices"] == list(GENERATED_VOICES[:8]) and "extra_voices" not in plain.fingerprint
    with pytest.raises(ManifestError, match="--extra-voices must be between 0 and 32, got 33"):
        synthetic_corpus(1, {"train": 4, "dev": 1, "test": 1}, extra_voices=33)
    assert build_parser().parse_args(["synthetic", "--out", "x", "--extra-voices", "5"]).extra_voices == 5
    qualities = synthetic_corpus(
        1,
        {"train": 600, "dev": 20, "test": 30},
        held_out_voices=DEFAULT_HELD_OUT_VOICES,
        extra_voices=8,
        extra_voice_qualities=True,
    )
    assert {u.src_voice.variant for u in qualities.splits["train"]} == (
        set(SOURCE_VOICES) - set(DEFAULT_HELD_OUT_VOICES)
    ) | {f"es-gq{i:02d}" for i in range(1, 9)}
    assert qualities.splits[HELD_OUT_SPLIT] == plain.splits[HELD_OUT_SPLIT]
    assert qualities.fingerprint["extra_voices"] == [f"es-gq{i:02d}" for i in range(1, 9)]
