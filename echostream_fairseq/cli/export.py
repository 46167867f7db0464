"""``echostream-export``: a checkpoint's streaming steps as ONNX graphs, fp32 and int8, with the
model's description inside: the encoder step with both CTC heads, the MT decoder's step, T2U's
step and the unit decoder's step; with
``--vocoder``, the CodeHiFiGAN generator too (fp32) (docs/export.md)."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from echostream_fairseq.checkpoint import load_echostream_model
from echostream_fairseq.export.onnx_files import (
    PRECISIONS,
    default_folder,
    export_steps,
    export_vocoder,
    read_metadata,
)
from echostream_fairseq.streaming.options import add_checkpoint_args, add_vocoder_file_args
from echostream_fairseq.streaming.setup import Dictionaries


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="echostream-export", description=__doc__)
    add_checkpoint_args(parser)
    add_vocoder_file_args(parser)
    parser.add_argument(
        "--graphs",
        help="folder for the graphs, as --runtime onnx reads it "
        "(default: graphs/CHECKPOINT_NAME/ beside the checkpoint)",
    )
    parser.add_argument(
        "--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS), help="graphs to write (default: both)"
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model, task = load_echostream_model(
            args.model_path, args.data_bin, args.config_yaml, args.multitask_config_yaml
        )
        dictionaries = Dictionaries.of_task(task)
        out = args.graphs or default_folder(args.model_path)
        paths = export_steps(model, dictionaries, out, args.precision)
        if args.vocoder:
            from echostream_fairseq.vocoder import CodeHiFiGANUnitVocoder

            if not args.vocoder_cfg:
                raise ValueError("--vocoder-cfg is required with a CodeHiFiGAN --vocoder")
            paths += export_vocoder(CodeHiFiGANUnitVocoder.from_files(args.vocoder, args.vocoder_cfg).eval(), out)
    except ValueError as err:
        print(f"echostream-export: {err}", file=sys.stderr)
        return 2
    for path in paths:
        meta = read_metadata(path)
        print(f"{path}  ({meta['precision']}, {path.stat().st_size / 1e6:.1f} MB, weights {meta['weights_digest']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
