"""Inputs of the agent benchmark: the error it reports, the checks on files and flags, the SimulEval
agent's flags, the translators loaded as the agent loads them, and the long source stream."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from echostream_fairseq.common.audio import SAMPLE_RATE

__all__ = [
    "BenchError",
    "REPO",
    "split_files",
    "read_lines",
    "check_file",
    "vocoder_path",
    "check_inputs",
    "agent_flags",
    "load_translator",
    "build_stream",
]

REPO = Path(__file__).resolve().parents[2]  # echostream_bench/agent/inputs.py -> the repository


class BenchError(Exception):
    """A missing input or an unusable setting; the message says what to fix."""


def split_files(data: Path, split: str) -> Tuple[Path, Path]:
    source, target = data / "simuleval" / f"{split}.source", data / "simuleval" / f"{split}.target"
    for path in (source, target):
        if not path.is_file():
            raise BenchError(
                f"{path} not found: --data must be a corpus folder written by echostream-prep "
                f"(with simuleval/{split}.source and .target)"
            )
    return source, target


def read_lines(path: Path) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def check_file(path: Optional[str], what: str, flag: str) -> Path:
    if not path:
        raise BenchError(f"{what} not given ({flag})")
    p = Path(path)
    if not p.is_file():
        raise BenchError(f"{what} not found: {p} ({flag})")
    return p


def vocoder_path(args) -> str:
    return args.vocoder or str(Path(args.data) / "units" / "kmeans.pt")


def check_inputs(args, need_baseline: bool) -> None:
    data = Path(args.data)
    if not data.is_dir():
        raise BenchError(f"corpus folder not found: {data} (--data)")
    split_files(data, args.split)
    check_file(args.model, "checkpoint", "--model")
    if need_baseline:
        check_file(args.baseline_model, "baseline checkpoint", "--baseline-model")
    check_file(vocoder_path(args), "vocoder", "--vocoder")
    if args.vocoder_type == "code_hifigan":
        check_file(args.vocoder_cfg, "vocoder config", "--vocoder-cfg")


def agent_flags(args, model: str, reencode: bool, chunk_ms: int) -> List[str]:
    """The SimulEval agent's flags for ``model`` (also what :func:`load_translator` parses)."""
    flags = [
        "--model-path",
        str(model),
        "--data-bin",
        str(args.data),
        "--vocoder",
        vocoder_path(args),
        "--vocoder-type",
        args.vocoder_type,
        "--source-segment-size",
        str(chunk_ms),
    ]
    if args.vocoder_cfg:
        flags += ["--vocoder-cfg", args.vocoder_cfg]
    if not args.no_dur_prediction:
        flags.append("--dur-prediction")
    if reencode:
        flags.append("--reencode")
    return flags


def load_translator(args, model: str, reencode: bool, chunk_ms: int):
    from echostream_fairseq.streaming.loading import translator_from_args
    from echostream_fairseq.streaming.options import add_translator_args

    parser = argparse.ArgumentParser(add_help=False)
    add_translator_args(parser, speech_output=True, source_segment_size=True)
    agent_args = parser.parse_args(agent_flags(args, model, reencode, chunk_ms))
    try:
        return translator_from_args(agent_args, speech_output=True)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise BenchError(f"cannot load {model} ({'re-encode' if reencode else 'incremental'} mode): {e}") from None


def build_stream(paths: Sequence[str], seconds: float, silence: float) -> Tuple[torch.Tensor, int]:
    """The utterances at ``paths`` in order, repeated as needed, ``silence`` seconds apart, cut at
    ``seconds``. Returns ``(samples [N] at 16 kHz, utterances used)``."""
    from echostream_fairseq.data.audio import read_audio

    if not paths:
        raise BenchError("no utterances to build the stream from")
    total = int(round(seconds * SAMPLE_RATE))
    gap = torch.zeros(int(round(silence * SAMPLE_RATE)))
    pieces, length, used, cache = [], 0, 0, {}
    while length < total:
        path = paths[used % len(paths)]
        if path not in cache:
            if not os.path.isfile(path):
                raise BenchError(f"source audio not found: {path}")
            cache[path] = read_audio(path, SAMPLE_RATE)
        for piece in (cache[path], gap):
            pieces.append(piece)
            length += piece.numel()
        used += 1
        if used >= len(paths) and length == 0:
            raise BenchError("the source audio is empty")
    return torch.cat(pieces)[:total], used
