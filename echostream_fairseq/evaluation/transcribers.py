"""Speech recognisers for ASR-BLEU, all local: pocketsphinx, whisper and wav2vec2.

:func:`build_transcriber` builds one of :data:`TRANSCRIBERS` from local files only:

* ``pocketsphinx`` (default): pocketsphinx's US English acoustic model. With ``lm_text`` (English
  training-side sentences, one per line) it decodes with a closed-vocabulary bigram LM and
  dictionary built from them (:meth:`PocketsphinxRecognizer.from_sentences`); without, with the
  general English LM bundled in the wheel, which does poorly on espeak-ng speech.
* ``whisper``: openai-whisper from a local checkpoint file (``model``).
* ``wav2vec2``: a transformers ``Wav2Vec2ForCTC`` model and its processor from a local folder (``model``).

Each is a :class:`Transcriber`: one utterance of English speech in, its text out.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any, Dict, List, Optional, Protocol, Sequence, Union, runtime_checkable

import torch
from torch import Tensor

from echostream_fairseq.common.audio import mono_float32, resample
from echostream_fairseq.data.text import normalize_text
from echostream_fairseq.evaluation.pocketsphinx_model import bundled_paths
from echostream_fairseq.evaluation.pronunciations import cmu_dictionary, derive_s_form
from echostream_fairseq.evaluation.recognizer import PocketsphinxRecognizer

__all__ = [
    "TRANSCRIBERS",
    "AsrBleuError",
    "Transcriber",
    "WhisperTranscriber",
    "Wav2Vec2Transcriber",
    "read_lm_text",
    "build_transcriber",
]

TRANSCRIBERS = ("pocketsphinx", "whisper", "wav2vec2")
# the ASR-BLEU scorer's logger: what the transcribers report belongs to its run
logger = logging.getLogger("echostream.asr_bleu")

PathLike = Union[str, "os.PathLike[str]"]


class AsrBleuError(ValueError):
    """Unusable input or configuration for ASR-BLEU; the message says what to fix."""


@runtime_checkable
class Transcriber(Protocol):
    """Anything that turns one utterance of English speech into text."""

    def transcribe(self, waveform: Tensor, sample_rate: int) -> str:
        """Recognise ``waveform`` (``[num_samples]`` float32 in [-1, 1], mono) sampled at ``sample_rate`` Hz."""
        ...


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
    """``[num_samples]`` float32 CPU tensor at ``target_rate`` (checks shape; resamples if needed).

    Anything ``torch.as_tensor`` takes is accepted; the checks are :func:`mono_float32`'s. The
    pocketsphinx recogniser refuses more (odd rates, non-finite or int16-scale samples) before it
    quantises to int16.
    """
    if not isinstance(waveform, Tensor):
        waveform = torch.as_tensor(waveform)
    return resample(mono_float32(waveform), sample_rate, target_rate)


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

    SAMPLE_RATE = 16000  # whisper's own input rate (its log-mel front end is fixed), not the project's

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
    dictionary = cmu_dictionary(bundled_paths()["dict"])
    known: Dict[str, bool] = {}
    kept: List[str] = []
    unknown_words = set()
    for sentence in sentences:
        words = normalize_text(sentence).split()
        for word in words:
            if word not in known:
                known[word] = word in dictionary or bool(derive_s_form(word, dictionary))
        missing = [w for w in words if not known[w]]
        if missing:
            unknown_words.update(missing)
        else:
            kept.append(sentence)
    if unknown_words:
        shown = ", ".join(repr(w) for w in sorted(unknown_words)[:10])
        logger.warning(
            "ASR-BLEU LM: dropped %d of %d sentences with %d word(s) that have no pronunciation (%s%s)",
            len(sentences) - len(kept),
            len(sentences),
            len(unknown_words),
            shown,
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
