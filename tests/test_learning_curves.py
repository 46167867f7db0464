"""``echostream-learning-curves`` on a real ``fairseq-train --log-format json`` run of the toy corpus."""

import json

import pytest

from cli_runs import BIN, TRAIN_FLAGS, run_cli
from echostream_fairseq.cli import learning_curves
from echostream_fairseq.cli.learning_curves import read_log
from toy_corpus import write_toy_corpus


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    root = tmp_path_factory.mktemp("curves")
    corpus = write_toy_corpus(root / "corpus")
    flags = list(TRAIN_FLAGS)
    flags[flags.index("--log-format") + 1] = "json"
    proc = run_cli([BIN / "fairseq-train", corpus, *flags, "--max-update", "6", "--no-save",
                    "--validate-interval-updates", "3", "--validate-interval", "1000", "--max-epoch", "1000",
                    "--loss-schedule", "mt:2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = root / "train.log"
    path.write_text(proc.stdout + proc.stderr)
    return path


def test_points_hold_every_dev_metric(log):
    curve = read_log(log, "toy")
    assert [u for _, u, _ in curve.points][:2] == [3, 6]
    for _, _, values in curve.points:
        assert set(values) == {"asr_wer", "st_wer", "mt_bleu", "unit_er", "loss"}
        assert 0 <= values["mt_bleu"] <= 100 and values["unit_er"] >= 0
    minutes = [m for m, _, _ in curve.points]
    assert minutes == sorted(minutes) and curve.updates == 6


def test_cli_writes_tables_plot_and_json(log, tmp_path):
    out = tmp_path / "c"
    proc = run_cli([BIN / "echostream-learning-curves", log, log, "--labels", "a", "b", "--at", "100", "--train-at", "2", "6",
                    "--markdown", f"{out}.md", "--plot", f"{out}.png", "--json", f"{out}.json"])
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "c.md").read_text()
    assert "**MT BLEU**" in text and "| a |" in text and "| b |" in text
    train = text[text.index("**training losses"):]
    assert "ASR CTC @ 2" in train and "unit CTC @ 6" in train
    # the logged values of update 2, and the scheduled MT term (weight 0 before update 2) still logged
    assert read_log(log, "x").train[2]["mt_loss"] > 0 and f"| a | {read_log(log, 'x').train[2]['asr_ctc_loss']:.2f} |" in train
    assert (tmp_path / "c.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["a"]["updates"] == 6 and len(data["a"]["points"]) >= 2


def test_bad_input_is_named(tmp_path, log):
    # in-process: the messages are main()'s own (the exit status of the command is tested above)
    empty = tmp_path / "empty.log"
    empty.write_text("nothing here\n")
    with pytest.raises(SystemExit, match=f"{empty}: no validation lines"):
        learning_curves.main([str(empty)])
    with pytest.raises(SystemExit, match="1 logs but 2 labels"):
        learning_curves.main([str(log), "--labels", "a", "b"])
    with pytest.raises(SystemExit, match="missing.log: log not found"):
        learning_curves.main([str(tmp_path / "missing.log")])
