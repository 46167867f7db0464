"""The three SimulEval agents, run through the ``simuleval`` CLI on a tiny trained checkpoint."""

import json

import numpy as np
import pytest
import soundfile as sf
from cli_runs import BIN, REPO, run_cli


def _lists(corpus, tmp_path, n=2, sources=None):
    src = sorted((corpus / "audio" / "src").glob("test_*.wav"))[:n] if sources is None else sources
    (tmp_path / "source.txt").write_text("".join(f"{p}\n" for p in src))
    (tmp_path / "target.txt").write_text("a small dog eats\n" * len(src))
    return tmp_path / "source.txt", tmp_path / "target.txt"


def _simuleval(agent, corpus, trained, tmp_path, *extra, sources=None, segment=320):
    save, _ = trained
    source, target = _lists(corpus, tmp_path, sources=sources)
    out = tmp_path / "out"
    r = run_cli(
        [
            BIN / "simuleval",
            "--agent",
            REPO / "agents" / agent,
            "--source",
            source,
            "--target",
            target,
            "--source-segment-size",
            segment,
            "--model-path",
            save / "checkpoint_last.pt",
            "--data-bin",
            corpus,
            "--output",
            out,
            "--max-len",
            "12",
            *extra,
        ],
        timeout=300,
    )
    return r, out


def _scores(out):
    head, values = (out / "scores.tsv").read_text().strip().split("\n")
    return dict(zip(head.split("\t"), map(float, values.split("\t"))))


def _vocoder(corpus):
    return ["--vocoder-type", "griffin_lim", "--vocoder", corpus / "units" / "kmeans.pt", "--dur-prediction"]


def test_s2st_agent_writes_speech_latency_and_asr_bleu(corpus, speaking, tmp_path):
    lm = tmp_path / "english.txt"
    lm.write_text("a small dog eats\nthe big cat sleeps\n")
    r, out = _simuleval(
        "echostream_s2st_agent.py",
        corpus,
        speaking,
        tmp_path,
        *_vocoder(corpus),
        "--user-dir",
        REPO / "echostream_fairseq" / "evaluation" / "asr_bleu",
        "--quality-metrics",
        "ASR_BLEU_OFFLINE",
        "--asr-bleu-lm-text",
        lm,
        "--latency-metrics",
        "AL",
        "StartOffset",
        "EndOffset",
        "ATD",
        "--computation-aware",
        "--extra-output-dir",
        tmp_path / "text",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    scores = _scores(out)
    for key in ("ASR_BLEU_OFFLINE", "AL", "AL_CA", "StartOffset", "ATD_CA"):
        assert np.isfinite(scores[key]), scores
    logs = [json.loads(line) for line in (out / "instances.log").read_text().splitlines()]
    assert len(logs) == 2
    for info in logs:
        # the computation-aware times are kept (SimulEval 1.1.4 alone writes [] for speech)
        assert len(info["elapsed"]) == len(info["delays"]) > 0
        assert all(e >= d for e, d in zip(info["elapsed"], info["delays"]))
        wav, rate = sf.read(info["prediction"])
        assert rate == 16000 and len(wav) > 0
    assert len((tmp_path / "text" / "translation.txt").read_text().splitlines()) == 2

    report = run_cli([BIN / "echostream-simul-report", out, "--json", tmp_path / "r.json"])
    assert report.returncode == 0, report.stderr
    row = json.loads((tmp_path / "r.json").read_text())["out"]
    assert row["AL_CA"] >= row["AL"] and row["ASR_BLEU"] == pytest.approx(scores["ASR_BLEU_OFFLINE"], abs=1e-3)


@pytest.mark.parametrize("agent,metric", [("echostream_s2tt_agent.py", "BLEU"), ("echostream_asr_agent.py", "WER")])
def test_text_agents_write_words_and_latency(corpus, speaking, tmp_path, agent, metric):
    r, out = _simuleval(
        agent,
        corpus,
        speaking,
        tmp_path,
        "--quality-metrics",
        metric,
        "--latency-metrics",
        "AL",
        "AP",
        "DAL",
        "--computation-aware",
        segment=640,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    scores = _scores(out)
    assert all(np.isfinite(scores[k]) for k in (metric, "AL", "AP", "DAL"))
    for line in (out / "instances.log").read_text().splitlines():
        info = json.loads(line)
        assert len(info["delays"]) == len(info["prediction"].split())


def test_text_agent_on_the_graph_runtime_writes_what_torch_writes(corpus, writing, tmp_path):
    save, _ = writing
    r = run_cli([BIN / "echostream-export", "--model-path", save / "checkpoint_last.pt", "--data-bin", corpus])
    assert r.returncode == 0, r.stderr[-3000:]
    assert (save / "graphs" / "checkpoint_last" / "encoder_step.fp32.onnx").is_file()  # the default folder
    predictions = {}
    for runtime in ("torch", "onnx"):
        (tmp_path / runtime).mkdir()
        r, out = _simuleval("echostream_s2tt_agent.py", corpus, writing, tmp_path / runtime, "--runtime", runtime)
        assert r.returncode == 0, r.stderr[-3000:]
        lines = (out / "instances.log").read_text().splitlines()
        predictions[runtime] = [json.loads(line)["prediction"] for line in lines]
    assert predictions["onnx"] == predictions["torch"] and any(predictions["torch"])


def _write(path, data, rate, subtype):
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def test_agent_reads_any_wav_format_without_crashing(corpus, speaking, tmp_path):
    speech, _ = sf.read(sorted((corpus / "audio" / "src").glob("test_*.wav"))[0], dtype="float32")
    stereo44 = np.stack([speech, speech], axis=1)
    import torch
    import torchaudio.functional as AF

    stereo44 = AF.resample(torch.from_numpy(stereo44.T.copy()), 16000, 44100).T.numpy()
    nan = speech.copy()
    nan[1000:1100] = np.nan
    sources = [
        _write(tmp_path / "stereo_44k_24bit.wav", stereo44, 44100, "PCM_24"),
        _write(tmp_path / "u8_8k.wav", AF.resample(torch.from_numpy(speech), 16000, 8000).numpy(), 8000, "PCM_U8"),
        _write(tmp_path / "int32.wav", speech, 16000, "PCM_32"),
        _write(tmp_path / "float_nan.wav", nan, 16000, "FLOAT"),
        _write(tmp_path / "silence.wav", np.zeros(16000, dtype=np.float32), 16000, "PCM_16"),
    ]
    r, out = _simuleval(
        "echostream_s2st_agent.py",
        corpus,
        speaking,
        tmp_path,
        *_vocoder(corpus),
        "--latency-metrics",
        "StartOffset",
        sources=sources,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    logs = [json.loads(line) for line in (out / "instances.log").read_text().splitlines()]
    assert len(logs) == len(sources)
    assert "NaN/inf source samples were read as silence" in r.stderr


def test_missing_vocoder_and_conformer_without_reencode_fail_at_start(corpus, trained, tmp_path):
    r, _ = _simuleval("echostream_s2st_agent.py", corpus, trained, tmp_path)
    assert r.returncode != 0
    assert "speech output needs a vocoder: --vocoder G --vocoder-cfg CONFIG.json" in r.stderr
    r, _ = _simuleval(
        "echostream_s2st_agent.py",
        corpus,
        trained,
        tmp_path,
        "--vocoder",
        tmp_path / "g.pt",
        "--vocoder-cfg",
        tmp_path / "missing.json",
    )
    assert r.returncode != 0 and "missing.json" in r.stderr


def test_split_complete_words_keeps_the_open_word():
    from fairseq.data import Dictionary

    from echostream_fairseq.data.text import split_complete_words

    d = Dictionary()
    ids = {p: d.add_symbol(p) for p in ["\u2581the", "\u2581sm", "all", "\u2581dog"]}
    pending = [ids["\u2581the"], ids["\u2581sm"], ids["all"]]
    assert split_complete_words(d, pending, False) == (["the"], [ids["\u2581sm"], ids["all"]])
    pending = [ids["\u2581sm"], ids["all"], ids["\u2581dog"]]
    assert split_complete_words(d, pending, False) == (["small"], [ids["\u2581dog"]])
    assert split_complete_words(d, pending, True) == (["small", "dog"], [])
    assert split_complete_words(d, [ids["all"]], False) == ([], [ids["all"]])


def test_s2st_agent_takes_streamspeech_flags_and_file_names(corpus, streamspeech_data, streamspeech_trained, tmp_path):
    """StreamSpeech's simul-s2st command (its data folder and YAMLs, its agent flags, those its agents
    never read among them) runs the speech-to-speech agent; --extra-output-names streamspeech writes
    its st.txt and unit.txt."""
    source, target = _lists(corpus, tmp_path)
    streamspeech_flags = (
        "--config-yaml config_gcmvn.yaml --multitask-config-yaml config_mtl_asr_st_ctcst.yaml "
        "--output-asr-translation True --lagging-k1 0 --lagging-k2 0 --stride-n 1 --stride-n2 1 "
        "--segment-size 320 --unit-per-subword 15 --force-finish --shift-size 10 --window-size 25 "
        "--feature-dim 80 --sample-rate 48000 --extra-output-names streamspeech"
    ).split()
    r = run_cli(
        [
            BIN / "simuleval",
            "--agent",
            REPO / "agents" / "echostream_s2st_agent.py",
            "--source",
            source,
            "--target",
            target,
            "--source-segment-size",
            "320",
            "--model-path",
            streamspeech_trained / "checkpoint_last.pt",
            "--data-bin",
            streamspeech_data,
            "--output",
            tmp_path / "out",
            "--max-len",
            "6",
            *_vocoder(corpus),
            *streamspeech_flags,
            "--extra-output-dir",
            tmp_path / "text",
        ],
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "text").iterdir()) == ["asr.txt", "st.txt", "unit.txt"]
    assert len((tmp_path / "text" / "st.txt").read_text().splitlines()) == 2
    units = (tmp_path / "text" / "unit.txt").read_text().split()
    assert all(u.isdigit() and int(u) < 50 for u in units)
