"""Loading an EchoStream checkpoint for inference (``torch.load(weights_only=True)``, with fairseq's
configuration classes allow-listed by :mod:`~echostream_fairseq.tasks.checkpoint_configs`), and
building a model with random weights for benchmarks."""

from __future__ import annotations

import argparse

import torch

from echostream_fairseq.common.streamspeech_names import MT_DECODER_PREFIX as STREAMSPEECH_MT_PREFIX
from echostream_fairseq.tasks.checkpoint_configs import allow_fairseq_checkpoint_configs

__all__ = ["CheckpointError", "load_echostream_model", "build_random_echostream_model"]


class CheckpointError(ValueError):
    """A checkpoint that cannot serve here; the message names the file and the reason."""


def load_echostream_model(
    model_path: str,
    data_bin: str,
    config_yaml: str = "config.yaml",
    multitask_config_yaml: str = "config_multitask.yaml",
):
    """Load an ``echostream`` checkpoint for inference with its task (dictionaries, data config).

    ``data_bin`` replaces the training data folder stored in the checkpoint (the corpus folder
    with the YAMLs and dictionaries). Returns ``(model, task)`` with the model in eval mode.

    Raises:
        CheckpointError: missing file, unreadable checkpoint, or a model that is not ``echostream``.
    """
    import os

    from fairseq import checkpoint_utils, tasks
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY

    import echostream_fairseq  # noqa: F401  (registers the model, task and criterion)

    allow_fairseq_checkpoint_configs()
    if not os.path.isfile(model_path):
        raise CheckpointError(f"{model_path}: model checkpoint not found")
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(model_path)
    except Exception as e:  # torch/pickle errors vary; the file is the problem either way
        raise CheckpointError(f"{model_path}: cannot read the checkpoint ({type(e).__name__}: {e})") from None
    cfg = state.get("cfg")
    model_cfg = cfg["model"] if cfg is not None and cfg.get("model") is not None else state.get("args")
    arch = getattr(model_cfg, "arch", None) or (model_cfg.get("arch") if hasattr(model_cfg, "get") else None)
    model_name = getattr(model_cfg, "_name", None) or arch
    if any(key.startswith(STREAMSPEECH_MT_PREFIX) for key in state.get("model", {})):
        raise CheckpointError(
            f"{model_path}: a StreamSpeech checkpoint; its decoders are ours by design but named and laid out "
            "otherwise: import it first with echostream-import-streamspeech (docs/from_streamspeech.md)"
        )
    if arch is None or ARCH_MODEL_NAME_REGISTRY.get(str(arch)) != "echostream":
        raise CheckpointError(
            f"{model_path}: the checkpoint holds a {model_name!r} model; the EchoStream agents need an "
            "'echostream' model (arch echostream_emformer, echostream_conformer or their _tiny variants)"
        )
    _keep_trained_subsampler_delay(model_cfg)
    task_cfg = cfg["task"]
    task_cfg.data = data_bin
    task_cfg.config_yaml = config_yaml
    task_cfg.multitask_config_yaml = multitask_config_yaml
    task = tasks.setup_task(task_cfg)
    model = task.build_model(model_cfg)
    model.load_state_dict(state["model"], strict=True, model_cfg=model_cfg)
    return model.eval(), task


def _keep_trained_subsampler_delay(model_cfg) -> None:
    """A Zipformer checkpoint saved before ``--subsampler-delay-frames`` existed was trained without
    delay; the Zipformer presets, which fairseq applies again at load, would give it 1 frame."""
    from omegaconf import open_dict

    get = model_cfg.get if hasattr(model_cfg, "get") else lambda k, d=None: getattr(model_cfg, k, d)
    if get("encoder_type") == "zipformer" and get("subsampler_delay_frames") is None:
        if isinstance(model_cfg, argparse.Namespace):
            model_cfg.subsampler_delay_frames = 0
        else:
            with open_dict(model_cfg):
                model_cfg.subsampler_delay_frames = 0


def build_random_echostream_model(arch: str, data_bin: str, extra_args=(), seed: int = 0):
    """An ``echostream`` model of architecture preset ``arch`` with random weights (seeded), and
    its task on ``data_bin``: what a speed benchmark needs, without training. ``extra_args`` are
    more fairseq-train flags (e.g. ``["--encoder-layers", "6"]``). Returns ``(model, task)``."""
    import os

    from fairseq import options, tasks

    import echostream_fairseq  # noqa: F401  (registers the model, task and criterion)

    parser = options.get_training_parser()
    user_dir = os.path.dirname(os.path.abspath(__file__))
    args = options.parse_args_and_arch(
        parser,
        [
            str(data_bin),
            "--user-dir",
            user_dir,
            "--task",
            "echostream_speech_to_speech",
            "--arch",
            arch,
            "--criterion",
            "echostream_multitask",
            "--cpu",
            *map(str, extra_args),
        ],
    )
    task = tasks.setup_task(args)
    torch.manual_seed(seed)
    return task.build_model(args).eval(), task
