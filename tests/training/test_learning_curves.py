"""``echostream-learning-curves`` on a real ``fairseq-train --log-format json`` run of the toy corpus."""

import json

import pytest
from cli_runs import BIN, TRAIN_FLAGS, run_cli
from toy_corpus import write_toy_corpus

from echostream_fairseq.cli import learning_curves
from echostream_fairseq.cli.learning_curves import read_log, read_run


def _train_log(root, log_format):
    """The log of 6 seeded fairseq-train updates on the toy corpus, validated every 3."""
    corpus = write_toy_corpus(root / "corpus")
    flags = list(TRAIN_FLAGS)
    flags[flags.index("--log-format") + 1] = log_format
    proc = run_cli(
        [
            BIN / "fairseq-train",
            corpus,
            *flags,
            "--max-update",
            "6",
            "--no-save",
            "--validate-interval-updates",
            "3",
            "--validate-interval",
            "1000",
            "--max-epoch",
            "1000",
            "--loss-schedule",
            "mt:2",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = root / "train.log"
    path.write_text(proc.stdout + proc.stderr)
    return path


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    return _train_log(tmp_path_factory.mktemp("curves"), "json")


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
    proc = run_cli(
        [
            BIN / "echostream-learning-curves",
            log,
            log,
            "--labels",
            "a",
            "b",
            "--at",
            "100",
            "--train-at",
            "2",
            "6",
            "--markdown",
            f"{out}.md",
            "--plot",
            f"{out}.png",
            "--json",
            f"{out}.json",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "c.md").read_text()
    assert "**MT BLEU**" in text and "| a |" in text and "| b |" in text
    train = text[text.index("**training losses") :]
    assert "ASR CTC @ 2" in train and "unit CTC @ 6" in train
    # the logged values of update 2, and the scheduled MT term (weight 0 before update 2) still logged
    assert (
        read_log(log, "x").train[2]["mt_loss"] > 0
        and f"| a | {read_log(log, 'x').train[2]['asr_ctc_loss']:.2f} |" in train
    )
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


def test_a_real_resumed_run_continues_the_first_log(tmp_path):
    # fairseq-train to update 3, then the same command to update 6: the second resumes from the
    # checkpoint, and its wall meter (which reads 0 after a resume) is replaced by its timestamps
    corpus = write_toy_corpus(tmp_path / "corpus")
    flags = list(TRAIN_FLAGS)
    flags[flags.index("--log-format") + 1] = "json"
    logs = []
    for leg, updates in enumerate((3, 6)):
        proc = run_cli(
            [
                BIN / "fairseq-train",
                corpus,
                *flags,
                "--max-update",
                updates,
                "--save-dir",
                tmp_path / "ckpt",
                "--validate-interval-updates",
                "3",
                "--validate-interval",
                "1000",
                "--max-epoch",
                "1000",
            ]
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        logs.append(tmp_path / f"leg{leg}.log")
        logs[-1].write_text(proc.stdout + proc.stderr)
    second = read_log(logs[1], "b")
    assert second.resumed_at == 3 and [u for _, u, _ in second.points] == [6]
    run = read_run(f"{logs[0]}+{logs[1]}", "both")
    assert [u for _, u, _ in run.points] == [3, 6] and run.updates == 6
    minutes = [m for m, _, _ in run.points]
    assert minutes[1] > minutes[0] == read_log(logs[0], "a").points[0][0]
    assert set(run.train) == {1, 2, 3, 4, 5, 6}


def _log(path, lines):
    # a record line when a tag is given, else a plain message line (fairseq's format for both)
    path.write_text(
        "".join(
            f"2026-12-04 {stamp} | INFO | {tag} | {json.dumps(record)}\n"
            if tag
            else f"2026-12-04 {stamp} | INFO | {record}\n"
            for stamp, tag, record in lines
        )
    )
    return path


def test_resumed_minutes_are_shifted_to_the_first_runs_clock(tmp_path):
    first = _log(
        tmp_path / "a.log",
        [
            ("01:00:10", "train_inner", {"num_updates": "2", "wall": "60", "asr_ctc_loss": "5.0"}),
            ("01:00:20", "dev", {"dev_num_updates": "2", "dev_asr_wer": "90", "dev_loss": "9"}),
            ("01:01:10", "train_inner", {"num_updates": "4", "wall": "120", "asr_ctc_loss": "4.0"}),
            ("01:01:20", "dev", {"dev_num_updates": "4", "dev_asr_wer": "80", "dev_loss": "8"}),
        ],
    )
    resumed = _log(
        tmp_path / "b.log",
        [
            ("02:00:00", None, "fairseq.trainer | Loaded checkpoint ckpt/checkpoint_last.pt (epoch 1 @ 2 updates)"),
            ("02:00:30", "train_inner", {"num_updates": "3", "wall": "0", "asr_ctc_loss": "3.5"}),
            ("02:01:30", "train_inner", {"num_updates": "4", "wall": "0", "asr_ctc_loss": "3.0"}),
            ("02:01:40", "dev", {"dev_num_updates": "4", "dev_asr_wer": "70", "dev_loss": "7"}),
        ],
    )
    run = read_run(f"{first}+{resumed}", "r")
    # the first log's point at update 2 (1 minute), then the resumed one: 1 + 1.5 minutes
    assert [(m, u, v["asr_wer"]) for m, u, v in run.points] == [(1.0, 2, 90.0), (2.5, 4, 70.0)]
    assert run.train_minutes == 2.5 and run.updates == 4
    assert {u: v["asr_ctc_loss"] for u, v in run.train.items()} == {2: 5.0, 3: 3.5, 4: 3.0}
    with pytest.raises(SystemExit, match="a.log is not a resumed run .* so it cannot continue .*b.log"):
        read_run(f"{resumed}+{first}", "x")
    late = _log(
        tmp_path / "c.log",
        [
            ("03:00:00", None, "fairseq.trainer | Loaded checkpoint x.pt (epoch 1 @ 9 updates)"),
            ("03:00:30", "train_inner", {"num_updates": "10", "wall": "0"}),
            ("03:00:40", "dev", {"dev_num_updates": "10", "dev_loss": "6"}),
        ],
    )
    with pytest.raises(
        SystemExit, match="c.log resumed from update 9, but .*a.log logs no training line at that update"
    ):
        read_run(f"{first}+{late}", "x")
    with pytest.raises(SystemExit, match="nope.log: log not found"):
        learning_curves.main([f"{first}+{tmp_path / 'nope.log'}"])


@pytest.mark.parametrize("log_format", ["simple", "tqdm"])
def test_text_formats_give_the_json_logs_points(log, tmp_path, log_format):
    """The demo logs with tqdm: the same seeded run logged as text reads as its JSON log does."""
    path = _train_log(tmp_path, log_format)
    text, reference = read_log(path, "text"), read_log(log, "json")
    assert [u for _, u, _ in text.points] == [u for _, u, _ in reference.points]
    for (_, _, got), (_, _, want) in zip(text.points, reference.points):
        assert got.keys() == want.keys()
        assert got == pytest.approx(want, abs=0.01)
    assert text.updates == 6 and sorted(text.train) == sorted(reference.train)
    assert text.train[6] == pytest.approx(reference.train[6], abs=0.01)


def test_a_run_stopped_between_log_lines_joins_at_its_last_update(tmp_path):
    # a time budget stops a run at an update no train_inner line names (the demo's 4154 with lines
    # every 100); the epoch statistics that fairseq prints then carry the clock at that update
    first = _log(
        tmp_path / "a.log",
        [
            ("01:00:10", "train_inner", {"num_updates": "100", "wall": "60"}),
            ("01:00:20", "dev", {"dev_num_updates": "154", "dev_loss": "8"}),
            ("01:00:21", "train", {"train_num_updates": "154", "train_train_wall": "50", "train_wall": "90"}),
        ],
    )
    resumed = _log(
        tmp_path / "b.log",
        [
            ("02:00:00", None, "fairseq.trainer | Loaded checkpoint ckpt/checkpoint_last.pt (epoch 2 @ 154 updates)"),
            ("02:00:30", "train_inner", {"num_updates": "200", "wall": "0"}),
            ("02:00:40", "dev", {"dev_num_updates": "200", "dev_loss": "7"}),
        ],
    )
    run = read_run(f"{first}+{resumed}", "r")
    # the dev point at 154 was logged before the epoch line, so it reads the last train_inner's 1.0
    assert [(m, u) for m, u, _ in run.points] == [(1.0, 154), (2.0, 200)]
    assert run.train_minutes == 2.0 and run.updates == 200
