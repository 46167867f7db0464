"""The package is a fairseq plugin, and fairseq checkpoints load with weights_only=True."""

import os
import subprocess
import sys
import textwrap


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a fairseq-style checkpoint: training config as omegaconf (and legacy Namespace args), plus weights
MAKE_CHECKPOINT = textwrap.dedent(
    """
    import argparse, sys, torch
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, ["data", "--arch", "transformer", "--task", "translation",
                                                "--optimizer", "adam", "--lr", "1e-3"])
    state = {"args": None, "cfg": convert_namespace_to_omegaconf(args), "legacy_args": args,
             "model": {"w": torch.arange(4.0)},
             "optimizer_history": [{"criterion_name": "CrossEntropyCriterion", "optimizer_name": "FairseqAdam",
                                    "lr_scheduler_state": {"best": None}, "num_updates": 3}],
             "extra_state": {"epoch": 1}}
    torch.save(state, sys.argv[1])
    """
)


def _run(code, *argv):
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT)


def test_checkpoint_loads_weights_only_through_fairseq(tmp_path):
    ckpt = str(tmp_path / "checkpoint.pt")
    made = _run(MAKE_CHECKPOINT, ckpt)
    assert made.returncode == 0, made.stderr[-2000:]
    load = "import sys, torch{}\nstate = torch.load(sys.argv[1], weights_only=True)\nprint(state['model']['w'].tolist(), state['cfg'].optimization.lr)"
    # without the plugin, torch's safe loader refuses fairseq's config objects
    plain = _run(load.format(""), ckpt)
    assert plain.returncode != 0 and "Weights only load failed" in plain.stderr
    # importing the plugin changes nothing in torch; its explicit allow-list lets the same safe
    # loader read them (nothing switched off)
    imported = _run(load.format(", echostream_fairseq"), ckpt)
    assert imported.returncode != 0 and "Weights only load failed" in imported.stderr
    allow = ", echostream_fairseq.checkpoint as c\nc.allow_fairseq_checkpoint_configs()"
    ours = _run(load.format(allow), ckpt)
    assert ours.returncode == 0, ours.stderr[-2000:]
    assert "[0.0, 1.0, 2.0, 3.0] [0.001]" in ours.stdout
    via_fairseq = _run(
        "import sys, echostream_fairseq.checkpoint as c\nc.allow_fairseq_checkpoint_configs()\n"
        "from fairseq import checkpoint_utils\n"
        "s = checkpoint_utils.load_checkpoint_to_cpu(sys.argv[1])\nprint(s['legacy_args'].arch)", ckpt
    )
    assert via_fairseq.returncode == 0, via_fairseq.stderr[-2000:]
    assert via_fairseq.stdout.strip().endswith("transformer")


def test_user_dir_import():
    code = (
        "import argparse, sys\nfrom fairseq import utils\n"
        "utils.import_user_module(argparse.Namespace(user_dir=sys.argv[1]))\n"
        "import echostream_fairseq\nprint(echostream_fairseq.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "echostream_fairseq")],
                         capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("0.1.0")
