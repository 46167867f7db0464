"""The all-blank CTC plateau: its measure (the unigram entropy), and the deadline that stops a run
stuck on it, from the criterion and from fairseq-train itself."""

import re

import numpy as np
import pytest
import soundfile as sf
import torch
from cli_runs import BIN, TRAIN_FLAGS, run_cli
from toy_corpus import toy_training_task, write_toy_corpus

import echostream_fairseq  # noqa: F401  (registers the plugin)
from echostream_fairseq.criterions.multitask import RESUMED_WATCH_UPDATES, CTCPlateauStop
from echostream_fairseq.criterions.plateau import PlateauWatch, unigram_entropy_bits

# the ASR CTC head trains alone (the other terms wait), as at the start of the recipe's gated schedule
ASR_ALONE = ["--loss-schedule", "mt:100000", "unit_ctc:100000", "st_ctc:100000"]


def test_unigram_entropy_in_bits():
    assert unigram_entropy_bits(torch.tensor([1.0, 1.0, 2.0, 0.0])) == pytest.approx(1.5)
    assert unigram_entropy_bits(torch.tensor([5.0, 5.0, 5.0, 5.0])) == pytest.approx(2.0)
    assert unigram_entropy_bits(torch.zeros(3)) == 0.0


def test_watch_counts_real_subwords_and_averages_the_loss():
    watch = PlateauWatch(vocab_size=6)
    targets = torch.tensor([[4, 5, 1, 1], [2, 3, 4, 5]])  # the first row's last two are padding
    counts = watch.count(targets, torch.tensor([2, 4]))
    assert counts.tolist() == [0, 0, 1, 1, 2, 2]
    assert watch.on_plateau  # nothing folded yet: unknown counts as on it
    watch.fold(3.0, counts)
    assert watch.entropy == pytest.approx(1.918295834) and watch.running == 3.0 and watch.on_plateau
    watch.fold(None)  # an update without subwords leaves the running loss
    watch.fold(0.0)
    assert watch.running == pytest.approx(2.7)
    for _ in range(9):
        watch.fold(0.0)
    # 3 * 0.9**10 = 1.05 > 1.918 - 1 bit: still on it; two more updates take it below (0.85)
    assert watch.running == pytest.approx(3 * 0.9**10) and watch.on_plateau
    watch.fold(0.0)
    assert watch.on_plateau
    watch.fold(0.0)
    assert watch.running == pytest.approx(3 * 0.9**12) and not watch.on_plateau


@pytest.fixture(scope="module")
def toy_task(tmp_path_factory):
    root = write_toy_corpus(tmp_path_factory.mktemp("toy"))
    return lambda *extra: toy_training_task(root, *extra)


def test_the_criterion_stops_at_the_deadline_on_the_plateau(toy_task):
    torch.manual_seed(0)
    args, task = toy_task("--ctc-plateau-deadline", "3")
    model, criterion = task.build_model(args), task.build_criterion(args)
    model.args.multichunk = False
    model.train()
    ds = task.datasets["train"]
    sample = ds.collater([ds[i] for i in range(4)])
    for n in range(3):  # an untrained head: its loss is far above the subwords' entropy
        criterion.set_num_updates(n)
        criterion(model, sample)
    with pytest.raises(CTCPlateauStop) as stop:
        criterion.set_num_updates(3)
    message = str(stop.value)
    assert message.startswith("stopping: the ASR CTC head is still on the all-blank plateau at update 3 ")
    # the toy corpus's config.yaml normalises nothing: that hint comes first
    assert "Try: normalised features (global_cmvn in the training transforms of " in message
    assert CTCPlateauStop("x").code == "x"  # fairseq-train exits with status 1 and the message

    # a run resumed past the deadline (the running loss is not in the checkpoint) is judged only
    # once the watch has followed RESUMED_WATCH_UPDATES of its updates
    args, task = toy_task("--ctc-plateau-deadline", "3")
    criterion = task.build_criterion(args)
    for n in range(4800, 4800 + RESUMED_WATCH_UPDATES):
        criterion.set_num_updates(n)
        criterion(model, sample)
    with pytest.raises(CTCPlateauStop, match=f"on the all-blank plateau at update {4800 + RESUMED_WATCH_UPDATES} "):
        criterion.set_num_updates(4800 + RESUMED_WATCH_UPDATES)

    args, task = toy_task("--ctc-plateau-deadline", "0")  # never
    criterion = task.build_criterion(args)
    for n in range(5):
        criterion.set_num_updates(n)
        criterion(model, sample)
    args, task = toy_task("--ctc-plateau-deadline", "-1")
    with pytest.raises(ValueError, match="--ctc-plateau-deadline must be an update"):
        task.build_criterion(args)


def _train(root, save, updates, deadline):
    flags = [f if f != "1e-3" else "3e-3" for f in TRAIN_FLAGS]  # the toy's readable run leaves sooner
    return run_cli(
        [BIN / "fairseq-train", root, *flags, *ASR_ALONE, "--max-update", updates, "--save-dir", save]
        + ["--ctc-plateau-deadline", deadline, "--no-save", "--disable-validation", "--dropout", "0"]
    )


def test_fairseq_train_stops_a_run_that_cannot_read_and_not_one_that_can(tmp_path):
    """The constructed stuck case: the toy corpus with its source speech replaced by noise (nothing
    to read). The same corpus with its tones leaves the plateau before the deadline and trains on."""
    readable = write_toy_corpus(tmp_path / "tones", num_train=32)
    with open(readable / "config.yaml", "a", encoding="utf-8") as f:
        f.write("transforms:\n  '*': [utterance_cmvn]\n")
    r = _train(readable, tmp_path / "tones_ckpt", "70", "70")
    log = r.stderr + r.stdout
    assert r.returncode == 0, log[-3000:]
    left = re.search(r"the ASR CTC head left the all-blank plateau by update (\d+)", log)
    assert left and int(left.group(1)) <= 70, log[-3000:]

    unreadable = write_toy_corpus(tmp_path / "noise", num_train=32)
    with open(unreadable / "config.yaml", "a", encoding="utf-8") as f:
        f.write("transforms:\n  '*': [utterance_cmvn]\n")
    rng = np.random.default_rng(0)
    for wav in (unreadable / "audio").glob("*.wav"):
        samples, rate = sf.read(wav)
        sf.write(wav, 0.1 * rng.standard_normal(len(samples)), rate, subtype="PCM_16")
    r = _train(unreadable, tmp_path / "noise_ckpt", "70", "30")
    assert r.returncode == 1, (r.stderr + r.stdout)[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("stopping: the ASR CTC head is still on the all-blank plateau at update 30 "), last
    bits = re.search(r"running ASR CTC loss ([0-9.]+) bits per source subword, unigram entropy ([0-9.]+) bits", last)
    assert bits and float(bits.group(1)) > float(bits.group(2)) - 1.0
    assert "Try: a gentler start (a longer --warmup-updates, or a lower --lr); another --seed; " in last
    assert "num_updates=31" not in r.stderr + r.stdout
