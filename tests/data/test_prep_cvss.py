"""``echostream-prep cvss`` on a small fabricated Common Voice + CVSS-C layout."""

import numpy as np
import pytest
import soundfile as sf

from echostream_fairseq.cli.prep import main
from echostream_fairseq.data.manifest import read_tsv

CV_HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment\n"
# CVSS follows CoVoST 2 splits: a clip's Common Voice transcript may sit in any Common Voice file
CLIPS = {
    "train": [
        ("common_voice_fr_100.mp3", "Le chat dort.", "The cat sleeps."),
        ("common_voice_fr_101.mp3", "Il pleut à Paris.", "It rains in Paris."),
        ("common_voice_fr_102.mp3", "J'aime le café noir.", "I like black coffee."),
    ],
    "dev": [("common_voice_fr_200.mp3", "Bonne nuit.", "Good night.")],
    "test": [("common_voice_fr_300.mp3", "Où est la gare ?", "Where is the station?")],
}
AUDIO_EXT = "mp3" if "MP3" in sf.available_formats() else "wav"


def _noise_tone(seconds, rate, seed):
    rng = np.random.RandomState(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * (180 + 40 * seed) * t) + 0.05 * rng.randn(len(t))).astype(np.float32)


def make_cvss_layout(root, ext=AUDIO_EXT):
    cv, cvss = root / "cv-corpus" / "fr", root / "cvss_c_fr_en"
    (cv / "clips").mkdir(parents=True)
    cv_rows = {"train": [], "dev": [], "validated": []}
    for i, (split, clips) in enumerate(CLIPS.items()):
        (cvss / split).mkdir(parents=True)
        lines = []
        for j, (clip, fr, en) in enumerate(clips):
            clip = clip.replace(".mp3", f".{ext}")
            sf.write(cv / "clips" / clip, _noise_tone(1.0 + 0.1 * j, 48000, i * 10 + j), 48000, format=ext.upper())
            sf.write(cvss / split / f"{clip}.wav", _noise_tone(1.2, 24000, 50 + i * 10 + j), 24000)  # CVSS: 24 kHz
            lines.append(f"{clip}\t{en}\n")
            cv_file = "validated" if split == "test" else ("dev" if j == 1 else "train")
            cv_rows[cv_file].append(f"cid{j}\t{clip}\t{fr}\t2\t0\t\t\t\tfr\t\n")
        (cvss / f"{split}.tsv").write_text("".join(lines))
    for name, rows in cv_rows.items():
        (cv / f"{name}.tsv").write_text(CV_HEADER + "".join(rows))
    return cv, cvss


def run(cv, cvss, out, *extra):
    main(
        [
            "cvss",
            "--cv-root",
            str(cv),
            "--cvss-root",
            str(cvss),
            "--out",
            str(out),
            "--num-units",
            "4",
            "--vocab-size",
            "60",
            "--no-progress",
            *extra,
        ]
    )


def test_cvss_layout(tmp_path):
    cv, cvss = make_cvss_layout(tmp_path)
    out = tmp_path / "out"
    run(cv, cvss, out)
    for split, clips in CLIPS.items():
        rows = read_tsv(out / f"{split}.tsv", ("id", "src_audio", "src_n_frames", "tgt_audio", "tgt_n_frames"))
        assert [r["id"] for r in rows] == [c.rsplit(".", 1)[0] for c, _, _ in clips]
        text = read_tsv(out / "text" / f"{split}.tsv", ("id", "src_text", "tgt_text"))
        assert [(r["src_text"], r["tgt_text"]) for r in text] == [(fr, en) for _, fr, en in clips]
        for j, row in enumerate(rows):
            src = sf.info(out / row["src_audio"])
            assert src.samplerate == 16000 and abs(src.frames - 16000 * (1.0 + 0.1 * j)) <= 2  # decoded, resampled
            assert int(row["src_n_frames"]) > 90
            assert all(0 <= int(u) < 4 for u in row["tgt_audio"].split())
    assert (out / "simuleval" / "test.target").read_text() == "Where is the station?\n"


def test_cvss_errors_name_file_and_line(tmp_path, capsys):
    cv, cvss = make_cvss_layout(tmp_path)
    # a CVSS clip without a Common Voice transcript: the ids of the two corpora do not match
    with open(cvss / "dev.tsv", "a") as f:
        f.write("common_voice_fr_999.mp3\tNowhere.\n")
    with pytest.raises(SystemExit) as info:
        run(cv, cvss, tmp_path / "out")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: {cvss / 'dev.tsv'}:2: clip 'common_voice_fr_999.mp3' has no transcript in the Common Voice files"
    )
    assert not (tmp_path / "out").exists()

    (cvss / "dev.tsv").write_text(f"common_voice_fr_200.{AUDIO_EXT}\tGood night.\n")
    (cvss / "test" / f"common_voice_fr_300.{AUDIO_EXT}.wav").unlink()
    with pytest.raises(SystemExit):
        run(cv, cvss, tmp_path / "out")
    err = capsys.readouterr().err
    assert err.startswith(f"error: {cvss / 'test.tsv'}:1: target (CVSS) audio file not found: ")

    with pytest.raises(SystemExit):
        main(["cvss", "--cv-root", str(tmp_path / "nope"), "--cvss-root", str(cvss), "--out", str(tmp_path / "o")])
    assert "--cv-root folder not found" in capsys.readouterr().err
