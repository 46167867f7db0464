"""fairseq-train, fairseq-generate and 2-process CPU training, run as users run them."""

import os
import re
import socket
import subprocess
import sys

import pytest
from cli_runs import BIN, REPO, TRAIN_FLAGS
from cli_runs import run_cli as _run

from echostream_fairseq.data.speech_to_unit_dataset import read_word_sentences


def test_fairseq_train_logs_every_loss_and_lowers_it(trained):
    _, log = trained
    losses = [float(m) for m in re.findall(r"train_inner \| .*? loss=([0-9.]+)", log)]
    assert len(losses) == 6, log[-2000:]
    assert losses[-1] < losses[0]
    for key in ("unit_ctc_loss=", "mt_loss=", "asr_ctc_loss=", "st_ctc_loss=", "asr_wer=", "st_wer="):
        assert key in log
    assert re.search(r"valid on 'dev' subset \| .*unit_er", log)


def test_checkpoint_reloads_with_weights_only(trained):
    save, _ = trained
    load = f"state = torch.load({str(save / 'checkpoint_last.pt')!r}, weights_only=True)\n"
    code = (
        "import torch\nfrom echostream_fairseq.tasks.checkpoint_configs import allow_fairseq_checkpoint_configs\n"
        "allow_fairseq_checkpoint_configs()\n" + load + "print(state['cfg']['model'].arch, len(state['model']))\n"
    )
    r = _run([sys.executable, "-c", code])
    assert r.returncode == 0, r.stderr[-2000:]
    arch, n_tensors = r.stdout.split()
    assert arch == "echostream_emformer_tiny" and int(n_tensors) > 50


@pytest.mark.parametrize("asr_beam", [0, 4])
def test_fairseq_generate_writes_units_and_text(corpus, trained, tmp_path, asr_beam):
    save, _ = trained
    r = _run(
        [
            BIN / "fairseq-generate",
            corpus,
            "--user-dir",
            REPO / "echostream_fairseq",
            "--task",
            "echostream_speech_to_speech",
            "--path",
            save / "checkpoint_last.pt",
            "--gen-subset",
            "test",
            "--max-tokens",
            "3000",
            "--beam",
            "2",
            "--max-len-b",
            "20",
            "--cpu",
            "--results-path",
            tmp_path,
            "--asr-beam",
            str(asr_beam),
        ]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    units = (tmp_path / "generate-test.txt").read_text().splitlines()
    text = (tmp_path / "generate-test.text.txt").read_text().splitlines()
    hyps = [line for line in units if line.startswith("H-")]
    assert len(hyps) == 4  # every test utterance, none dropped by batching
    for line in hyps:
        _, _, unit_str = line.split("\t")
        assert all(0 <= int(u) < 50 for u in unit_str.split())
    for prefix in ("ID-", "ASR-", "ST-", "MT-"):
        assert sum(line.startswith(prefix) for line in text) == 4
    if asr_beam:  # the lexicon decoder spells only words of the training transcripts
        assert "ASR: lexicon of" in r.stderr
        lexicon = {w for sentence in read_word_sentences(corpus / "src_unigram" / "train.tsv") for w in sentence}
        words = [w for line in text if line.startswith("ASR-") for w in line.split("\t")[1].split()]
        assert set(words) <= lexicon


def test_fairseq_generate_rejects_a_negative_asr_beam(corpus, trained, tmp_path):
    save, _ = trained
    r = _run(
        [
            BIN / "fairseq-generate",
            corpus,
            "--user-dir",
            REPO / "echostream_fairseq",
            "--task",
            "echostream_speech_to_speech",
            "--path",
            save / "checkpoint_last.pt",
            "--gen-subset",
            "test",
            "--cpu",
            "--asr-beam",
            "-1",
        ]
    )
    assert r.returncode != 0
    assert "--asr-beam must be 0 (greedy) or positive, got -1" in r.stderr


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_cpu_training(corpus, tmp_path):
    port = _free_port()
    flags = [
        *TRAIN_FLAGS,
        "--max-update",
        "3",
        "--save-dir",
        tmp_path,
        "--distributed-world-size",
        "2",
        "--distributed-backend",
        "gloo",
        "--distributed-no-spawn",
        "--ddp-backend",
        "legacy_ddp",
        "--distributed-init-method",
        f"tcp://127.0.0.1:{port}",
    ]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [str(BIN / "fairseq-train"), str(corpus), *map(str, flags), "--distributed-rank", str(rank)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for rank in (0, 1)
    ]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "distributed init (rank 1)" in logs[0] + logs[1]
    assert len(re.findall(r"train_inner \|", logs[0])) == 3
    assert (tmp_path / "checkpoint_last.pt").is_file()


def test_fairseq_train_anneals_the_rate_to_zero_at_max_update(corpus, tmp_path):
    """--lr-scheduler inverse_sqrt_anneal through fairseq-train: the logged rates, and the clock saved."""
    flags = [f if f != "inverse_sqrt" else "inverse_sqrt_anneal" for f in TRAIN_FLAGS]
    r = _run(
        [
            BIN / "fairseq-train",
            corpus,
            *flags,
            "--warmup-updates",
            "1",
            "--anneal-fraction",
            "0.5",
            "--max-update",
            "4",
            "--save-dir",
            tmp_path,
            "--disable-validation",
        ]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rates = [float(m) for m in re.findall(r"train_inner \| .*? lr=([0-9.e-]+)", r.stderr + r.stdout)]
    # fairseq logs the rate set after each update: inverse_sqrt(u) x min(1, (1 - u / 4) / 0.5)
    assert rates == pytest.approx([1e-3, 1e-3 * 2**-0.5, 1e-3 * 3**-0.5 * 0.5, 0.0], rel=1e-3)
    import torch

    from echostream_fairseq.tasks.checkpoint_configs import allow_fairseq_checkpoint_configs

    allow_fairseq_checkpoint_configs()
    state = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)
    assert state["optimizer_history"][-1]["lr_scheduler_state"]["train_seconds"] > 0
