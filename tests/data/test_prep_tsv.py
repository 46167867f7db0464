"""``echostream-prep tsv``: mixed input formats, and every kind of bad input named by file and line."""

import numpy as np
import pytest
import soundfile as sf

from echostream_fairseq.cli.prep import main
from echostream_fairseq.data.audio import read_audio
from echostream_fairseq.data.manifest import read_tsv

HEADER = "id\tsrc_audio\tsrc_text\ttgt_text\ttgt_audio\n"


def _speechlike(seconds: float, rate: int, seed: int, channels: int = 1) -> np.ndarray:
    """Tone glides with noise: enough spectral variety for a few k-means clusters."""
    rng = np.random.RandomState(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 150 + 100 * np.sin(2 * np.pi * 0.7 * t + seed)
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / rate) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.randn(
        len(t)
    )
    x = x.astype(np.float32)
    return np.stack([x, 0.5 * x[::-1]], 1) if channels == 2 else x


def make_layout(root):
    """train (4 utterances in wav/flac/mp3/ogg, mono and stereo, 8 to 48 kHz), dev (2), test (1)."""
    audio = root / "audio"
    audio.mkdir(parents=True)
    files = {
        "t1_src.flac": (_speechlike(1.0, 44100, 1, channels=2), 44100),
        "t1_tgt.wav": (_speechlike(1.2, 22050, 2), 22050),
        "t2_src.wav": (_speechlike(0.9, 8000, 3), 8000),
        "t2_tgt.wav": (_speechlike(1.1, 24000, 4, channels=2), 24000),
        "t3_src.ogg": (_speechlike(1.0, 16000, 5), 16000),
        "t3_tgt.wav": (_speechlike(0.8, 16000, 6), 16000),
        "t4_src.wav": (_speechlike(0.7, 48000, 7), 48000),
        "t4_tgt.flac": (_speechlike(1.0, 16000, 8), 16000),
        "d1_src.wav": (_speechlike(0.8, 16000, 9), 16000),
        "d1_tgt.wav": (_speechlike(0.9, 16000, 10), 16000),
        "d2_src.wav": (_speechlike(0.6, 22050, 11), 22050),
        "d2_tgt.wav": (_speechlike(0.7, 16000, 12), 16000),
        "e1_src.wav": (_speechlike(0.8, 16000, 13), 16000),
        "e1_tgt.wav": (_speechlike(0.8, 16000, 14), 16000),
    }
    if "MP3" in sf.available_formats():
        files["t4_src.mp3"] = files.pop("t4_src.wav")
    for name, (data, rate) in files.items():
        sf.write(audio / name, data, rate)
    t4 = "t4_src.mp3" if "t4_src.mp3" in files else "t4_src.wav"
    (root / "train.tsv").write_text(
        HEADER
        + "t1\taudio/t1_src.flac\tLe chat noir dort.\tThe black cat sleeps.\taudio/t1_tgt.wav\n"
        + "t2\taudio/t2_src.wav\tUne pomme rouge !\tA red apple!\taudio/t2_tgt.wav\n"
        + "t3\taudio/t3_src.ogg\tL'homme mange.\tThe man eats.\taudio/t3_tgt.wav\n"
        + f"t4\taudio/{t4}\tIl court vite.\tHe runs fast.\t{audio / 't4_tgt.flac'}\n"
    )
    (root / "dev.tsv").write_text(
        HEADER
        + "d1\taudio/d1_src.wav\tLe chien blanc.\tThe white dog.\taudio/d1_tgt.wav\n"
        + "d2\taudio/d2_src.wav\tDeux ânes.\tTwo donkeys.\taudio/d2_tgt.wav\n"
    )
    (root / "test.tsv").write_text(HEADER + "e1\taudio/e1_src.wav\tBonjour.\tHello.\taudio/e1_tgt.wav\n")
    return root


def run(root, out, *extra):
    main(
        [
            "tsv",
            "--train",
            str(root / "train.tsv"),
            "--dev",
            str(root / "dev.tsv"),
            "--test",
            str(root / "test.tsv"),
            "--out",
            str(out),
            "--num-units",
            "4",
            "--vocab-size",
            "40",
            "--jobs",
            "2",
            "--no-progress",
            *extra,
        ]
    )


def test_tsv_mode_converts_any_audio(tmp_path):
    root = make_layout(tmp_path / "in")
    out = tmp_path / "out"
    run(root, out)
    columns = ("id", "src_audio", "src_n_frames", "tgt_audio", "tgt_n_frames")
    rows = {s: read_tsv(out / f"{s}.tsv", columns) for s in ("train", "dev", "test")}
    assert [r["id"] for r in rows["train"]] == ["t1", "t2", "t3", "t4"]
    inputs = {r["id"]: r for r in read_tsv(root / "train.tsv", ("id", "src_audio", "tgt_audio"))}
    for row in rows["train"]:
        for side in ("src", "tgt"):
            converted = out / "audio" / side / f"{row['id']}.wav"
            info = sf.info(converted)
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            source = root / inputs[row["id"]][f"{side}_audio"]  # absolute paths stay absolute
            expected = read_audio(source)  # downmixed + resampled
            got = read_audio(converted)
            assert got.shape == expected.shape
            assert (got - expected).abs().max() < 1e-4
        assert all(0 <= int(u) < 4 for u in row["tgt_audio"].split())
    assert sf.info(out / "audio" / "src" / "t1.wav").frames == 16000  # 1 s of 44.1 kHz stereo
    assert sf.info(out / "audio" / "src" / "t2.wav").frames == 14400  # 0.9 s of 8 kHz
    text = read_tsv(out / "text" / "train.tsv", ("id", "src_text", "tgt_text"))
    assert text[1]["src_text"] == "Une pomme rouge !"  # raw text kept
    pieces = read_tsv(out / "tgt_unigram" / "train.tsv", ("id", "tgt_text"))
    assert "".join(pieces[1]["tgt_text"].split()).replace("\u2581", " ").strip() == "a red apple"  # normalised
    assert (out / "simuleval" / "test.target").read_text() == "Hello.\n"


def _case(root, case):
    """Break the layout of ``make_layout`` in one way; returns (file, line) the error must name."""
    train = root / "train.tsv"
    lines = train.read_text().splitlines(keepends=True)
    if case == "missing_audio":
        (root / "audio" / "t2_src.wav").unlink()
        return train, 3, "source audio file not found"
    if case == "unreadable_audio":
        (root / "audio" / "t2_src.wav").write_text("this is not audio")
        return train, 3, "source audio .*t2_src.wav: cannot read audio"
    if case == "empty_audio":
        sf.write(root / "audio" / "t3_tgt.wav", np.zeros((0, 1), np.float32), 16000)
        return train, 4, "target audio .*t3_tgt.wav: audio has no samples"
    if case == "nan_audio":
        data = _speechlike(0.5, 16000, 1)
        data[100] = np.nan
        sf.write(root / "audio" / "t2_src.wav", data, 16000, subtype="FLOAT")
        return train, 3, "source audio .*t2_src.wav: audio contains NaN or inf"
    if case == "too_short_audio":
        sf.write(root / "audio" / "t2_src.wav", _speechlike(0.01, 16000, 1), 16000)
        return train, 3, "shorter than one 25 ms fbank window"
    if case == "empty_transcript":
        lines[2] = "t2\taudio/t2_src.wav\t  \tA red apple!\taudio/t2_tgt.wav\n"
    elif case == "punctuation_transcript":
        lines[2] = "t2\taudio/t2_src.wav\tUne pomme.\t ... !\taudio/t2_tgt.wav\n"
    elif case == "duplicate_id":
        lines[3] = lines[3].replace("t3\t", "t1\t", 1)
    elif case == "bad_id":
        lines[3] = lines[3].replace("t3\t", "../t3\t", 1)
    elif case == "field_count":
        lines[2] = "t2\taudio/t2_src.wav\tUne pomme\n"
    elif case == "missing_column":
        lines[0] = "id\tsrc_audio\tsrc_text\ttgt_text\twav\n"
    elif case == "duplicate_across_splits":
        dev = root / "dev.tsv"
        dev_lines = dev.read_text().splitlines(keepends=True)
        dev_lines[2] = dev_lines[2].replace("d2\t", "t4\t", 1)
        dev.write_text("".join(dev_lines))
        return dev, 3, r"duplicate id 't4' \(also at .*train.tsv:5\)"
    train.write_text("".join(lines))
    expected = {
        "empty_transcript": (3, "empty transcript in column 'src_text'"),
        "punctuation_transcript": (3, "empty transcript in column 'tgt_text'"),
        "duplicate_id": (4, r"duplicate id 't1' \(first on line 2\)"),
        "bad_id": (4, "id '../t3' cannot be used as a file name"),
        "field_count": (3, "expected 5 tab-separated fields"),
        "missing_column": (1, r"missing column\(s\) \['tgt_audio'\]"),
    }[case]
    return train, expected[0], expected[1]


CASES = [
    "missing_audio",
    "unreadable_audio",
    "empty_audio",
    "nan_audio",
    "too_short_audio",
    "empty_transcript",
    "punctuation_transcript",
    "duplicate_id",
    "bad_id",
    "field_count",
    "missing_column",
    "duplicate_across_splits",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_names_file_and_line(tmp_path, capsys, case):
    import re

    root = make_layout(tmp_path / "in")
    path, line, message = _case(root, case)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        run(root, out)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"error: {path}:{line}: "), err
    assert re.search(message, err), err
    if case not in ("nan_audio", "too_short_audio"):  # found before anything is written
        assert not out.exists()
    else:  # found while decoding: nothing is trusted, no manifest exists
        assert not (out / ".steps" / "audio.json").exists() and not (out / "train.tsv").exists()


def test_train_split_required(tmp_path, capsys):
    root = make_layout(tmp_path / "in")
    with pytest.raises(SystemExit):
        main(["tsv", "--dev", str(root / "dev.tsv"), "--out", str(tmp_path / "o")])  # argparse: --train required
    assert "--train" in capsys.readouterr().err
