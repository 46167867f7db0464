"""Offline ASR-BLEU: transcribe output speech with a local recogniser and score the transcripts with BLEU.

ASR-BLEU rates speech output as a translation: an English recogniser turns each output wav into
text, and sacreBLEU's corpus BLEU compares those transcripts with the reference translations. Both
sides are normalised with :func:`echostream_fairseq.data.text.normalize_text` first (lower case, no
punctuation), since a transcript of speech carries neither.

Everything runs offline. Recognisers (:func:`build_transcriber`):

* ``pocketsphinx`` (default): pocketsphinx's US English acoustic model. With ``lm_text`` (English
  training-side sentences, one per line) it decodes with a closed-vocabulary bigram LM and
  dictionary built from them (:meth:`PocketsphinxRecognizer.from_sentences`); without, with the
  general English LM bundled in the wheel, which does poorly on espeak-ng speech.
* ``whisper``: openai-whisper from a local checkpoint file (``model``).
* ``wav2vec2``: a transformers ``Wav2Vec2ForCTC`` model and its processor from a local folder (``model``).

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
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Union, runtime_checkable

import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

with warnings.catch_warnings():
    # simuleval imports pydub, which warns about a missing ffmpeg that nothing here uses
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
    from simuleval.evaluator.scorers.quality_scorer import QualityScorer, register_quality_scorer

from echostream_fairseq.common.files import atomic_open  # noqa: E402
from echostream_fairseq.data.audio import SAMPLE_RATE, read_audio  # noqa: E402
from echostream_fairseq.data.text import normalize_text  # noqa: E402

__all__ = [
    "SCORER_NAME",
    "TRANSCRIBERS",
    "AsrBleuError",
    "Transcriber",
    "WhisperTranscriber",
    "Wav2Vec2Transcriber",
    "read_lm_text",
    "build_transcriber",
    "asr_bleu",
    "add_asr_bleu_args",
    "OfflineASRBLEUScorer",
]

SCORER_NAME = "ASR_BLEU_OFFLINE"
TRANSCRIBERS = ("pocketsphinx", "whisper", "wav2vec2")
# a fixed name: SimulEval's --user-dir imports this file as the top-level module "asr_bleu"
logger = logging.getLogger("echostream.asr_bleu")

PathLike = Union[str, "os.PathLike[str]"]
_CANONICAL_MODULE = "echostream_fairseq.evaluation.asr_bleu"


class AsrBleuError(ValueError):
    """Unusable input or configuration for ASR-BLEU; the message says what to fix."""


@runtime_checkable
class Transcriber(Protocol):
    """Anything that turns one utterance of English speech into text."""

    def transcribe(self, waveform: Tensor, sample_rate: int) -> str:
        """Recognise ``waveform`` (``[num_samples]`` float32 in [-1, 1], mono) sampled at ``sample_rate`` Hz."""
        ...


# --------------------------------------------------------------------------------------------
# Transcribers


def _import_backend(module: str, transcriber: str, install: str) -> Any:
    """``import module``, or an ImportError that names the transcriber and what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"the {transcriber!r} transcriber needs the {install!r} package, which cannot be imported ({e}): "
            f"`pip install {install}`, or use the pocketsphinx transcriber"
        ) from None


def _mono_at(waveform: Tensor, sample_rate: int, target_rate: int) -> Tensor:
    """``[num_samples]`` float32 CPU tensor at ``target_rate`` (checks shape; resamples if needed)."""
    if not isinstance(waveform, Tensor):
        waveform = torch.as_tensor(waveform)
    if not waveform.is_floating_point():
        raise TypeError(f"waveform must hold float samples in [-1, 1], got {waveform.dtype}")
    samples = waveform.detach().to("cpu", torch.float32)
    if samples.dim() == 2 and 1 in samples.shape:
        samples = samples.reshape(-1)
    if samples.dim() != 1 or samples.numel() == 0:
        raise ValueError(f"waveform must be mono [num_samples] with samples, got shape {list(samples.shape)}")
    if sample_rate != target_rate:
        samples = AF.resample(samples, int(sample_rate), int(target_rate))
    return samples


class WhisperTranscriber:
    """openai-whisper from a local checkpoint file, greedy (temperature 0) English transcription.

    Args:
        checkpoint: a whisper ``.pt`` file (what ``whisper.load_model`` downloads into
            ``~/.cache/whisper``); read locally, nothing is downloaded.
        device: torch device for the model.
        language: spoken language code given to the decoder (skips language detection).

    Raises:
        ImportError: openai-whisper is not installed.
        AsrBleuError: ``checkpoint`` is not a file.
    """

    SAMPLE_RATE = 16000  # whisper's log-mel front end assumes 16 kHz input

    def __init__(self, checkpoint: PathLike, device: str = "cpu", language: str = "en") -> None:
        whisper = _import_backend("whisper", "whisper", "openai-whisper")
        checkpoint = os.fspath(checkpoint)
        if not os.path.isfile(checkpoint):
            raise AsrBleuError(
                f"whisper checkpoint not found: {checkpoint} (pass a local .pt file; nothing is downloaded)"
            )
        self.device = device
        self.language = language
        # a path (not a model name) makes load_model read the file instead of downloading
        self._model = whisper.load_model(checkpoint, device=device)

    def transcribe(self, waveform: Tensor, sample_rate: int) -> str:
        samples = _mono_at(waveform, sample_rate, self.SAMPLE_RATE)
        result = self._model.transcribe(
            samples.numpy(),
            language=self.language,
            task="transcribe",
            temperature=0.0,  # greedy: the same audio always gives the same text
            condition_on_previous_text=False,
            fp16=self.device != "cpu",  # on a CPU whisper would warn and use fp32 anyway
            verbose=None,
        )
        return normalize_text(result["text"])


class Wav2Vec2Transcriber:
    """A transformers ``Wav2Vec2ForCTC`` model with greedy CTC decoding.

    Args:
        model_dir: a local folder holding the model (``config.json``, weights) and its
            ``Wav2Vec2Processor`` files (feature extractor and tokenizer configs, ``vocab.json``),
            as ``save_pretrained`` writes them; nothing is downloaded.
        device: torch device for the model.

    Raises:
        ImportError: transformers is not installed.
        AsrBleuError: ``model_dir`` is not a folder.
    """

    def __init__(self, model_dir: PathLike, device: str = "cpu") -> None:
        transformers = _import_backend("transformers", "wav2vec2", "transformers")
        model_dir = os.fspath(model_dir)
        if not os.path.isdir(model_dir):
            raise AsrBleuError(
                f"wav2vec2 model folder not found: {model_dir} "
                "(pass a local save_pretrained folder; nothing is downloaded)"
            )
        self.device = device
        self._processor = transformers.Wav2Vec2Processor.from_pretrained(model_dir, local_files_only=True)
        self._model = transformers.Wav2Vec2ForCTC.from_pretrained(model_dir, local_files_only=True).to(device).eval()
        self.sample_rate = int(self._processor.feature_extractor.sampling_rate)

    def transcribe(self, waveform: Tensor, sample_rate: int) -> str:
        samples = _mono_at(waveform, sample_rate, self.sample_rate)
        inputs = self._processor(samples.numpy(), sampling_rate=self.sample_rate, return_tensors="pt")
        kwargs = {}
        if "attention_mask" in inputs:  # only the models trained with one want it
            kwargs["attention_mask"] = inputs["attention_mask"].to(self.device)
        with torch.inference_mode():
            logits = self._model(inputs["input_values"].to(self.device), **kwargs).logits  # [1, frames, vocab]
        ids = logits.argmax(dim=-1).cpu()
        # batch_decode merges repeats and drops blanks (CTC); the text is upper case for English models
        return normalize_text(self._processor.batch_decode(ids)[0])


def read_lm_text(path: PathLike) -> List[str]:
    """The non-blank lines of a UTF-8 text file (one sentence each).

    Raises:
        AsrBleuError: the file is missing or has no sentence.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AsrBleuError(f"LM text file not found: {path}")
    with open(path, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    if not sentences:
        raise AsrBleuError(f"{path}: no sentences to build a language model from")
    return sentences


def _pronounceable(sentences: Sequence[str]) -> List[str]:
    """``sentences`` without those holding a word that has no pronunciation in the CMU dictionary.

    Why: :meth:`PocketsphinxRecognizer.from_sentences` refuses such words (numbers, rare names),
    and a closed-vocabulary recogniser could never output them anyway; dropping the sentence keeps
    the bigram counts free of invented sentence boundaries.
    """
    # the same dictionary and "-s" derivation as write_pronunciation_dict uses
    from echostream_fairseq.evaluation.asr import _bundled_paths, _cmu_dictionary, _derive_s_form

    dictionary = _cmu_dictionary(_bundled_paths()["dict"])
    known: Dict[str, bool] = {}
    kept: List[str] = []
    unknown_words = set()
    for sentence in sentences:
        words = normalize_text(sentence).split()
        for word in words:
            if word not in known:
                known[word] = word in dictionary or bool(_derive_s_form(word, dictionary))
        missing = [w for w in words if not known[w]]
        if missing:
            unknown_words.update(missing)
        else:
            kept.append(sentence)
    if unknown_words:
        shown = ", ".join(repr(w) for w in sorted(unknown_words)[:10])
        logger.warning(
            "ASR-BLEU LM: dropped %d of %d sentences with %d word(s) that have no pronunciation (%s%s)",
            len(sentences) - len(kept), len(sentences), len(unknown_words), shown,
            " ..." if len(unknown_words) > 10 else "",
        )
    return kept


def build_transcriber(
    name: str = "pocketsphinx",
    lm_text: Optional[PathLike] = None,
    model: Optional[PathLike] = None,
    device: str = "cpu",
) -> Transcriber:
    """Build one of :data:`TRANSCRIBERS`, from local files only.

    Args:
        name: ``"pocketsphinx"``, ``"whisper"`` or ``"wav2vec2"``.
        lm_text: pocketsphinx only: English sentences, one per line (the training side's target
            text); the recogniser's bigram LM and dictionary are built from them. Sentences with
            words missing from the CMU dictionary are left out (logged). ``None``: the bundled
            general English LM (much less accurate on synthetic speech).
        model: whisper: a checkpoint ``.pt`` file; wav2vec2: a ``save_pretrained`` folder.
            Required for those two, not used by pocketsphinx.
        device: torch device for whisper and wav2vec2 (pocketsphinx runs on the CPU).

    Raises:
        AsrBleuError: unknown name, a missing file, an option the backend does not take.
        ImportError: the backend's package is not installed (the message names it).
    """
    if name not in TRANSCRIBERS:
        raise AsrBleuError(f"unknown transcriber {name!r}; choose one of {', '.join(TRANSCRIBERS)}")
    if name == "pocketsphinx":
        if model is not None:
            raise AsrBleuError(
                "the pocketsphinx transcriber takes no model path; for a domain LM give the LM text "
                "(--lm-text, or --asr-bleu-lm-text for the SimulEval scorer)"
            )
        from echostream_fairseq.evaluation.asr import PocketsphinxRecognizer

        if lm_text is None:
            logger.warning("ASR-BLEU with pocketsphinx's general English LM; pass an LM text for a domain LM")
            return PocketsphinxRecognizer()
        sentences = _pronounceable(read_lm_text(lm_text))
        if not sentences:
            raise AsrBleuError(f"{os.fspath(lm_text)}: every sentence has a word without a pronunciation")
        try:
            return PocketsphinxRecognizer.from_sentences(sentences)
        except ValueError as e:  # e.g. nothing left after normalisation
            raise AsrBleuError(f"{os.fspath(lm_text)}: {e}") from None
    if lm_text is not None:
        raise AsrBleuError(f"the {name} transcriber takes no LM text (only pocketsphinx uses one)")
    if model is None:
        what = "checkpoint file (.pt)" if name == "whisper" else "model folder (save_pretrained)"
        raise AsrBleuError(
            f"the {name} transcriber needs a local {what}: pass its path "
            "(--model, or --asr-bleu-model for the SimulEval scorer)"
        )
    if name == "whisper":
        return WhisperTranscriber(model, device=device)
    return Wav2Vec2Transcriber(model, device=device)


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
    group.add_argument("--asr-bleu-transcriber", choices=TRANSCRIBERS, default="pocketsphinx",
                       help="recogniser for the output speech (default: pocketsphinx)")
    group.add_argument("--asr-bleu-lm-text", default=None, metavar="PATH",
                       help="pocketsphinx: English training sentences, one per line, for a domain bigram LM "
                            "(without it: the general English LM, poor on synthetic speech)")
    group.add_argument("--asr-bleu-model", default=None, metavar="PATH",
                       help="whisper: local checkpoint .pt file; wav2vec2: local save_pretrained folder")


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
            SCORER_NAME, result["bleu"], result["utterances"], result["missing_wavs"], result["empty_transcripts"],
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
