"""The Zipformer inside the echostream model: trained by fairseq-train with the same criterion,
streamed by the same translator and SimulEval agents."""

import json
import re

import numpy as np
import pytest
import torch
from cli_runs import BIN, REPO, TRAIN_FLAGS, run_cli
from translators import make_translator

from echostream_fairseq.checkpoint import load_echostream_model
from echostream_fairseq.data.audio import fbank, read_audio
from echostream_fairseq.modules.ctc import ctc_greedy
from echostream_fairseq.streaming.features import load_global_cmvn


@pytest.fixture(scope="module")
def loaded(trained_zipformer, corpus):
    save, _ = trained_zipformer
    return load_echostream_model(str(save / "checkpoint_last.pt"), str(corpus))


def _translator(loaded, chunk_ms, encoder_chunk_ms=0):
    return make_translator(loaded, source_segment_size=chunk_ms, encoder_chunk_ms=encoder_chunk_ms, max_len=20)


def test_fairseq_train_lowers_the_loss_of_the_zipformer_model(trained_zipformer):
    _, log = trained_zipformer
    losses = [float(m) for m in re.findall(r"train_inner \| .*? loss=([0-9.]+)", log)]
    assert len(losses) == 6, log[-2000:]
    assert losses[-1] < losses[0]
    assert "encoder_type='zipformer'" in log or "'encoder_type': 'zipformer'" in log


@pytest.mark.parametrize("chunk_ms", [160, 320, 640, 2000])
def test_translator_streams_the_zipformer_equal_to_its_offline_pass(loaded, corpus, chunk_ms):
    model, task = loaded
    assert model.encoder.encoder_type == "zipformer"
    tr = _translator(loaded, chunk_ms)
    wave = read_audio(sorted((corpus / "audio" / "src").glob("test_*.wav"))[0])
    state, outs, chunk, i = tr.initial_state(16000), [], 16 * chunk_ms, 0
    while True:
        last = i + chunk >= len(wave)
        out, state = tr.step(wave[i : i + chunk].numpy(), state, finish=last)
        outs.append(out)
        i += chunk
        if last:
            break
    frames = torch.cat([o.encoder_out for o in outs if o.encoder_out is not None], dim=1)
    mean, std = load_global_cmvn(task.data_cfg.global_cmvn_stats)
    feats = ((fbank(wave) - mean) / std).unsqueeze(0)
    with torch.no_grad():
        ref = model.encoder(feats, torch.tensor([feats.size(1)]))["encoder_out"][0].transpose(0, 1)
        asr = ctc_greedy(model.asr_ctc(ref), torch.tensor([ref.size(1)]), tr.setup.rules.source_banned)[0]
    assert frames.shape == ref.shape and ref.size(1) == -(-feats.size(1) // 4)  # 40 ms frames
    assert (frames - ref).abs().max() <= 1e-5
    assert list(state.asr_tokens) == asr


def test_a_chunk_size_the_stacks_cannot_split_is_refused(loaded):
    with pytest.raises(
        ValueError,
        match=r"--encoder-chunk-ms 2000 does not fit this encoder: chunk_length 50 "
        r"is not compatible with the stack downsampling.*multiple of 4 \(160 ms",
    ):
        _translator(loaded, 2000, encoder_chunk_ms=2000)
    with pytest.raises(ValueError, match=r"--source-segment-size 200 does not fit this encoder: chunk_length 5 "):
        _translator(loaded, 200)
    assert _translator(loaded, 1920, encoder_chunk_ms=1920).chunk_length == 48
    assert _translator(loaded, 2000).chunk_length == 8  # its trained chunk: any source chunk from 320 ms fits


def test_multichunk_lengths_the_stacks_cannot_split_stop_training(corpus, tmp_path):
    flags = [f if f != "echostream_emformer_tiny" else "echostream_zipformer_tiny" for f in TRAIN_FLAGS]
    r = run_cli(
        [
            BIN / "fairseq-train",
            corpus,
            *flags,
            "--max-update",
            "1",
            "--save-dir",
            tmp_path,
            "--multichunk-lengths",
            "4,6,0",
        ]
    )
    assert r.returncode != 0
    assert "--multichunk-lengths '4,6,0': chunk_length 6 is not compatible" in r.stderr
    assert not list(tmp_path.glob("*.pt"))


def test_simuleval_text_agent_runs_the_zipformer_checkpoint(corpus, trained_zipformer, tmp_path):
    save, _ = trained_zipformer
    src = sorted((corpus / "audio" / "src").glob("test_*.wav"))[:2]
    (tmp_path / "source.txt").write_text("".join(f"{p}\n" for p in src))
    (tmp_path / "target.txt").write_text("a small dog eats\n" * len(src))
    out = tmp_path / "out"
    r = run_cli(
        [
            BIN / "simuleval",
            "--agent",
            REPO / "agents" / "echostream_s2tt_agent.py",
            "--source",
            tmp_path / "source.txt",
            "--target",
            tmp_path / "target.txt",
            "--source-segment-size",
            "320",
            "--model-path",
            save / "checkpoint_last.pt",
            "--data-bin",
            corpus,
            "--output",
            out,
            "--max-len",
            "12",
            "--quality-metrics",
            "BLEU",
            "--latency-metrics",
            "AL",
        ],
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    head, values = (out / "scores.tsv").read_text().strip().split("\n")
    scores = dict(zip(head.split("\t"), map(float, values.split("\t"))))
    assert np.isfinite(scores["BLEU"]) and np.isfinite(scores["AL"])
    lines = (out / "instances.log").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        info = json.loads(line)
        assert len(info["delays"]) == len(info["prediction"].split()) >= 1


def test_a_zipformer_checkpoint_older_than_the_delay_flag_loads_without_delay(trained_zipformer, corpus, tmp_path):
    from echostream_fairseq.tasks.checkpoint_configs import allow_fairseq_checkpoint_configs

    save, _ = trained_zipformer
    model, _ = load_echostream_model(str(save / "checkpoint_last.pt"), str(corpus))
    assert model.encoder.subsample.paddings == (4 + 1,)  # the presets' one frame of delay
    allow_fairseq_checkpoint_configs()
    state = torch.load(save / "checkpoint_last.pt", weights_only=True)
    saved = state["cfg"]["model"]  # fairseq keeps a legacy model's arguments as a Namespace
    assert saved.subsampler_delay_frames == 1
    del saved.subsampler_delay_frames  # as saved before the flag existed
    torch.save(state, tmp_path / "old.pt")
    old, _ = load_echostream_model(str(tmp_path / "old.pt"), str(corpus))
    assert old.encoder.subsample.paddings == (4,)
