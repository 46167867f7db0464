"""Offline ASR-BLEU: the scoring function, the transcriber factory, the SimulEval scorer and echostream-asr-bleu."""

import argparse
import importlib.metadata
import json
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("pocketsphinx")

# first: it imports simuleval with pydub's ffmpeg warning silenced
from simuleval import options as simuleval_options  # noqa: E402
from simuleval.evaluator.scorers import get_scorer_class  # noqa: E402
from simuleval.evaluator.scorers.quality_scorer import QUALITY_SCORERS_DICT  # noqa: E402

from echostream_fairseq.cli import asr_bleu as cli  # noqa: E402
from echostream_fairseq.data.audio import AudioError, write_wav  # noqa: E402
from echostream_fairseq.data.text import normalize_text  # noqa: E402
from echostream_fairseq.data.tts import TARGET_VOICE, get_synthesizer  # noqa: E402
from echostream_fairseq.evaluation import asr_bleu as module  # noqa: E402
from echostream_fairseq.evaluation.asr_bleu import (  # noqa: E402
    SCORER_NAME,
    OfflineASRBLEUScorer,
    add_asr_bleu_args,
    asr_bleu,
)
from echostream_fairseq.evaluation.transcribers import AsrBleuError, Transcriber, build_transcriber  # noqa: E402

# The output "speech" of the tests: espeak-ng renderings of the references (a perfect system).
REFERENCES = [
    "The good sister bought these broken coats last night.",
    "John walks in front of the churches now.",
    "My brother will buy these red apples tomorrow.",
    "Your neighbor walks his black dog.",
]
# training-side text for the domain LM: the references among other sentences, so the LM has to choose
LM_SENTENCES = REFERENCES + [
    "A good teacher will paint the old church.",
    "These happy sisters walk to the city.",
    "John bought a small coat last week.",
    "The broken guitar is in front of the house now.",
    "Last night, the dog slept in the garden.",
]
# a sentence with words outside the CMU dictionary: left out of the LM, not an error
OOV_SENTENCE = "In 1990 Zzyzx was born."
RATE = 22050  # espeak-ng's own rate: asr_bleu resamples to 16 kHz


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``{"root", "wavs", "reference", "lm_text"}``: SimulEval-named wavs and the text files."""
    root = tmp_path_factory.mktemp("asr_bleu")
    wavs = root / "wavs"
    wavs.mkdir()
    synth = get_synthesizer()
    for index, text in enumerate(REFERENCES):
        write_wav(str(wavs / f"{index}_pred.wav"), synth.synthesize(text, TARGET_VOICE, sample_rate=RATE), RATE)
    reference = root / "target.txt"
    reference.write_text("\n".join(REFERENCES) + "\n", encoding="utf-8")
    lm_text = root / "train_english.txt"
    lm_text.write_text("\n".join(LM_SENTENCES + ["", OOV_SENTENCE]) + "\n", encoding="utf-8")
    return {"root": root, "wavs": wavs, "reference": reference, "lm_text": lm_text}


@pytest.fixture(scope="module")
def transcriber(files):
    return build_transcriber("pocketsphinx", files["lm_text"])


def wav(files, index):
    return str(files["wavs"] / f"{index}_pred.wav")


def test_domain_lm_scores_espeak_speech(files, transcriber):
    assert isinstance(transcriber, Transcriber)
    # the blank line and the OOV sentence are not in the LM
    assert transcriber.lm_counts["sentences"] == len(LM_SENTENCES)
    result = asr_bleu([wav(files, i) for i in range(4)], REFERENCES, transcriber)
    # measured: all four transcripts exact (BLEU 100); allow a word or so of slack
    assert result["bleu"] > 80.0
    assert result["utterances"] == 4 and result["ref_words"] == 31
    assert result["missing_wavs"] == result["empty_wavs"] == result["empty_transcripts"] == 0
    assert result["missing_indices"] == []
    assert sum(t == normalize_text(r) for t, r in zip(result["transcripts"], REFERENCES)) >= 3
    assert len(result["bleu_precisions"]) == 4 and 0.0 < result["brevity_penalty"] <= 1.0
    assert "tok:13a" in result["bleu_signature"]
    assert result["audio_seconds"] == pytest.approx(9.2, abs=0.5)  # 2.9 + 2.2 + 2.3 + 1.8 s
    # deterministic
    assert asr_bleu([wav(files, i) for i in range(4)], REFERENCES, transcriber)["transcripts"] == result["transcripts"]


def test_wrong_pairing_and_missing_wavs_score_lower(files, transcriber, tmp_path):
    right = asr_bleu([wav(files, i) for i in range(4)], REFERENCES, transcriber)
    # each wav paired with the next reference: only chance n-grams ("the", "walks") match
    rotated = asr_bleu([wav(files, (i + 1) % 4) for i in range(4)], REFERENCES, transcriber)
    assert rotated["bleu"] < 10.0 < right["bleu"]
    assert rotated["missing_wavs"] == 0

    # no wav (SimulEval writes none for an instance without speech), an empty wav, a silent wav:
    # all three are empty hypotheses, no error
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")  # a header only
    silent = tmp_path / "silent.wav"
    write_wav(str(silent), torch.zeros(16000))
    paths = [wav(files, 0), None, str(tmp_path / "1_pred.wav"), str(empty)]
    holes = asr_bleu(paths, REFERENCES[:1] * 4, transcriber)
    assert holes["missing_wavs"] == 2 and holes["missing_indices"] == [1, 2]
    assert holes["empty_wavs"] == 1 and holes["empty_transcripts"] == 3
    assert holes["transcripts"][1:] == ["", "", ""]
    assert holes["hyp_words"] == len(holes["transcripts"][0].split())
    assert holes["bleu"] < right["bleu"]
    one_missing = asr_bleu([wav(files, 0), wav(files, 1), wav(files, 2), None], REFERENCES, transcriber)
    assert one_missing["missing_indices"] == [3]
    assert one_missing["transcripts"] == right["transcripts"][:3] + [""]
    assert one_missing["bleu"] < right["bleu"]
    assert asr_bleu([str(silent)], ["a cat"], transcriber)["empty_transcripts"] == 1


def test_asr_bleu_bad_input(files, transcriber, tmp_path):
    with pytest.raises(ValueError, match="2 wav paths but 1 references"):
        asr_bleu([wav(files, 0), wav(files, 1)], REFERENCES[:1], transcriber)
    with pytest.raises(AsrBleuError, match="no utterances"):
        asr_bleu([], [], transcriber)
    garbage = tmp_path / "0_pred.wav"
    garbage.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="0_pred.wav"):
        asr_bleu([str(garbage)], ["a cat"], transcriber)


def test_build_transcriber_errors(files, tmp_path):
    with pytest.raises(ValueError, match="unknown transcriber 'kaldi'.*pocketsphinx, whisper, wav2vec2"):
        build_transcriber("kaldi")
    with pytest.raises(ValueError, match="takes no model path"):
        build_transcriber("pocketsphinx", None, tmp_path)
    with pytest.raises(ValueError, match="LM text file not found"):
        build_transcriber("pocketsphinx", tmp_path / "nope.txt")
    only_oov = tmp_path / "oov.txt"
    only_oov.write_text(OOV_SENTENCE + "\n")
    with pytest.raises(ValueError, match="every sentence has a word without a pronunciation"):
        build_transcriber("pocketsphinx", only_oov)
    for name in ("whisper", "wav2vec2"):
        with pytest.raises(ValueError, match=f"the {name} transcriber needs a local"):
            build_transcriber(name)
        with pytest.raises(ValueError, match="takes no LM text"):
            build_transcriber(name, files["lm_text"], tmp_path)
    # without the optional packages: an ImportError that says what to install
    backends = (("whisper", "whisper", "openai-whisper"), ("wav2vec2", "transformers", "transformers"))
    for name, module_name, package in backends:
        try:
            __import__(module_name)
        except ImportError:
            with pytest.raises(ImportError, match=f"needs the '{package}' package.*pip install {package}"):
                build_transcriber(name, None, tmp_path)


def test_simuleval_registration_and_options(files):
    assert QUALITY_SCORERS_DICT[SCORER_NAME] is OfflineASRBLEUScorer
    assert get_scorer_class("quality", SCORER_NAME) is OfflineASRBLEUScorer
    # simuleval adds the scorer's options itself when --quality-metrics names it
    parser = argparse.ArgumentParser(conflict_handler="resolve")
    simuleval_options.add_evaluator_args(parser)
    argv = ["--quality-metrics", SCORER_NAME, "BLEU", "--asr-bleu-lm-text", str(files["lm_text"])]
    simuleval_options.add_scorer_args(parser, argv)
    args = parser.parse_args(argv)
    assert args.asr_bleu_transcriber == "pocketsphinx" and args.asr_bleu_model is None
    assert args.asr_bleu_lm_text == str(files["lm_text"])
    assert args.sacrebleu_tokenizer == "13a"  # BLEU's own option is still there
    with pytest.raises(SystemExit):
        parser.parse_args(argv + ["--asr-bleu-transcriber", "kaldi"])
    # a second call on the same parser (the agent adding them too) is a no-op, also without "resolve"
    plain = argparse.ArgumentParser()
    add_asr_bleu_args(plain)
    add_asr_bleu_args(plain)
    assert plain.parse_args([]).asr_bleu_transcriber == "pocketsphinx"


def test_user_dir_import_registers_the_package_class(monkeypatch):
    # simuleval's --user-dir imports <dir>/asr_bleu as the top-level module "asr_bleu"
    monkeypatch.delitem(sys.modules, "asr_bleu", raising=False)
    monkeypatch.setitem(QUALITY_SCORERS_DICT, SCORER_NAME, None)
    simuleval_options.import_user_module(os.path.splitext(module.__file__)[0])
    assert sys.modules["asr_bleu"] is not module
    # the package module's class is registered, not the top-level copy's
    assert QUALITY_SCORERS_DICT[SCORER_NAME] is OfflineASRBLEUScorer
    monkeypatch.delitem(sys.modules, "asr_bleu")


def test_scorer_on_instances(files, transcriber, tmp_path):
    output = tmp_path / "simuleval_out"
    scorer = OfflineASRBLEUScorer(transcriber, output)
    # SpeechOutputInstance: .prediction is a Path; LogInstance (--score-only): a str; keys not in order
    instances = {
        2: SimpleNamespace(prediction=Path(wav(files, 2)), reference=REFERENCES[2]),
        0: SimpleNamespace(prediction=wav(files, 0), reference=REFERENCES[0]),
        3: SimpleNamespace(prediction=str(files["root"] / "nowhere" / "3_pred.wav"), reference=REFERENCES[3]),
        1: SimpleNamespace(prediction=wav(files, 1), reference=REFERENCES[1]),
    }
    score = scorer(instances)
    expected = asr_bleu([wav(files, 0), wav(files, 1), wav(files, 2), None], REFERENCES, transcriber)
    assert isinstance(score, float) and score == pytest.approx(expected["bleu"])
    assert 50.0 < score < 100.0  # one instance without speech
    assert scorer.last_result["missing_indices"] == [3]
    written = json.loads((output / "asr_bleu_offline.json").read_text())
    assert written["bleu"] == pytest.approx(score) and written["transcripts"] == expected["transcripts"]
    assert (output / "asr_bleu_offline_transcripts.txt").read_text().split("\n")[:4] == expected["transcripts"]
    # text output is not a wav path
    with pytest.raises(ValueError, match="instance 0's prediction is not a wav path.*BLEU"):
        scorer({0: SimpleNamespace(prediction="the good sister", reference="the good sister")})
    with pytest.raises(ValueError, match="no instances"):
        scorer({})

    # from_args, as SimulEval calls it
    built = OfflineASRBLEUScorer.from_args(
        argparse.Namespace(
            asr_bleu_transcriber="pocketsphinx",
            asr_bleu_lm_text=str(files["lm_text"]),
            asr_bleu_model=None,
            output=None,
            device="cpu",
        )
    )
    assert built.output_dir is None and built.transcriber.lm_counts == transcriber.lm_counts
    with pytest.raises(ValueError, match="needs a local checkpoint"):
        OfflineASRBLEUScorer.from_args(
            argparse.Namespace(asr_bleu_transcriber="whisper", asr_bleu_lm_text=None, asr_bleu_model=None)
        )


def test_cli(files, tmp_path, capsys):
    out_json, out_text = tmp_path / "out" / "scores.json", tmp_path / "out" / "transcripts.txt"
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for index in (0, 1, 3):  # no 2_pred.wav; other names are ignored
        os.symlink(wav(files, index), wavs / f"{index}_pred.wav")
    (wavs / "notes.txt").write_text("x")
    cli.main(
        [
            "--wav-dir",
            str(wavs),
            "--reference",
            str(files["reference"]),
            "--lm-text",
            str(files["lm_text"]),
            "--json",
            str(out_json),
            "--transcripts-out",
            str(out_text),
        ]
    )
    printed = dict(line.split("\t", 1) for line in capsys.readouterr().out.splitlines())
    result = json.loads(out_json.read_text())
    assert printed["bleu"] == f"{result['bleu']:.2f}" and 50.0 < result["bleu"] < 100.0
    assert printed["missing_wavs"] == "1" and printed["missing_indices"] == "2" and printed["utterances"] == "4"
    transcripts = out_text.read_text().splitlines()
    assert transcripts == result["transcripts"] and len(transcripts) == 4 and transcripts[2] == ""
    assert sorted(os.listdir(out_json.parent)) == ["scores.json", "transcripts.txt"]  # no temporary files left

    # --wav-list: relative to the list's folder; an empty line is a missing wav
    listing = tmp_path / "list.txt"
    listing.write_text("wavs/0_pred.wav\nwavs/1_pred.wav\n\n" + wav(files, 3) + "\n")
    cli.main(["--wav-list", str(listing), "--reference", str(files["reference"]), "--lm-text", str(files["lm_text"])])
    printed_list = dict(line.split("\t", 1) for line in capsys.readouterr().out.splitlines())
    assert printed_list["bleu"] == printed["bleu"] and printed_list["missing_indices"] == "2"


def test_cli_bad_input(files, tmp_path, capsys):
    out_json = tmp_path / "scores.json"
    ref = ["--reference", str(files["reference"]), "--json", str(out_json)]
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "0.wav").write_bytes(b"")
    far = tmp_path / "far"
    far.mkdir()
    os.symlink(wav(files, 0), far / "7_pred.wav")
    short_list = tmp_path / "short.txt"
    short_list.write_text(wav(files, 0) + "\n")
    none_list = tmp_path / "none.txt"
    none_list.write_text("a.wav\nb.wav\n\n\n")
    cases = [
        (["--wav-dir", str(tmp_path / "missing")] + ref, "wav folder not found"),
        (["--wav-dir", str(stray)] + ref, r"no wavs named \{N\}_pred.wav"),
        (["--wav-dir", str(files["wavs"]), "--reference", str(tmp_path / "t.txt")], "reference file not found"),
        (["--wav-dir", str(far)] + ref, r"1 wav\(s\) index past the 4 reference lines \(7_pred.wav\)"),
        (["--wav-list", str(short_list)] + ref, "1 lines but 4 reference lines"),
        (["--wav-list", str(none_list)] + ref, "none of the listed wavs exists"),
        (["--wav-dir", str(files["wavs"]), "--lm-text", str(tmp_path / "lm.txt")] + ref, "--lm-text not found"),
        (["--wav-dir", str(files["wavs"]), "--transcriber", "whisper"] + ref, "needs a local checkpoint"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and re.search(message, err), (argv, err)
    assert not out_json.exists()
    with pytest.raises(SystemExit) as exit_info:  # argparse: --wav-dir or --wav-list is required
        cli.main(["--reference", str(files["reference"])])
    assert exit_info.value.code == 2


def test_console_script_installed():
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("echostream-asr-bleu") == "echostream_fairseq.cli.asr_bleu:main"
