"""``echostream-vocode``: units -> wav files, one per line (the flags of fairseq's
``generate_waveform_from_code.py``).

::

    echostream-vocode --in-code-file units.txt --vocoder g_00500000 --vocoder-cfg config.json \\
        --results-path wavs/ [--dur-prediction]
    echostream-vocode --in-code-file units.txt --vocoder-type griffin_lim --vocoder DATA/units/kmeans.pt \\
        --results-path wavs/ --dur-prediction

Each line of ``--in-code-file`` is a space-separated unit sequence, written to ``{N}_pred.wav``
with ``N`` the line number counted from 0; a ``fairseq-generate`` log works too: its ``D-N``
lines are used and ``N`` is the sample id. All lines are checked before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from typing import List, Optional, Tuple

__all__ = ["read_unit_lines", "build_parser", "main"]


class UnitFileError(ValueError):
    pass


def read_unit_lines(path: str) -> List[Tuple[str, int, List[int]]]:
    """``(name, line_number, units)`` per utterance of a unit file (plain lines or fairseq ``D-`` lines)."""
    if not os.path.isfile(path):
        raise UnitFileError(f"{path}: unit file not found")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    generate_log = any(line.startswith("D-") for line in lines)
    out = []
    for number, line in enumerate(lines, 1):
        if generate_log:
            if not line.startswith("D-"):
                continue
            head, _, rest = line.partition("\t")
            name = head[2:]
            fields = rest.split("\t")
            text = fields[-1] if len(fields) >= 2 else ""
        else:
            name, text = str(len(out)), line
        try:
            units = [int(tok) for tok in text.split()]
        except ValueError:
            bad = next(tok for tok in text.split() if not tok.lstrip("-").isdigit())
            raise UnitFileError(f"{path}:{number}: {bad!r} is not a unit id") from None
        if not units:
            raise UnitFileError(f"{path}:{number}: empty unit sequence")
        out.append((name, number, units))
    if not out:
        raise UnitFileError(f"{path}: no unit sequences")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echostream-vocode", description=__doc__.split("\n\n")[0])
    p.add_argument("--in-code-file", required=True, help="unit sequences, one per line (or a fairseq-generate log)")
    p.add_argument(
        "--vocoder",
        required=True,
        help="CodeHiFiGAN generator checkpoint, or DATA/units/kmeans.pt with --vocoder-type griffin_lim",
    )
    p.add_argument("--vocoder-cfg", help="the checkpoint's config.json (code_hifigan only)")
    p.add_argument(
        "--vocoder-type",
        choices=("code_hifigan", "griffin_lim"),
        default="code_hifigan",
        help="code_hifigan: a fairseq/StreamSpeech or echostream-train-vocoder checkpoint; griffin_lim: "
        "the training-free fallback for log-mel k-means units",
    )
    p.add_argument("--results-path", required=True, help="folder for {N}_pred.wav")
    p.add_argument(
        "--dur-prediction",
        action="store_true",
        help="units are de-duplicated: predict each unit's duration (the vocoder's duration predictor, "
        "or the unit's mean train duration for griffin_lim)",
    )
    p.add_argument("--griffin-lim-iterations", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p


def load_vocoder(args: argparse.Namespace):
    from echostream_fairseq.vocoder.code_hifigan import CodeHiFiGANUnitVocoder
    from echostream_fairseq.vocoder.config import VocoderError
    from echostream_fairseq.vocoder.griffin_lim import GriffinLimUnitVocoder

    if args.vocoder_type == "griffin_lim":
        if args.vocoder_cfg:
            raise VocoderError("--vocoder-cfg is for code_hifigan; griffin_lim reads everything from the unit model")
        return GriffinLimUnitVocoder.from_file(args.vocoder, args.griffin_lim_iterations)
    if not args.vocoder_cfg:
        raise VocoderError("--vocoder-cfg is required with --vocoder-type code_hifigan")
    return CodeHiFiGANUnitVocoder.from_files(args.vocoder, args.vocoder_cfg)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    import torch
    from tqdm import tqdm

    from echostream_fairseq.common.files import atomic_path
    from echostream_fairseq.data.audio import write_wav
    from echostream_fairseq.vocoder.base import as_unit_tensor
    from echostream_fairseq.vocoder.config import VocoderError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        vocoder = load_vocoder(args)
        utterances = read_unit_lines(args.in_code_file)
        checked = [
            (name, as_unit_tensor(units, vocoder.num_units, f"{args.in_code_file}:{number}"))
            for name, number, units in utterances
        ]  # every line checked before any file is written
        if args.dur_prediction:
            vocoder.check_duration_predictor()
        os.makedirs(args.results_path, exist_ok=True)
        for name, units in tqdm(checked, desc="vocode", unit="utt", disable=not sys.stderr.isatty()):
            waveform = vocoder(units, dur_prediction=args.dur_prediction)
            with atomic_path(os.path.join(args.results_path, f"{name}_pred.wav")) as temp:
                write_wav(temp, waveform.clamp(-1, 1), vocoder.sample_rate)
    except (VocoderError, UnitFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(checked)} wav file(s) to {args.results_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
