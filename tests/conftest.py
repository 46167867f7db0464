import logging
import os
import sys

import pytest
import torch

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
# the package, and the helpers beside this file (cli_runs, translators, vocoders, ...) for the tests
# grouped by layer in the folders below
for path in (ROOT, TESTS):
    if path not in sys.path:
        sys.path.insert(0, path)

logging.getLogger("fairseq").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A fresh mini corpus from ``echostream-prep synthetic`` (24/4/4 utterances, K=50 log-mel units)."""
    import subprocess
    from pathlib import Path

    out = tmp_path_factory.mktemp("prep") / "corpus"
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "echostream-prep"),
            "synthetic",
            "--out",
            str(out),
            "--num-train",
            "24",
            "--num-dev",
            "4",
            "--num-test",
            "4",
            "--num-units",
            "50",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def trained(corpus, tmp_path_factory):
    """A tiny echostream_emformer_tiny checkpoint: 6 fairseq-train updates on ``corpus``.

    Returns ``(save_dir, log)``; the checkpoint is ``save_dir / "checkpoint_last.pt"``.
    """
    from cli_runs import BIN, TRAIN_FLAGS, run_cli

    save = tmp_path_factory.mktemp("ckpt")
    r = run_cli([BIN / "fairseq-train", corpus, *TRAIN_FLAGS, "--max-update", "6", "--save-dir", save])
    assert r.returncode == 0, r.stderr[-3000:]
    return save, r.stderr + r.stdout


@pytest.fixture(scope="session")
def trained_zipformer(corpus, tmp_path_factory):
    """Like ``trained``, with ``--arch echostream_zipformer_tiny``."""
    from cli_runs import BIN, TRAIN_FLAGS, run_cli

    save = tmp_path_factory.mktemp("ckpt_zipformer")
    flags = [f if f != "echostream_emformer_tiny" else "echostream_zipformer_tiny" for f in TRAIN_FLAGS]
    r = run_cli([BIN / "fairseq-train", corpus, *flags, "--max-update", "6", "--save-dir", save])
    assert r.returncode == 0, r.stderr[-3000:]
    return save, r.stderr + r.stdout


def _blank_lowered(trained, tmp_path_factory, heads, name):
    import torch

    from echostream_fairseq.tasks.checkpoint_configs import allow_fairseq_checkpoint_configs

    allow_fairseq_checkpoint_configs()
    save, _ = trained
    state = torch.load(save / "checkpoint_last.pt", weights_only=True)
    for head in heads:
        state["model"][head][0] -= 30.0  # index 0 is blank
    out = tmp_path_factory.mktemp(name)
    torch.save(state, out / "checkpoint_last.pt")
    return out, None


@pytest.fixture(scope="session")
def speaking(trained, tmp_path_factory):
    """The tiny trained checkpoint with the CTC blank of the unit and ASR heads pushed down: after
    6 updates those heads emit only blanks, and a test of speech output needs some speech."""
    return _blank_lowered(trained, tmp_path_factory, ("unit_decoder.proj.bias", "asr_ctc.proj.bias"), "speaking")


WRITING_HEADS = ("unit_decoder.proj.bias", "asr_ctc.proj.bias", "st_ctc.head.proj.bias")


@pytest.fixture(scope="session")
def writing(trained, tmp_path_factory):
    """Like ``speaking``, with the ST CTC blank pushed down too, so the policy writes along the
    stream and every stage works on most chunks."""
    return _blank_lowered(trained, tmp_path_factory, WRITING_HEADS, "writing")


@pytest.fixture(scope="session")
def writing_zipformer(trained_zipformer, tmp_path_factory):
    """``writing`` for the Zipformer checkpoint of ``trained_zipformer``."""
    return _blank_lowered(trained_zipformer, tmp_path_factory, WRITING_HEADS, "writing_zipformer")


@pytest.fixture(scope="module")
def loaded(trained, corpus):
    """``(model, task)`` of the ``trained`` checkpoint, loaded once per test module (a module may
    swap a head for a scripted one and put it back)."""
    from echostream_fairseq.checkpoint import load_echostream_model

    save, _ = trained
    return load_echostream_model(str(save / "checkpoint_last.pt"), str(corpus))


@pytest.fixture(scope="session")
def streamspeech_data(corpus, tmp_path_factory):
    """``corpus`` in StreamSpeech's prepared layout (tests/streamspeech_layout.py): its
    ``fbank2unit`` folder, with StreamSpeech's two YAML files."""
    from streamspeech_layout import write_streamspeech_corpus

    return write_streamspeech_corpus(corpus, tmp_path_factory.mktemp("streamspeech"))


@pytest.fixture(scope="session")
def streamspeech_trained(streamspeech_data, tmp_path_factory):
    """A tiny echostream_emformer_tiny checkpoint: 2 updates on ``streamspeech_data`` with
    StreamSpeech's YAMLs and unit count."""
    from cli_runs import BIN, TRAIN_FLAGS, run_cli

    save = tmp_path_factory.mktemp("ckpt_streamspeech")
    flags = ["--config-yaml", "config_gcmvn.yaml", "--multitask-config-yaml", "config_mtl_asr_st_ctcst.yaml"]
    flags += ["--target-code-size", "50", "--max-update", "2", "--save-dir", save]
    r = run_cli([BIN / "fairseq-train", streamspeech_data, *TRAIN_FLAGS, *flags])
    assert r.returncode == 0, r.stderr[-3000:]
    return save
