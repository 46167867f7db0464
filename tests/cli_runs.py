"""Running the installed command-line tools from tests, as users run them."""

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]

TRAIN_FLAGS = [
    "--user-dir",
    str(REPO / "echostream_fairseq"),
    "--task",
    "echostream_speech_to_speech",
    "--arch",
    "echostream_emformer_tiny",
    "--criterion",
    "echostream_multitask",
    "--train-subset",
    "train",
    "--valid-subset",
    "dev",
    "--max-tokens",
    "3000",
    "--optimizer",
    "adam",
    "--adam-betas",
    "(0.9,0.98)",
    "--lr",
    "1e-3",
    "--lr-scheduler",
    "inverse_sqrt",
    "--warmup-updates",
    "4",
    "--clip-norm",
    "1.0",
    "--cpu",
    "--num-workers",
    "0",
    "--log-format",
    "simple",
    "--log-interval",
    "1",
    "--no-epoch-checkpoints",
    "--seed",
    "1",
]


def run_cli(cmd, timeout=600, **kw):
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=timeout, **kw)
