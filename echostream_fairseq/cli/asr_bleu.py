"""``echostream-asr-bleu``: offline ASR-BLEU of a folder (or list) of output wavs against reference text.

Pairs the wavs with the lines of ``--reference`` and scores them with
:func:`echostream_fairseq.evaluation.asr_bleu.asr_bleu`:

* ``--wav-dir DIR``: SimulEval's naming, ``DIR/{N}_pred.wav`` for reference line ``N`` (0-based).
  Lines without a wav (SimulEval writes none when an instance produced no speech) are empty
  hypotheses; a wav whose ``N`` has no reference line is an error.
* ``--wav-list FILE``: one audio path per reference line, relative paths taken from ``FILE``'s
  folder; an empty line or a path that does not exist is an empty hypothesis.

Prints the numbers as ``name<TAB>value`` lines (BLEU first). ``--transcripts-out`` gets one
normalised transcript per reference line, ``--json`` all numbers and the transcripts; both are
written atomically after the scoring succeeded. Bad input exits with status 2 and a message.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

__all__ = ["WAV_NAME", "main"]

WAV_NAME = re.compile(r"^(\d+)_pred\.wav$")  # SimulEval's SpeechOutputInstance.wav_path
_PRINTED = (
    "bleu",
    "utterances",
    "missing_wavs",
    "empty_wavs",
    "empty_transcripts",
    "hyp_words",
    "ref_words",
    "brevity_penalty",
    "audio_seconds",
    "decode_seconds",
    "bleu_signature",
)


class _InputError(Exception):
    """Bad command-line input: printed as ``error: ...``, exit status 2."""


def _read_references(path: Path) -> List[str]:
    if not path.is_file():
        raise _InputError(f"reference file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise _InputError(f"{path}: not UTF-8 text ({e})") from None
    if not lines:
        raise _InputError(f"{path}: no reference lines")
    return lines


def _wavs_from_dir(wav_dir: Path, num_references: int) -> Tuple[List[Optional[str]], List[str]]:
    """Wav path (or ``None``) per reference line from SimulEval-named ``{N}_pred.wav`` files.

    Returns:
        The paths, and the names of files in ``wav_dir`` that were not used (other names).

    Raises:
        _InputError: not a folder, no ``{N}_pred.wav`` in it, or an ``N`` >= ``num_references``.
    """
    if not wav_dir.is_dir():
        raise _InputError(f"wav folder not found: {wav_dir}")
    paths: List[Optional[str]] = [None] * num_references
    ignored: List[str] = []
    out_of_range: List[str] = []
    found = 0
    for name in sorted(os.listdir(wav_dir)):
        match = WAV_NAME.match(name)
        if match is None:
            ignored.append(name)
            continue
        index = int(match.group(1))
        if index >= num_references:
            out_of_range.append(name)
            continue
        paths[index] = str(wav_dir / name)
        found += 1
    if out_of_range:
        shown = ", ".join(out_of_range[:5]) + (" ..." if len(out_of_range) > 5 else "")
        raise _InputError(
            f"{wav_dir}: {len(out_of_range)} wav(s) index past the {num_references} reference lines ({shown}); "
            "wrong --reference file?"
        )
    if found == 0:
        raise _InputError(
            f"{wav_dir}: no wavs named {{N}}_pred.wav (SimulEval's naming); use --wav-list for other names"
        )
    return paths, ignored


def _wavs_from_list(list_path: Path, num_references: int) -> List[Optional[str]]:
    """Wav path (or ``None`` for an empty line) per reference line from a list file.

    Raises:
        _InputError: the list is missing, its line count differs from the references', or none
            of its paths exists.
    """
    if not list_path.is_file():
        raise _InputError(f"wav list not found: {list_path}")
    lines = list_path.read_text(encoding="utf-8").splitlines()
    if len(lines) != num_references:
        raise _InputError(f"{list_path}: {len(lines)} lines but {num_references} reference lines; they must pair up")
    base = list_path.parent
    paths: List[Optional[str]] = []
    for line in lines:
        line = line.strip()
        paths.append(str(base / line) if line else None)  # an absolute path stays as it is
    if not any(p is not None and os.path.exists(p) for p in paths):
        raise _InputError(
            f"{list_path}: none of the listed wavs exists (relative paths are taken from the list's folder)"
        )
    return paths


def _build_parser() -> argparse.ArgumentParser:
    from echostream_fairseq.evaluation.transcribers import TRANSCRIBERS

    parser = argparse.ArgumentParser(prog="echostream-asr-bleu", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--wav-dir", type=Path, help="folder of {N}_pred.wav files (SimulEval's output/wavs)")
    source.add_argument("--wav-list", type=Path, help="file with one wav path per reference line")
    parser.add_argument("--reference", required=True, type=Path, help="reference translations, one per line")
    parser.add_argument("--transcriber", choices=TRANSCRIBERS, default="pocketsphinx")
    parser.add_argument(
        "--lm-text", type=Path, help="pocketsphinx: English training sentences, one per line, for a domain LM"
    )
    parser.add_argument("--model", type=Path, help="whisper: checkpoint .pt file; wav2vec2: save_pretrained folder")
    parser.add_argument("--device", default="cpu", help="torch device for whisper / wav2vec2")
    parser.add_argument("--transcripts-out", type=Path, help="write the transcripts here, one per reference line")
    parser.add_argument("--json", type=Path, help="write all numbers and the transcripts here")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Run the command (``argv``: the arguments, ``sys.argv[1:]`` by default); exits with status 2 on bad input.

    Returns ``None``: the console script passes the return value to ``sys.exit``.
    """
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("fairseq").setLevel(logging.WARNING)

    from echostream_fairseq.common.files import atomic_open
    from echostream_fairseq.data.audio import AudioError
    from echostream_fairseq.evaluation.asr_bleu import asr_bleu
    from echostream_fairseq.evaluation.transcribers import AsrBleuError, build_transcriber

    try:
        # check every input before the (slow) recogniser is built
        references = _read_references(args.reference)
        if args.wav_dir is not None:
            wav_paths, ignored = _wavs_from_dir(args.wav_dir, len(references))
            if ignored:
                logging.info("ignored %d file(s) in %s not named {N}_pred.wav", len(ignored), args.wav_dir)
        else:
            wav_paths = _wavs_from_list(args.wav_list, len(references))
        for option, path in (("--lm-text", args.lm_text), ("--model", args.model)):
            if path is not None and not path.exists():
                raise _InputError(f"{option} not found: {path}")
        transcriber = build_transcriber(args.transcriber, args.lm_text, args.model, device=args.device)
        result = asr_bleu(wav_paths, references, transcriber)
    except (_InputError, AsrBleuError, AudioError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

    for key in _PRINTED:
        value = result[key]
        print(f"{key}\t{value:.2f}" if isinstance(value, float) else f"{key}\t{value}")
    if result["missing_indices"]:
        shown = " ".join(str(i) for i in result["missing_indices"][:20])
        print(f"missing_indices\t{shown}{' ...' if len(result['missing_indices']) > 20 else ''}")
    try:
        if args.transcripts_out is not None:
            with atomic_open(args.transcripts_out) as f:
                f.writelines(t + "\n" for t in result["transcripts"])
        if args.json is not None:
            with atomic_open(args.json) as f:
                json.dump(result, f, indent=2)
                f.write("\n")
    except OSError as e:  # atomic_open left the previous file (if any) in place
        print(f"error: cannot write output: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
