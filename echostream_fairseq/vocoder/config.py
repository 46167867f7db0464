"""Unit HiFi-GAN configurations: the fairseq/StreamSpeech ``config.json`` format, checked.

A CodeHiFiGAN vocoder is a generator checkpoint (``{"generator": state_dict}``) plus a JSON
config. fairseq's ``CodeGenerator`` reads the model fields; the speech-resynthesis training
fields (``segment_size``, ``learning_rate``, ...) ride along in the same file. We read both,
fail early with the missing or inconsistent field named, and keep the two presets our trainer
uses (``tiny`` for this CPU, ``full`` = the mHuBERT layer-11 vocoder's sizes) here.
"""

from __future__ import annotations

import copy
import json
import math
import os
from typing import Any, Dict, Mapping

from echostream_fairseq.common.audio import SAMPLE_RATE

__all__ = [
    "VocoderError",
    "MODEL_FIELDS",
    "PRESETS",
    "preset_config",
    "check_vocoder_config",
    "load_vocoder_config",
    "frame_hop",
    "sample_rate",
    "generator_name",
]


class VocoderError(ValueError):
    """A vocoder, its config, its checkpoint or its input that cannot be used; the message says why."""


# field -> expected Python type(s), as fairseq's CodeGenerator reads them
MODEL_FIELDS: Dict[str, Any] = {
    "upsample_rates": list,
    "upsample_kernel_sizes": list,
    "upsample_initial_channel": int,
    "resblock_kernel_sizes": list,
    "resblock_dilation_sizes": list,
    "num_embeddings": int,
    "embedding_dim": int,
}
EMBEDDING_INITS = ("random", "centroids")
# "hifigan": fairseq's CodeGenerator (or its causal form); "istft": vocoder/istft_generator.py
GENERATORS = ("hifigan", "istft")
ISTFT_FIELDS = ("istft_channels", "istft_layers", "istft_kernel_size", "istft_n_fft")
DUR_PREDICTOR_FIELDS = ("encoder_embed_dim", "var_pred_hidden_dim", "var_pred_kernel_size", "var_pred_dropout")

_TRAINING_DEFAULTS: Dict[str, Any] = {
    "sampling_rate": SAMPLE_RATE,
    "segment_size": 8960,  # samples per training crop (28 unit frames)
    "batch_size": 16,
    "learning_rate": 2e-4,
    "adam_b1": 0.8,
    "adam_b2": 0.99,
    "lr_decay": 0.999,  # per epoch in HiFi-GAN; we apply it every `lr_decay_every` updates
    "lr_decay_every": 1000,
    "num_mels": 80,
    "n_fft": 1024,
    "hop_size": 256,
    "win_size": 1024,
    "fmin": 0,
    "fmax": 8000,
    "mel_loss_weight": 45.0,
    "feature_matching_weight": 2.0,
    "dur_prediction_weight": 1.0,
    # updates with the mel (and duration) loss only, before the discriminators join (None: never)
    "adversarial_start_step": 0,
    # "centroids": start the unit embeddings from the standardised k-means centroids (log-mel
    # units only; embedding_dim must equal their dimension), so the generator starts from spectra
    "embedding_init": "random",
    "mpd_periods": [2, 3, 5, 7, 11],
    "mpd_channels": [32, 128, 512, 1024, 1024],
    "msd_scales": 3,
    "msd_channels": [16, 64, 256, 1024, 1024, 1024],
    "seed": 1234,
}

PRESETS: Dict[str, Dict[str, Any]] = {
    # The mHuBERT layer-11 km1000 English unit vocoder's generator (13.5M parameters with K=1000).
    "full": {
        **_TRAINING_DEFAULTS,
        "resblock": "1",
        "upsample_rates": [5, 4, 4, 2, 2],
        "upsample_kernel_sizes": [11, 8, 8, 4, 4],
        "upsample_initial_channel": 512,
        "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "num_embeddings": 1000,
        "embedding_dim": 128,
        "model_in_dim": 128,
        "code_hop_size": 320,
        "f0": False,
        "multispkr": None,
        "dur_predictor_params": {
            "encoder_embed_dim": 128,
            "var_pred_hidden_dim": 128,
            "var_pred_kernel_size": 3,
            "var_pred_dropout": 0.5,
        },
    },
}
# Small enough to learn one espeak-ng voice on 2 CPU cores: narrower generator, two resblock
# kernels, unit embeddings that start as the units' log-mel centroids (80 dimensions), and the
# mel and duration losses only: at this budget the adversarial phase made the speech less
# intelligible (docs/benchmarks.md), so the (narrow) discriminators are only used when
# --adversarial-start-step asks for them.
PRESETS["tiny"] = {
    **copy.deepcopy(PRESETS["full"]),
    "upsample_initial_channel": 128,
    "resblock_kernel_sizes": [3, 7],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
    "embedding_dim": 80,
    "model_in_dim": 80,
    "embedding_init": "centroids",
    "dur_predictor_params": {
        "encoder_embed_dim": 80,
        "var_pred_hidden_dim": 64,
        "var_pred_kernel_size": 3,
        "var_pred_dropout": 0.5,
    },
    "segment_size": 6400,
    "batch_size": 8,
    "learning_rate": 3e-4,
    "mpd_channels": [8, 32, 64, 128, 128],
    "msd_channels": [8, 16, 64, 128, 128, 128],
    "adversarial_start_step": None,
}


# the iSTFT generator's sizes per preset (its other fields are the preset's): the full size has
# Vocos's width and depth
ISTFT_SIZES: Dict[str, Dict[str, int]] = {
    "tiny": {"istft_channels": 256, "istft_layers": 4, "istft_kernel_size": 7, "istft_n_fft": 1280},
    "full": {"istft_channels": 512, "istft_layers": 8, "istft_kernel_size": 7, "istft_n_fft": 1280},
}
HIFIGAN_ONLY = (
    "resblock",
    "upsample_rates",
    "upsample_kernel_sizes",
    "upsample_initial_channel",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
)


def preset_config(name: str, num_embeddings: int, generator: str = "hifigan") -> Dict[str, Any]:
    """A copy of preset ``name`` with its unit embedding table sized for ``num_embeddings`` units;
    with ``generator`` ``"istft"``, the same embeddings, duration predictor and training fields
    around an iSTFT generator of the preset's size (:data:`ISTFT_SIZES`)."""
    if name not in PRESETS:
        raise VocoderError(f"unknown vocoder preset {name!r}; choose from {sorted(PRESETS)}")
    if generator not in GENERATORS:
        raise VocoderError(f"unknown generator {generator!r}; choose from {', '.join(GENERATORS)}")
    config = copy.deepcopy(PRESETS[name])
    config["num_embeddings"] = int(num_embeddings)
    if generator == "istft":
        config["code_hop_size"] = frame_hop(config)
        for key in HIFIGAN_ONLY:
            del config[key]
        config.update(generator="istft", **ISTFT_SIZES[name])
    return config


def generator_name(config: Mapping[str, Any]) -> str:
    """The generator ``config`` asks for (one of :data:`GENERATORS` once checked; ``hifigan`` when unsaid)."""
    return config.get("generator", "hifigan")


def frame_hop(config: Mapping[str, Any]) -> int:
    """Samples per unit frame: the product of the upsampling rates (320 for 16 kHz, 50 Hz units);
    an iSTFT generator's ``code_hop_size``."""
    if generator_name(config) == "istft":
        return int(config["code_hop_size"])
    return int(math.prod(config["upsample_rates"]))


def sample_rate(config: Mapping[str, Any]) -> int:
    return int(config.get("sampling_rate", SAMPLE_RATE))


def check_vocoder_config(config: Mapping[str, Any], where: str = "vocoder config") -> Dict[str, Any]:
    """Check a parsed ``config.json``; returns it as a dict. Raises :class:`VocoderError` naming the field."""
    if not isinstance(config, Mapping):
        raise VocoderError(f"{where}: expected a JSON object, got {type(config).__name__}")
    generator = generator_name(config)
    if generator not in GENERATORS:
        raise VocoderError(f"{where}: generator {generator!r} is not one of {', '.join(GENERATORS)}")
    if generator == "istft":
        return _check_istft_config(config, where)
    missing = [k for k in MODEL_FIELDS if k not in config]
    if missing:
        raise VocoderError(
            f"{where}: missing field(s) {', '.join(missing)} (a CodeHiFiGAN config needs {', '.join(MODEL_FIELDS)})"
        )
    for key, kind in MODEL_FIELDS.items():
        if not isinstance(config[key], kind) or isinstance(config[key], bool):
            raise VocoderError(f"{where}: field {key} must be a {kind.__name__}, got {config[key]!r}")
    if len(config["upsample_rates"]) != len(config["upsample_kernel_sizes"]) or not config["upsample_rates"]:
        raise VocoderError(
            f"{where}: upsample_rates {config['upsample_rates']} and upsample_kernel_sizes "
            f"{config['upsample_kernel_sizes']} must be non-empty and of equal length"
        )
    if len(config["resblock_kernel_sizes"]) != len(config["resblock_dilation_sizes"]):
        raise VocoderError(f"{where}: resblock_kernel_sizes and resblock_dilation_sizes must have equal length")
    if config["upsample_initial_channel"] % (2 ** len(config["upsample_rates"])):
        raise VocoderError(
            f"{where}: upsample_initial_channel {config['upsample_initial_channel']} must be divisible by "
            f"2**{len(config['upsample_rates'])} (it halves at every upsampling)"
        )
    _check_units(config, where)
    causal = config.get("causal", False)
    if not isinstance(causal, bool):
        raise VocoderError(f"{where}: causal must be true or false, got {causal!r}")
    if causal and str(config.get("resblock", "1")) != "1":
        raise VocoderError(f'{where}: a causal generator needs resblock "1", got {config["resblock"]!r}')
    lookahead = config.get("lookahead_frames", 0)
    if not isinstance(lookahead, int) or isinstance(lookahead, bool) or not 0 <= lookahead <= 6:
        raise VocoderError(
            f"{where}: lookahead_frames must be an integer 0..6 (the first convolution's reach), got {lookahead!r}"
        )
    if lookahead and not causal:
        raise VocoderError(
            f"{where}: lookahead_frames {lookahead} needs causal true (a non-causal generator looks ahead anyway)"
        )
    hop = frame_hop(config)
    if "code_hop_size" in config and int(config["code_hop_size"]) != hop:
        raise VocoderError(f"{where}: code_hop_size {config['code_hop_size']} but the upsample rates multiply to {hop}")
    return dict(config)


def _check_istft_config(config: Mapping[str, Any], where: str) -> Dict[str, Any]:
    """The checks of an iSTFT generator's config (:mod:`~echostream_fairseq.vocoder.istft_generator`)."""
    for key in ("code_hop_size", "num_embeddings", "embedding_dim", *ISTFT_FIELDS):
        if key not in config:
            raise VocoderError(
                f"{where}: missing field {key} (an iSTFT generator's config needs code_hop_size, "
                f"num_embeddings, embedding_dim and {', '.join(ISTFT_FIELDS)})"
            )
        if not isinstance(config[key], int) or isinstance(config[key], bool) or config[key] < 1:
            raise VocoderError(f"{where}: field {key} must be a positive integer, got {config[key]!r}")
    if config.get("causal") or config.get("lookahead_frames"):
        raise VocoderError(
            f"{where}: the iSTFT generator has no causal form (causal and lookahead_frames need generator hifigan)"
        )
    hop, n_fft = config["code_hop_size"], config["istft_n_fft"]
    if n_fft % hop or n_fft < 2 * hop or n_fft % 2 or (n_fft - hop) % 2:
        raise VocoderError(
            f"{where}: istft_n_fft {n_fft} must be an even multiple of code_hop_size {hop}, at least "
            "twice it, with an even difference (each frame's window is centred on its own samples)"
        )
    if config["istft_kernel_size"] % 2 == 0:
        raise VocoderError(
            f"{where}: istft_kernel_size {config['istft_kernel_size']} must be odd (centred convolutions)"
        )
    _check_units(config, where)
    return dict(config)


def _check_units(config: Mapping[str, Any], where: str) -> None:
    """The checks both generators share: the unit table, the conditioning, the duration predictor."""
    if config["num_embeddings"] < 1:
        raise VocoderError(f"{where}: num_embeddings must be positive, got {config['num_embeddings']}")
    # Only unit conditioning is supported: f0 and speaker inputs are not produced by the S2ST model.
    for key in ("f0", "multispkr", "embedder_params"):
        if config.get(key):
            raise VocoderError(
                f"{where}: {key}={config[key]!r} needs inputs EchoStream does not produce; "
                "use a unit-only vocoder (f0 false, no speaker conditioning)"
            )
    init = config.get("embedding_init", "random")
    if init not in EMBEDDING_INITS:
        raise VocoderError(f"{where}: embedding_init {init!r} is not one of {', '.join(EMBEDDING_INITS)}")
    model_in_dim = config.get("model_in_dim", 80)  # fairseq's default when the field is absent
    if model_in_dim != config["embedding_dim"]:
        raise VocoderError(
            f"{where}: model_in_dim {model_in_dim} must equal embedding_dim {config['embedding_dim']} "
            "for a unit-only vocoder"
        )
    dur = config.get("dur_predictor_params")
    if dur:
        missing = [k for k in DUR_PREDICTOR_FIELDS if k not in dur]
        if missing:
            raise VocoderError(f"{where}: dur_predictor_params lacks {', '.join(missing)}")
        if dur["encoder_embed_dim"] != config["embedding_dim"]:
            raise VocoderError(
                f"{where}: dur_predictor_params.encoder_embed_dim {dur['encoder_embed_dim']} "
                f"must equal embedding_dim {config['embedding_dim']}"
            )


def load_vocoder_config(path: str) -> Dict[str, Any]:
    """Read and check a vocoder ``config.json``."""
    if not os.path.isfile(path):
        raise VocoderError(f"{path}: vocoder config not found")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except json.JSONDecodeError as e:
        raise VocoderError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    return check_vocoder_config(config, where=path)
