"""The CPU recipe (examples/synthetic_tiny/recipe.sh) is valid for echostream-prep and fairseq-train."""

import re
import subprocess

from cli_runs import BIN, REPO, run_cli
from toy_corpus import write_toy_corpus

from echostream_fairseq.cli.prep import build_parser


def _recipe(name):
    out = subprocess.run(
        ["bash", "-c", f'source examples/synthetic_tiny/recipe.sh; printf "%s\\n" "${{{name}[@]}}"'],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def test_recipe_updates_is_a_number_and_the_arch_is_registered():
    from fairseq.models import ARCH_MODEL_REGISTRY

    import echostream_fairseq  # noqa: F401  (registers the architectures)

    (updates,) = _recipe("RECIPE_UPDATES")
    assert int(updates) > 0
    (minutes,) = _recipe("RECIPE_MINUTES")
    assert 0 < int(minutes) <= 40  # the learning issue's budget
    (arch,) = _recipe("RECIPE_ARCH")
    assert arch == "echostream_emformer_conv_tiny" and arch in ARCH_MODEL_REGISTRY


def test_prep_flags_parse():
    args = build_parser().parse_args(["synthetic", "--out", "x", *_recipe("RECIPE_PREP")])
    assert args.precompute_fbank and not args.specaugment and args.num_train == 20000
    assert args.extra_voices == 24 and args.extra_voice_qualities


def test_fairseq_trains_with_the_recipe_flags(tmp_path):
    corpus = write_toy_corpus(tmp_path / "corpus")
    flags = _recipe("RECIPE_TRAIN")
    assert "--loss-schedule" in flags and "--ctc-upsample-rate" in flags
    proc = run_cli(
        [
            BIN / "fairseq-train",
            corpus,
            "--user-dir",
            REPO / "echostream_fairseq",
            "--arch",
            *_recipe("RECIPE_ARCH"),
            *flags,
            "--max-update",
            "3",
            "--save-dir",
            tmp_path / "save",
            "--log-format",
            "simple",
            "--log-interval",
            "1",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "save" / "checkpoint_last.pt").is_file()
    log = proc.stdout + proc.stderr
    assert (
        "loss_schedule=['mt:200:200', 'unit_ctc:400:200']" in log
        or "'loss_schedule': ['mt:200:200', 'unit_ctc:400:200']" in log
    )
    # the rate anneals to zero at the budget's end (here the 3 updates)
    assert "'_name': 'inverse_sqrt_anneal'" in log and "'anneal_fraction': 0.3" in log
    rates = [float(r) for r in re.findall(r"train_inner \| .*? lr=([0-9.e-]+)", log)]
    assert len(rates) == 3 and rates[-1] == 0.0


def test_longform_finetune_flags_parse():
    from fairseq import options

    import echostream_fairseq  # noqa: F401  (registers the task and criterion)

    flags = _recipe("RECIPE_LONGFORM")
    assert "--asr-sentence-ends" in flags and int(_recipe("RECIPE_LONGFORM_UPDATES")[0]) > 0
    args = options.parse_args_and_arch(
        options.get_training_parser(), ["data", "--arch", "echostream_emformer_tiny", *flags, "--restore-file", "x.pt"]
    )
    assert args.asr_sentence_ends and args.train_subset == "train_concat_mix" and args.reset_optimizer
    assert build_parser().parse_args(["concat", "--corpus", "x", *_recipe("RECIPE_LONGFORM_CONCAT")]).count == 4000


def _demo_training_flags(tmp_path, *args):
    """The fairseq-train flags examples/demo.sh passes, with stand-ins for prep and training."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "echostream-prep").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "fairseq-train").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/train_args\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {
        "PATH": "/usr/bin:/bin",
        "BIN": str(bin_dir),
        "DATA": str(tmp_path / "corpus"),
        "WORK": str(tmp_path / "work"),
    }
    proc = subprocess.run(["bash", "examples/demo.sh", *args], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "training failed" in proc.stdout, proc.stdout + proc.stderr
    return (tmp_path / "train_args").read_text().split()


def _flag(flags, name):
    return flags[flags.index(name) + 1]


def test_demo_trains_for_the_recipes_minutes_or_for_given_updates(tmp_path):
    (minutes,) = _recipe("RECIPE_MINUTES")
    (longform_minutes,) = _recipe("RECIPE_LONGFORM_MINUTES")
    (updates,) = _recipe("RECIPE_UPDATES")
    assert 0 < int(longform_minutes) < int(minutes)
    flags = _demo_training_flags(tmp_path)  # the first step, single sentences
    hours = (int(minutes) - int(longform_minutes)) / 60  # of the whole budget in hours, to 4 decimals
    assert abs(float(_flag(flags, "--stop-time-hours")) - hours) <= 1e-4
    assert _flag(flags, "--max-update") == updates and _flag(flags, "--train-subset") == "train"
    flags = _demo_training_flags(tmp_path, "777")
    assert float(_flag(flags, "--stop-time-hours")) == 0 and _flag(flags, "--max-update") == "777"


def test_demo_fine_tunes_for_long_streams_within_the_budget(tmp_path):
    """The second step starts from the first's model, on the concatenations, and stops when the two
    together reach the recipe's minutes (fairseq counts the restored run's time)."""
    (minutes,) = _recipe("RECIPE_MINUTES")
    calls = tmp_path / "train_calls"
    save_dir = 'for a; do [ "$prev" = --save-dir ] && mkdir -p "$a" && touch "$a/checkpoint_last.pt"; prev=$a; done'
    scripts = {"fairseq-train": f'echo "$@" >> {calls}; {save_dir}', "fairseq-generate": "exit 1"}
    proc = _run_demo_with_stand_ins(tmp_path, scripts)
    assert "fairseq-generate failed" in proc.stdout, proc.stdout + proc.stderr
    first, second = (line.split() for line in calls.read_text().splitlines())
    work = tmp_path / "work"
    (arch,) = _recipe("RECIPE_ARCH")
    assert _flag(first, "--save-dir") == f"{work}/{arch}_sentences"
    assert _flag(second, "--restore-file") == f"{work}/{arch}_sentences/checkpoint_last.pt"
    assert _flag(second, "--save-dir") == f"{work}/{arch}"
    assert _flag(second, "--train-subset") == "train_concat_mix" and "--asr-sentence-ends" in second
    assert _flag(second, "--max-update") == _recipe("RECIPE_LONGFORM_UPDATES")[0]
    assert float(_flag(second, "--stop-time-hours")) == round(int(minutes) / 60, 4)
    # both steps done: a second run trains nothing
    _run_demo_with_stand_ins(tmp_path, scripts)
    assert len(calls.read_text().splitlines()) == 2


def _run_demo_with_stand_ins(tmp_path, scripts, **env_extra):
    """examples/demo.sh with stand-ins for the corpus, training and decoding, and ``scripts`` (name ->
    bash body) for the later tools; returns the finished process."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    scripts = {
        "echostream-prep": "exit 0",
        "fairseq-train": (
            'for a; do [ "$prev" = --save-dir ] && mkdir -p "$a" && touch "$a/checkpoint_last.pt"; prev=$a; done'
        ),
        "fairseq-generate": "exit 0",
        "echostream-score": (
            'for a; do [ "$prev" = --json ] && mkdir -p "$(dirname "$a")" && echo "{}" > "$a"; prev=$a; done'
        ),
        **scripts,
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    for table in ("text/train.tsv", "text/test.tsv", "units/test.tsv"):  # what the later steps cut columns from
        (tmp_path / "corpus" / table).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "corpus" / table).write_text("id\tcolumn\tcolumn\nx\t1 2\tsome words\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "BIN": str(bin_dir),
        "DATA": str(tmp_path / "corpus"),
        "WORK": str(tmp_path / "work"),
        **env_extra,
    }
    return subprocess.run(["bash", "examples/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True)


def _demo_vocoder_flags(tmp_path, **env_extra):
    """The echostream-train-vocoder flags examples/demo.sh passes; returns (exit code, output, flags)."""
    proc = _run_demo_with_stand_ins(
        tmp_path, {"echostream-train-vocoder": f'echo "$@" > {tmp_path}/vocoder_args; exit 1'}, **env_extra
    )
    args = tmp_path / "vocoder_args"
    return proc.returncode, proc.stdout + proc.stderr, args.read_text().split() if args.is_file() else []


def test_demo_trains_the_istft_vocoder_unless_told_otherwise(tmp_path):
    code, out, flags = _demo_vocoder_flags(tmp_path / "a")
    assert code == 1 and "vocoder training failed" in out, out
    assert _flag(flags, "--generator") == "istft" and _flag(flags, "--max-updates") == "6000"
    assert _flag(flags, "--save-dir").endswith("work/vocoder_istft_tiny")
    code, out, flags = _demo_vocoder_flags(tmp_path / "b", VOCODER="hifigan")
    assert _flag(flags, "--generator") == "hifigan" and _flag(flags, "--max-updates") == "2000"
    assert _flag(flags, "--save-dir").endswith("work/vocoder_tiny")
    code, out, flags = _demo_vocoder_flags(tmp_path / "c", VOCODER="wavenet")
    assert code == 2 and "VOCODER must be istft, hifigan or griffin_lim, got wavenet" in out and not flags


def test_demo_reuses_its_runs_only_with_the_same_vocoder_weights_and_model(tmp_path):
    """The units ceiling and the eight simultaneous runs are redone when the vocoder's weights change,
    the runs alone when the model does, and both are reused when neither does."""
    vocoder = tmp_path / "vocoder"
    vocoder.mkdir()
    (vocoder / "config.json").write_text('{"generator": "istft"}')
    (vocoder / "generator.pt").write_bytes(b"first weights")
    log = tmp_path / "calls"
    json_out = 'for a; do [ "$prev" = --json ] && echo \'{"bleu": 1}\' > "$a"; prev=$a; done'
    scripts = {
        "echostream-vocode": f"echo vocode >> {log}",
        "echostream-asr-bleu": json_out,
        "simuleval": (
            f'for a; do [ "$prev" = --output ] && mkdir -p "$a" && touch "$a/scores.tsv"; prev=$a; done; '
            f"echo simul >> {log}"
        ),
        "echostream-longform": "exit 1",  # the stream needs a real model: stop there
    }

    def calls():
        proc = _run_demo_with_stand_ins(tmp_path, scripts, VOCODER_DIR=str(vocoder))
        assert "unit vocoder from" in proc.stdout, proc.stdout + proc.stderr
        made = log.read_text().split() if log.is_file() else []
        log.unlink(missing_ok=True)
        return made.count("vocode"), made.count("simul")

    assert calls() == (1, 8)
    assert calls() == (0, 0)
    (vocoder / "generator.pt").write_bytes(b"other weights")
    assert calls() == (1, 8)
    (tmp_path / "work" / "echostream_emformer_conv_tiny" / "checkpoint_last.pt").write_bytes(b"retrained")
    assert calls() == (0, 8)
    assert calls() == (0, 0)
