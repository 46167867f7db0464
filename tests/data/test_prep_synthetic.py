"""``echostream-prep synthetic`` end to end: layout, consistency, reproducibility, resumability."""

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from echostream_fairseq.cli.prep import main
from echostream_fairseq.common.files import TEMP_PREFIX
from echostream_fairseq.data import pipeline as pipeline_module
from echostream_fairseq.data.audio import fbank, read_audio
from echostream_fairseq.data.lexicon import ADJECTIVES, NOUNS
from echostream_fairseq.data.manifest import check_same_ids, read_tsv

NUM_UNITS = 16
ARGS = [
    "--num-train",
    "24",
    "--num-dev",
    "3",
    "--num-test",
    "3",
    "--num-units",
    str(NUM_UNITS),
    "--seed",
    "5",
    "--no-progress",
]
SPLITS = ("train", "dev", "test")


def run(out, *extra):
    main(["synthetic", "--out", str(out), *ARGS, *extra])


def snapshot(folder):
    """{relative path: (mtime_ns, bytes)} of every file under ``folder``."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = (os.stat(path).st_mtime_ns, f.read())
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "corpus"
    run(out)
    return out


def test_layout(corpus):
    for rel in (
        "config.yaml",
        "config_multitask.yaml",
        "gcmvn.npz",
        "stats.json",
        "units/kmeans.pt",
        "units/dict.txt",
        "src_unigram/spm.model",
        "src_unigram/dict.txt",
        "tgt_unigram/spm.model",
        "tgt_unigram/dict.txt",
        "audio/src_voices.tsv",
    ):
        assert (corpus / rel).is_file(), rel
    for split in SPLITS:
        for rel in (
            f"{split}.tsv",
            f"text/{split}.tsv",
            f"src_unigram/{split}.tsv",
            f"tgt_unigram/{split}.tsv",
            f"units/{split}.tsv",
        ):
            assert (corpus / rel).is_file(), rel
    for split in ("dev", "test"):
        for suffix in ("source", "target", "src_text"):
            assert (corpus / "simuleval" / f"{split}.{suffix}").is_file()
    assert not [p for p in corpus.rglob(f"{TEMP_PREFIX}*")]
    assert all(json.loads(p.read_text())["params"] for p in (corpus / ".steps").glob("*.json"))
    assert not list((corpus / ".steps").glob("*.started.json"))


def test_manifests_match_audio_and_units(corpus):
    for split, n in zip(SPLITS, (24, 3, 3)):
        rows = read_tsv(corpus / f"{split}.tsv", ("id", "src_audio", "src_n_frames", "tgt_audio", "tgt_n_frames"))
        assert list(rows[0])[:5] == ["id", "src_audio", "src_n_frames", "tgt_audio", "tgt_n_frames"]
        assert len(rows) == n
        for row in rows:
            assert row["src_audio"] == f"audio/src/{row['id']}.wav"  # relative to the corpus folder
            wav_path = corpus / row["src_audio"]
            info = sf.info(wav_path)
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert int(row["src_n_frames"]) == fbank(read_audio(wav_path)).shape[0] > 0
            units = [int(u) for u in row["tgt_audio"].split()]
            assert len(units) == int(row["tgt_n_frames"]) > 0
            assert all(0 <= u < NUM_UNITS for u in units)
            assert all(a != b for a, b in zip(units, units[1:]))  # de-duplicated
            tgt = sf.info(corpus / "audio" / "tgt" / f"{row['id']}.wav")
            assert tgt.samplerate == 16000 and len(units) <= 1 + tgt.frames // 320
        for other in (f"text/{split}.tsv", f"src_unigram/{split}.tsv", f"tgt_unigram/{split}.tsv"):
            other_rows = read_tsv(corpus / other, ("id",))
            check_same_ids(rows, corpus / f"{split}.tsv", other_rows, corpus / other, same_order=True)


def test_configs(corpus):
    config = yaml.safe_load((corpus / "config.yaml").read_text())
    assert config["input_feat_per_channel"] == 80 and config["sample_rate"] == 16000
    assert config["global_cmvn"] == {"stats_npz_path": "gcmvn.npz"}
    assert config["transforms"] == {"*": ["global_cmvn"], "_train": ["global_cmvn", "specaugment"]}
    assert config["specaugment"] == pipeline_module.SPECAUGMENT and config["specaugment"]["freq_mask_F"] == 27
    # every key is one that fairseq's SpecAugmentTransform reads
    assert set(config["specaugment"]) <= {
        "time_warp_W",
        "freq_mask_N",
        "freq_mask_F",
        "time_mask_N",
        "time_mask_T",
        "time_mask_p",
        "mask_value",
    }
    assert config["units"] == {
        "kmeans": "units/kmeans.pt",
        "num_units": NUM_UNITS,
        "dict": "units/dict.txt",
        "deduplicated": True,
        "kind": {"extractor": "logmel", "num_units": NUM_UNITS},
    }
    multitask = yaml.safe_load((corpus / "config_multitask.yaml").read_text())
    assert multitask["source_unigram"] == {
        "decoder_type": "ctc",
        "dict": "src_unigram/dict.txt",
        "data": "src_unigram",
        "loss_weight": 4.0,
    }
    assert multitask["ctc_target_unigram"]["data"] == "tgt_unigram"
    assert multitask["target_unigram"]["decoder_type"] == "transformer"
    assert multitask["target_unigram"]["label_smoothing"] == 0.1 and multitask["target_unigram"]["loss_weight"] == 8.0


def test_gcmvn_is_train_fbank_statistics(corpus):
    stats = np.load(corpus / "gcmvn.npz")
    assert set(stats.files) == {"mean", "std"}
    assert stats["mean"].dtype == np.float32 and stats["mean"].shape == stats["std"].shape == (80,)
    ids = [r["id"] for r in read_tsv(corpus / "train.tsv", ("id",))]
    feats = torch.cat([fbank(read_audio(corpus / "audio" / "src" / f"{i}.wav")) for i in ids]).double()
    assert np.allclose(stats["mean"], feats.mean(0).numpy(), atol=1e-4)
    assert np.allclose(stats["std"], feats.std(0, unbiased=False).numpy(), atol=1e-3)


def test_subwords_and_dictionaries(corpus):
    import sentencepiece as spm
    from fairseq.data import Dictionary

    for side in ("src", "tgt"):
        lines = (corpus / f"{side}_unigram" / "dict.txt").read_text().splitlines()
        pieces = [line.split(" ")[0] for line in lines]
        assert all(len(line.split(" ")) == 2 and line.split(" ")[1].isdigit() for line in lines)
        assert not {"<unk>", "<s>", "</s>", "<pad>"} & set(pieces)
        model = spm.SentencePieceProcessor(model_file=str(corpus / f"{side}_unigram" / "spm.model"))
        dictionary = Dictionary.load(str(corpus / f"{side}_unigram" / "dict.txt"))
        for split in SPLITS:
            for row in read_tsv(corpus / f"{side}_unigram" / f"{split}.tsv", ("id", "tgt_text")):
                for piece in row["tgt_text"].split():
                    assert dictionary.index(piece) == model.piece_to_id(piece) != dictionary.unk(), piece
    units = (corpus / "units" / "dict.txt").read_text().splitlines()
    assert units == [f"{i} 1" for i in range(NUM_UNITS)]


def test_unit_model(corpus):
    model = torch.load(corpus / "units" / "kmeans.pt", weights_only=True)
    assert model["extractor"] == "logmel" and model["num_units"] == NUM_UNITS
    assert model["centroids"].shape == (NUM_UNITS, 80) and model["mean_duration"].shape == (NUM_UNITS,)
    assert (model["mean_duration"] >= 1).all()
    config = model["feature_config"]
    assert (config["sample_rate"], config["hop_length"], config["n_mels"]) == (16000, 320, 80)
    for key in ("n_fft", "win_length", "f_min", "f_max", "log_offset"):
        assert key in config


def test_simuleval_lists(corpus):
    for split in ("dev", "test"):
        sources = (corpus / "simuleval" / f"{split}.source").read_text().splitlines()
        text = read_tsv(corpus / "text" / f"{split}.tsv", ("id", "src_text", "tgt_text"))
        assert sources == [str(corpus / "audio" / "src" / f"{r['id']}.wav") for r in text]
        assert all(os.path.isabs(s) and os.path.isfile(s) for s in sources)
        assert (corpus / "simuleval" / f"{split}.target").read_text().splitlines() == [r["tgt_text"] for r in text]
        assert (corpus / "simuleval" / f"{split}.src_text").read_text().splitlines() == [r["src_text"] for r in text]


def test_reordering_and_distinct_splits(corpus):
    text = {s: read_tsv(corpus / "text" / f"{s}.tsv", ("id", "src_text", "tgt_text")) for s in SPLITS}
    train = {r["src_text"] for r in text["train"]} | {r["tgt_text"] for r in text["train"]}
    for split in ("dev", "test"):
        assert not ({r["src_text"] for r in text[split]} | {r["tgt_text"] for r in text[split]}) & train
    post = [(n, a) for n in NOUNS for a in ADJECTIVES if not a.before_noun and a.kinds & n.kinds]
    reordered = [
        r
        for s in SPLITS
        for r in text[s]
        if any(
            f"{n.fr} {a.french(n.gender, False)}" in r["src_text"] and f"{a.en} {n.en}" in r["tgt_text"]
            for n, a in post
        )
    ]
    assert reordered, "no noun-adjective reordering in the corpus"


def test_same_seed_same_corpus_bytes(corpus, tmp_path):
    run(tmp_path / "again")
    a, b = snapshot(corpus), snapshot(tmp_path / "again")
    for rel in [r for r in a if not r.startswith((".steps", "simuleval"))]:
        assert a[rel][1] == b[rel][1], rel
    main(["synthetic", "--out", str(tmp_path / "other"), *ARGS[:-3], "--seed", "6", "--no-progress"])
    assert (tmp_path / "other" / "text" / "train.tsv").read_text() != (corpus / "text" / "train.tsv").read_text()


def test_rerun_skips_everything(corpus, capsys):
    before = snapshot(corpus)
    run(corpus)
    assert snapshot(corpus) == before
    assert "ran: nothing" in capsys.readouterr().out


def test_other_parameters_need_force(corpus, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(corpus, out)
    before = snapshot(out)
    with pytest.raises(SystemExit) as info:
        run(out, "--num-units", "12")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "units: " in err and "num_units: 16 -> 12" in err and "--force" in err
    assert "Traceback" not in err
    assert snapshot(out) == before  # nothing touched

    run(out, "--num-units", "12", "--force")
    after = snapshot(out)
    assert after["audio/src/train_00000.wav"] == before["audio/src/train_00000.wav"]  # upstream kept
    assert after["units/kmeans.pt"] != before["units/kmeans.pt"]
    assert torch.load(out / "units" / "kmeans.pt", weights_only=True)["num_units"] == 12
    assert yaml.safe_load((out / "config.yaml").read_text())["units"]["num_units"] == 12
    assert max(int(u) for r in read_tsv(out / "train.tsv", ("tgt_audio",)) for u in r["tgt_audio"].split()) < 12


def test_foreign_folder_needs_force(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    with pytest.raises(SystemExit) as info:
        run(out)
    assert info.value.code == 2
    assert "not empty and was not made by echostream-prep" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    run(out, "--force")
    assert (out / "notes.txt").read_text() == "precious" and (out / "train.tsv").is_file()


def test_interrupted_audio_step_resumes(corpus, tmp_path, monkeypatch):
    out = tmp_path / "interrupted"
    real_write = pipeline_module.write_wav
    calls = {"n": 0}

    def flaky_write(path, waveform, *args):
        calls["n"] += 1
        if calls["n"] == 7:
            real_write(path, waveform[: len(waveform) // 2])  # half a file in the temporary name
            raise KeyboardInterrupt
        real_write(path, waveform, *args)

    monkeypatch.setattr(pipeline_module, "write_wav", flaky_write)
    with pytest.raises(KeyboardInterrupt):
        run(out)
    assert not (out / ".steps" / "audio.json").exists()
    assert (out / ".steps" / "audio.started.json").exists()
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))  # the half-written file was never given its name
    assert len(list((out / "audio" / "src").iterdir())) + len(list((out / "audio" / "tgt").iterdir())) == 6
    assert not (out / "train.tsv").exists()

    monkeypatch.setattr(pipeline_module, "write_wav", real_write)
    run(out)
    a, b = snapshot(corpus), snapshot(out)
    for rel in [r for r in a if not r.startswith((".steps", "simuleval"))]:
        assert a[rel][1] == b[rel][1], rel


def test_interrupted_units_step_is_redone(tmp_path, monkeypatch):
    out = tmp_path / "units"

    def broken(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(pipeline_module, "unit_model_dict", broken)
    with pytest.raises(RuntimeError, match="power cut"):
        run(out)
    assert (out / "units" / "train.tsv").exists()  # written before the failure, but not trusted:
    assert not (out / ".steps" / "units.json").exists() and not (out / "units" / "kmeans.pt").exists()
    monkeypatch.undo()
    run(out)
    assert (out / ".steps" / "units.json").exists() and (out / "units" / "kmeans.pt").exists()
    assert json.loads((out / ".steps" / "audio.json").read_text())["step"] == "audio"


def test_cli_bad_option_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["synthetic", "--out", str(tmp_path / "x"), "--num-train", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --num-train must be at least 1") and "Traceback" not in err
    with pytest.raises(SystemExit) as info:
        main(["synthetic", "--out", str(tmp_path / "x"), "--kmeans-model", "km.npy"])
    assert info.value.code == 2
    assert "need --unit-extractor hubert" in capsys.readouterr().err


def test_command_line_exit_status(tmp_path, capsys):
    from echostream_fairseq.cli.prep import main

    bad = tmp_path / "train.tsv"
    bad.write_text("id\tsrc_audio\n")
    with pytest.raises(SystemExit) as exit_status:
        main(["tsv", "--train", str(bad), "--out", str(tmp_path / "o")])
    assert exit_status.value.code == 2  # the status the command exits with
    err = capsys.readouterr().err
    assert f"error: {bad}:1: missing column(s)" in err and "Traceback" not in err


def test_moved_folder_only_refreshes_absolute_paths(corpus, tmp_path, capsys):
    moved = tmp_path / "moved"
    shutil.copytree(corpus, moved)
    run(moved)
    assert "ran: simuleval;" in capsys.readouterr().out
    assert (moved / "simuleval" / "dev.source").read_text().splitlines()[0] == str(
        moved / "audio" / "src" / "dev_00000.wav"
    )
