"""``echostream-train-vocoder``: train a unit HiFi-GAN on an ``echostream-prep`` corpus.

::

    echostream-train-vocoder --data DATA --save-dir ckpt/vocoder [--preset tiny|full | --config config.json]
        [--max-updates 3000] [--batch-size B] [--learning-rate LR] [--adversarial-start-step N]
        [--generator hifigan|istft] [--causal [--lookahead-frames N]]

The number of units comes from ``DATA/units/kmeans.pt``. Rerunning the same command resumes from
``SAVE_DIR/checkpoint_last.pt``; ``SAVE_DIR/generator.pt`` with ``SAVE_DIR/config.json`` is a
fairseq-format CodeHiFiGAN vocoder for ``echostream-vocode`` or fairseq.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from typing import List, Optional

__all__ = ["build_parser", "main"]

# command-line overrides of config fields: flag -> (config key, type)
OVERRIDES = {
    "batch_size": int,
    "segment_size": int,
    "learning_rate": float,
    "adversarial_start_step": int,
    "seed": int,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echostream-train-vocoder", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="corpus folder written by echostream-prep")
    p.add_argument("--save-dir", required=True, help="checkpoints, config.json and log.jsonl go here")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--preset",
        choices=("tiny", "full"),
        default="tiny",
        help="tiny: 0.5M-parameter generator for this CPU; full: the mHuBERT vocoder's sizes (GPU)",
    )
    source.add_argument("--config", help="a CodeHiFiGAN config.json with the training fields (instead of --preset)")
    p.add_argument("--max-updates", type=int, default=3000)
    p.add_argument("--save-interval", type=int, default=250, help="updates between checkpoints and validation")
    p.add_argument("--log-interval", type=int, default=50)
    p.add_argument("--train-subset", default="train")
    p.add_argument("--valid-subset", default="dev")
    p.add_argument("--valid-utterances", type=int, default=16, help="validation utterances (mel L1 at each save)")
    p.add_argument(
        "--train-utterances",
        type=int,
        default=None,
        help="train on the first N utterances of the train split only (all are held in memory)",
    )
    for name, kind in OVERRIDES.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=f"override the config's {name}")
    p.add_argument(
        "--generator",
        choices=("hifigan", "istft"),
        default=None,
        help="hifigan (default): fairseq's CodeGenerator; istft: ConvNeXt blocks at the frame rate and an "
        "inverse STFT, 4x cheaper on a CPU (config field generator; with --preset, the preset's size)",
    )
    p.add_argument(
        "--causal",
        action="store_true",
        help="a causal generator (left padding only): streams frame by frame with per-layer caches, "
        "no re-synthesised context (config field causal)",
    )
    p.add_argument(
        "--lookahead-frames",
        type=int,
        default=None,
        help="with --causal: frames after its own a sample may depend on (0-6, 20 ms each; streaming "
        "holds them back; config field lookahead_frames)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    import torch

    from echostream_fairseq.data.units import UnitError, load_unit_model, units_kind_of
    from echostream_fairseq.vocoder.config import VocoderError, generator_name, load_vocoder_config, preset_config
    from echostream_fairseq.vocoder.trainer import TrainOptions, train_vocoder

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormals in the backward pass slow CPU training many times over
    try:
        unit_model_path = os.path.join(args.data, "units", "kmeans.pt")
        if not os.path.isfile(unit_model_path):
            raise VocoderError(f"{unit_model_path}: not found (is {args.data} a corpus made by echostream-prep?)")
        unit_model = load_unit_model(unit_model_path)
        num_units = int(unit_model["num_units"])
        units = units_kind_of(unit_model).to_dict()
        if args.config:
            config = load_vocoder_config(args.config)
            if config["num_embeddings"] != num_units:
                raise VocoderError(
                    f"{args.config}: num_embeddings {config['num_embeddings']} but {unit_model_path} "
                    f"has {num_units} units"
                )
            # training fields the config may leave out
            base = preset_config("full", num_units, generator=generator_name(config))
            config = {**{k: v for k, v in base.items() if k not in config}, **config}
        else:
            config = preset_config(args.preset, num_units, generator=args.generator or "hifigan")
        if args.config and args.generator and generator_name(config) != args.generator:
            raise VocoderError(
                f"{args.config}: generator {generator_name(config)!r} but --generator {args.generator} (leave one out)"
            )
        for name in OVERRIDES:
            if getattr(args, name) is not None:
                config[name] = getattr(args, name)
        if config.get("units") not in (None, units):
            raise VocoderError(f"{args.config}: its units are {config['units']}, the corpus's {units}")
        config["units"] = units  # the kind of units it voices, checked against a model's when loaded
        if args.causal:
            config["causal"] = True
        if args.lookahead_frames is not None:
            config["lookahead_frames"] = args.lookahead_frames
        options = TrainOptions(
            data=args.data,
            save_dir=args.save_dir,
            max_updates=args.max_updates,
            train_subset=args.train_subset,
            valid_subset=args.valid_subset,
            save_interval=args.save_interval,
            log_interval=args.log_interval,
            valid_utterances=args.valid_utterances,
            train_limit=args.train_utterances,
            progress=not args.no_progress,
        )
        record = train_vocoder(config, options)
    except (VocoderError, UnitError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
