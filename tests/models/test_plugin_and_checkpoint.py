"""The package is a fairseq plugin, and fairseq checkpoints load with weights_only=True."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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


# run after MAKE_CHECKPOINT in the same process (fairseq imported, the plugin not yet), in this
# order: each step's outcome is what the steps before it left behind
LOAD_STEPS = textwrap.dedent(
    """
    import sys, torch
    path = sys.argv[1]

    def attempt():
        try:
            state = torch.load(path, weights_only=True)
        except Exception as e:
            return "refused" if "Weights only load failed" in str(e) else repr(e)
        return f"{state['model']['w'].tolist()} {state['cfg'].optimization.lr}"

    print("plain:", attempt())  # without the plugin, torch's safe loader refuses fairseq's configs
    import echostream_fairseq
    print("imported:", attempt())  # importing the plugin changes nothing in torch
    from echostream_fairseq.tasks.checkpoint_configs import allow_fairseq_checkpoint_configs
    allow_fairseq_checkpoint_configs()
    print("allowed:", attempt())  # its explicit allow-list lets the same safe loader read them
    from fairseq import checkpoint_utils
    print("fairseq:", checkpoint_utils.load_checkpoint_to_cpu(path)["legacy_args"].arch)
    """
)


def test_checkpoint_loads_weights_only_through_fairseq(tmp_path):
    ckpt = str(tmp_path / "checkpoint.pt")
    steps = _run(MAKE_CHECKPOINT + LOAD_STEPS, ckpt)
    assert steps.returncode == 0, steps.stderr[-2000:]
    lines = steps.stdout.strip().splitlines()
    assert lines[0] == "plain: refused" and lines[1] == "imported: refused"
    assert lines[2] == "allowed: [0.0, 1.0, 2.0, 3.0] [0.001]"
    assert lines[3].startswith("fairseq:") and lines[3].endswith("transformer")


def test_user_dir_import():
    code = (
        "import argparse, sys\nfrom fairseq import utils\n"
        "utils.import_user_module(argparse.Namespace(user_dir=sys.argv[1]))\n"
        "import echostream_fairseq\nprint(echostream_fairseq.__version__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, os.path.join(ROOT, "echostream_fairseq")], capture_output=True, text=True, cwd="/"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("0.1.0")
