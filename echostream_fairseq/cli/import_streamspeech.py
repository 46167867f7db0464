"""``echostream-import-streamspeech``: a StreamSpeech checkpoint's decoders in an echostream model.

::

    echostream-import-streamspeech --checkpoint streamspeech.simul-s2st.fr-en.pt --data-bin DATA \\
        --config-yaml config_gcmvn.yaml --multitask-config-yaml config_mtl_asr_st_ctcst.yaml \\
        [--arch echostream_emformer] [model flags ...] --out imported.pt

Writes an ``echostream`` checkpoint (``--arch``, default ``echostream_emformer``) whose ASR CTC
projection, ST CTC head, MT decoder, T2U encoder and unit decoder are StreamSpeech's, with the
settings under which they compute what they computed there (``--st-ctc-layers 0``,
``--unit-decoder-positions streamspeech``; their sizes read from the checkpoint and the multitask
YAML), and a freshly initialised streaming encoder. Train the encoder with ``fairseq-train
... --finetune-from-model imported.pt --freeze-parts asr_ctc,decoder,t2u_encoder,unit_decoder``
(docs/from_streamspeech.md). Model flags after the known ones go to the architecture (the encoder's
sizes, for example); the encoder's dimension must be StreamSpeech's (its MT decoder and CTC heads
read it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

__all__ = ["main"]

# StreamSpeech's model settings an import copies, given under its own flag names (they size the
# unit decoder, T2U and its MT decoder as they did there, winning over the multitask YAML)
_SIZES = (
    "translation_decoder_layers",
    "decoder_layers",
    "decoder_embed_dim",
    "decoder_ffn_embed_dim",
    "decoder_attention_heads",
    "synthesizer_encoder_layers",
    "ctc_upsample_rate",
    "encoder_embed_dim",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echostream-import-streamspeech", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a StreamSpeech checkpoint (fairseq-train's output)")
    p.add_argument("--data-bin", required=True, help="the data folder it was trained on (its YAMLs, dictionaries)")
    p.add_argument("--config-yaml", default="config_gcmvn.yaml")
    p.add_argument("--multitask-config-yaml", default="config_mtl_asr_st_ctcst.yaml")
    p.add_argument("--arch", default="echostream_emformer", help="the echostream architecture to write")
    p.add_argument("--out", required=True, help="the echostream checkpoint to write")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="read a checkpoint that weights-only loading refuses (it unpickles the file: only for files you trust)",
    )
    return p


def _their_settings(model_cfg) -> List[str]:
    flags = []
    for name in _SIZES:
        value = getattr(model_cfg, name, None)
        if value is not None:
            flags += ["--" + name.replace("_", "-"), str(value)]
    return flags


def import_checkpoint(args, extra: List[str]) -> List[str]:
    """Write the echostream checkpoint; returns the StreamSpeech keys not taken (its encoder, ...)."""
    import torch
    from fairseq import options, tasks

    import echostream_fairseq  # noqa: F401  (registers the model, task and criterion)
    from echostream_fairseq.common.streamspeech_names import MT_DECODER_PREFIX
    from echostream_fairseq.models.streamspeech_weights import load_streamspeech_parts
    from echostream_fairseq.tasks.checkpoint_configs import allow_fairseq_checkpoint_configs

    if not os.path.isfile(args.checkpoint):
        raise ValueError(f"{args.checkpoint}: checkpoint not found")
    allow_fairseq_checkpoint_configs()
    try:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=not args.trust_checkpoint)
    except Exception as e:  # noqa: BLE001  (torch and pickle raise many types)
        hint = "" if args.trust_checkpoint else "; if you trust the file, --trust-checkpoint unpickles it"
        raise ValueError(f"{args.checkpoint}: cannot read the checkpoint ({type(e).__name__}: {e}){hint}") from None
    weights = state.get("model") or {}
    if not any(k.startswith(MT_DECODER_PREFIX) for k in weights):
        raise ValueError(f"{args.checkpoint}: not a StreamSpeech checkpoint (no {MT_DECODER_PREFIX}* weights)")
    cfg = state.get("cfg") or {}
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    model_cfg = model_cfg if model_cfg is not None else state.get("args")
    code_size = getattr(model_cfg, "target_code_size", None) or getattr(cfg.get("task"), "target_code_size", None)
    argv = [
        args.data_bin,
        "--user-dir",
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "--task",
        "echostream_speech_to_speech",
        "--config-yaml",
        args.config_yaml,
        "--multitask-config-yaml",
        args.multitask_config_yaml,
        "--arch",
        args.arch,
        "--criterion",
        "echostream_multitask",
        "--cpu",
        "--st-ctc-layers",
        "0",
        "--unit-decoder-positions",
        "streamspeech",
        *_their_settings(model_cfg),
        *(["--target-code-size", str(code_size)] if code_size else []),
        *extra,
    ]
    train_args = options.parse_args_and_arch(options.get_training_parser(), argv)
    task = tasks.setup_task(train_args)
    model = task.build_model(train_args)
    left = load_streamspeech_parts(model, weights)
    checkpoint = {
        "args": train_args,
        "cfg": None,
        "model": model.state_dict(),
        # fairseq's checkpoint layout, so fairseq-train --finetune-from-model and our loaders read it
        "optimizer_history": [
            {
                "criterion_name": "EchoStreamMultitaskCriterion",
                "optimizer_name": "imported",
                "lr_scheduler_state": {"best": None},
                "num_updates": 0,
            }
        ],
        "extra_state": {"train_iterator": {"epoch": 0}, "imported_from": os.path.basename(args.checkpoint)},
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    partial = f"{args.out}.partial"
    torch.save(checkpoint, partial)
    os.replace(partial, args.out)
    return left


def main(argv: Optional[List[str]] = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    try:
        left = import_checkpoint(args, extra)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    encoder = sum(k.startswith("encoder.") for k in left)
    print(
        f"{args.out}: StreamSpeech's ASR CTC, ST CTC, MT decoder, T2U and unit decoder in {args.arch}; "
        f"its encoder ({encoder} tensors) and {len(left) - encoder} tied or bookkeeping tensors left out; "
        "the streaming encoder is new: train it (docs/from_streamspeech.md)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
