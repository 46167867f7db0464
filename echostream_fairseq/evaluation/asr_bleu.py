"""Offline ASR-BLEU: transcribe output speech with a local recogniser and score the transcripts with BLEU.

ASR-BLEU rates speech output as a translation: an English recogniser
(:mod:`~echostream_fairseq.evaluation.transcribers`: pocketsphinx by default, whisper or wav2vec2)
turns each output wav into text, and sacreBLEU's corpus BLEU compares those transcripts with the
reference translations. Both sides are normalised with
:func:`echostream_fairseq.data.text.normalize_text` first (lower case, no punctuation), since a
transcript of speech carries neither. Everything runs offline.

Two ways in:

* :func:`asr_bleu` on a list of wav paths (``echostream-asr-bleu`` wraps it for a folder of wavs);
* the SimulEval quality scorer ``ASR_BLEU_OFFLINE`` (:class:`OfflineASRBLEUScorer`), registered
  with SimulEval when this module is imported. SimulEval builds its scorer options *before* it
  imports the ``--agent`` file, so importing this module from the agent file is too late for
  ``simuleval --agent ...``: pass ``--user-dir <repo>/echostream_fairseq/evaluation/asr_bleu`` (no
  ``.py``), which SimulEval imports first. See :class:`OfflineASRBLEUScorer`.

A missing wav (SimulEval writes none for an instance that produced no speech) or an empty one
is an empty hypothesis: it costs BLEU but is no error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import time
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import soundfile as sf

with warnings.catch_warnings():
    # simuleval imports pydub, which warns about a missing ffmpeg that nothing here uses
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
    from simuleval.evaluator.scorers.quality_scorer import QualityScorer, register_quality_scorer

from echostream_fairseq.common.audio import SAMPLE_RATE  # noqa: E402
from echostream_fairseq.common.files import atomic_open  # noqa: E402
from echostream_fairseq.data.audio import read_audio  # noqa: E402
from echostream_fairseq.data.text import normalize_text  # noqa: E402
from echostream_fairseq.evaluation.transcribers import (  # noqa: E402
    TRANSCRIBERS,
    AsrBleuError,
    Transcriber,
    build_transcriber,
)

__all__ = [
    "SCORER_NAME",
    "asr_bleu",
    "add_asr_bleu_args",
    "OfflineASRBLEUScorer",
]

SCORER_NAME = "ASR_BLEU_OFFLINE"
# a fixed name: SimulEval's --user-dir imports this file as the top-level module "asr_bleu"
logger = logging.getLogger("echostream.asr_bleu")

PathLike = Union[str, "os.PathLike[str]"]
_CANONICAL_MODULE = "echostream_fairseq.evaluation.asr_bleu"


# --------------------------------------------------------------------------------------------
# Scoring


def _is_empty_audio(path: str) -> bool:
    """True for an audio file with no samples (a header only); unreadable files are left to read_audio."""
    try:
        return sf.info(path).frames == 0
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return False


def asr_bleu(
    wav_paths: Sequence[Optional[PathLike]],
    references: Sequence[str],
    transcriber: Transcriber,
) -> Dict[str, Any]:
    """Transcribe output speech and compute corpus BLEU against the references.

    Args:
        wav_paths: one audio file per reference (anything :func:`read_audio` reads; downmixed,
            resampled to 16 kHz). ``None``, ``""`` or a path that does not exist is a missing wav
            and an empty file an empty wav: both count as an empty hypothesis.
        references: reference translations, raw text (normalised here).
        transcriber: a :class:`Transcriber`; its output is normalised here too.

    Returns:
        ``{"bleu", "bleu_signature", "bleu_precisions", "brevity_penalty", "hyp_words",
        "ref_words", "utterances", "missing_wavs", "missing_indices", "empty_wavs",
        "empty_transcripts", "audio_seconds", "decode_seconds", "transcripts"}``: sacreBLEU corpus
        BLEU (0-100) on normalised text, its signature, 1- to 4-gram precisions (percent) and
        brevity penalty, hypothesis and reference lengths in words, the number of references,
        missing wavs and their 0-based indices, empty wavs, hypotheses with no words (missing and
        empty wavs included), seconds of audio transcribed and wall-clock seconds spent in
        ``transcribe``, and the normalised transcripts in input order (``""`` where missing).

    Raises:
        AsrBleuError: the lists differ in length or are empty.
        echostream_fairseq.data.audio.AudioError: a wav exists but cannot be read.
    """
    from sacrebleu.metrics import BLEU

    if len(wav_paths) != len(references):
        raise AsrBleuError(f"{len(wav_paths)} wav paths but {len(references)} references: they must pair up one to one")
    if not references:
        raise AsrBleuError("no utterances to score")
    transcripts: List[str] = []
    missing: List[int] = []
    empty_wavs = 0
    audio_seconds = decode_seconds = 0.0
    for index, path in enumerate(wav_paths):
        path = os.fspath(path) if path is not None else ""
        if not path or not os.path.exists(path):
            missing.append(index)
            transcripts.append("")
            continue
        if _is_empty_audio(path):
            empty_wavs += 1
            transcripts.append("")
            continue
        waveform = read_audio(path, SAMPLE_RATE)  # [num_samples] float32 at 16 kHz
        audio_seconds += waveform.numel() / SAMPLE_RATE
        start = time.perf_counter()
        text = transcriber.transcribe(waveform, SAMPLE_RATE)
        decode_seconds += time.perf_counter() - start
        transcripts.append(normalize_text(text))
    refs = [normalize_text(r) for r in references]
    # the text is already tokenised by normalisation (words and in-word apostrophes), so 13a only
    # splits on spaces here; stated for a stable signature
    metric = BLEU(tokenize="13a")
    score = metric.corpus_score(transcripts, [refs])
    return {
        "bleu": float(score.score),
        "bleu_signature": str(metric.get_signature()),
        "bleu_precisions": [float(p) for p in score.precisions],
        "brevity_penalty": float(score.bp),
        "hyp_words": int(score.sys_len),
        "ref_words": int(score.ref_len),
        "utterances": len(refs),
        "missing_wavs": len(missing),
        "missing_indices": missing,
        "empty_wavs": empty_wavs,
        "empty_transcripts": sum(1 for t in transcripts if not t),
        "audio_seconds": audio_seconds,
        "decode_seconds": decode_seconds,
        "transcripts": transcripts,
    }


# --------------------------------------------------------------------------------------------
# SimulEval quality scorer


def add_asr_bleu_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--asr-bleu-transcriber``, ``--asr-bleu-lm-text``, ``--asr-bleu-model`` to ``parser``.

    SimulEval calls it itself (through :meth:`OfflineASRBLEUScorer.add_args`) when
    ``--quality-metrics`` names ``ASR_BLEU_OFFLINE``; calling it again on the same parser is a no-op.
    """
    if "--asr-bleu-transcriber" in parser._option_string_actions:  # already added (argparse has no public test)
        return
    group = parser.add_argument_group("ASR_BLEU_OFFLINE (offline ASR-BLEU of speech output)")
    group.add_argument(
        "--asr-bleu-transcriber",
        choices=TRANSCRIBERS,
        default="pocketsphinx",
        help="recogniser for the output speech (default: pocketsphinx)",
    )
    group.add_argument(
        "--asr-bleu-lm-text",
        default=None,
        metavar="PATH",
        help="pocketsphinx: English training sentences, one per line, for a domain bigram LM "
        "(without it: the general English LM, poor on synthetic speech)",
    )
    group.add_argument(
        "--asr-bleu-model",
        default=None,
        metavar="PATH",
        help="whisper: local checkpoint .pt file; wav2vec2: local save_pretrained folder",
    )


class OfflineASRBLEUScorer(QualityScorer):
    """SimulEval quality scorer ``ASR_BLEU_OFFLINE``: :func:`asr_bleu` on the instances' output wavs.

    Each instance gives its output wav path as ``.prediction`` (``SpeechOutputInstance.prediction``,
    or the ``"prediction"`` field of ``instances.log`` under ``--score-only``) and its reference text
    as ``.reference``. Instances are scored in index order. When SimulEval has an output folder,
    ``asr_bleu_offline.json`` (all of :func:`asr_bleu`'s numbers and the transcripts) and
    ``asr_bleu_offline_transcripts.txt`` (one transcript per line) are written there.

    Use with ``simuleval``: the scorer must be registered before SimulEval builds the scorer
    options, which it does before importing ``--agent``. So pass
    ``--user-dir <repo>/echostream_fairseq/evaluation/asr_bleu`` (the file's path without
    ``.py``): SimulEval imports it first. A Python entry point (the agent file imports this module,
    then calls ``simuleval.cli.evaluate(AgentClass)`` under ``__main__``) needs no ``--user-dir``.
    SimulEval then adds this scorer's options itself (:func:`add_asr_bleu_args`).
    """

    def __init__(self, transcriber: Transcriber, output_dir: Optional[PathLike] = None) -> None:
        """
        Args:
            transcriber: the recogniser (see :func:`build_transcriber`).
            output_dir: where to write the transcripts and numbers; ``None``: nowhere.
        """
        super().__init__()
        self.transcriber = transcriber
        self.output_dir = os.fspath(output_dir) if output_dir is not None else None
        self.last_result: Optional[Dict[str, Any]] = None

    @staticmethod
    def add_args(parser: argparse.ArgumentParser) -> None:
        add_asr_bleu_args(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "OfflineASRBLEUScorer":
        """Build the transcriber now, so that a bad option fails before a long simulation runs."""
        transcriber = build_transcriber(
            getattr(args, "asr_bleu_transcriber", "pocketsphinx") or "pocketsphinx",
            getattr(args, "asr_bleu_lm_text", None),
            getattr(args, "asr_bleu_model", None),
            device=getattr(args, "device", None) or "cpu",
        )
        return cls(transcriber, getattr(args, "output", None))

    def __call__(self, instances: Mapping[int, Any]) -> float:
        """Corpus ASR-BLEU (0-100) of ``instances`` (SimulEval's ``{index: instance}``).

        Raises:
            AsrBleuError: no instances, or a prediction that is not a wav path (text output).
        """
        if not instances:
            raise AsrBleuError(f"{SCORER_NAME}: no instances to score")
        wav_paths: List[Optional[str]] = []
        references: List[str] = []
        for key in sorted(instances):
            instance = instances[key]
            prediction = getattr(instance, "prediction", None)
            if prediction is None or prediction == "":
                wav_paths.append(None)
            elif isinstance(prediction, (str, os.PathLike)) and (
                os.fspath(prediction).endswith(".wav") or os.path.isfile(prediction)
            ):
                wav_paths.append(os.fspath(prediction))
            else:
                raise AsrBleuError(
                    f"{SCORER_NAME} scores speech output, but instance {key}'s prediction is not a wav path: "
                    f"{str(prediction)[:80]!r} (use --quality-metrics BLEU for text output)"
                )
            references.append(instance.reference)
        result = asr_bleu(wav_paths, references, self.transcriber)
        self.last_result = result
        if self.output_dir is not None:
            self._write(result)
        logger.info(
            "%s = %.2f over %d instances (%d without a wav, %d empty transcripts)",
            SCORER_NAME,
            result["bleu"],
            result["utterances"],
            result["missing_wavs"],
            result["empty_transcripts"],
        )
        return result["bleu"]

    def _write(self, result: Mapping[str, Any]) -> None:
        with atomic_open(os.path.join(self.output_dir, "asr_bleu_offline_transcripts.txt")) as f:
            f.writelines(t + "\n" for t in result["transcripts"])
        with atomic_open(os.path.join(self.output_dir, "asr_bleu_offline.json")) as f:
            json.dump(dict(result), f, indent=2)
            f.write("\n")


if __name__ == _CANONICAL_MODULE:
    register_quality_scorer(SCORER_NAME)(OfflineASRBLEUScorer)
else:
    # Loaded under another name: SimulEval's --user-dir imports this file as the top-level module
    # "asr_bleu". Register the package module's class instead, so that there is one scorer class
    # whichever way the module was reached.
    register_quality_scorer(SCORER_NAME)(importlib.import_module(_CANONICAL_MODULE).OfflineASRBLEUScorer)
