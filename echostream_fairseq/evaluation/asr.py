"""Offline English speech recognition with pocketsphinx, for word error rate and ASR-BLEU.

Why pocketsphinx: it runs on a CPU without downloads, and its wheel ships a US English acoustic
model, a general English trigram model and the CMU pronunciation dictionary. Its general model
does poorly on espeak-ng's formant speech, so for our corpora we build a closed-vocabulary word
bigram model from the training side's English text (:func:`write_bigram_arpa`) and a pronunciation
dictionary restricted to its words (:func:`write_pronunciation_dict`). The recogniser then only
knows the training vocabulary: that is a property of the measurement, which compares speech
*renderings* of the same text (reference audio against vocoded audio), not an open-vocabulary ASR.

Text on both sides is normalised with :func:`echostream_fairseq.data.text.normalize_text` (lower
case, no punctuation, apostrophes only inside words), the normalisation used for every other text
of the project; the CMU dictionary is lower case with the same apostrophe forms (``king's``).

Language model: interpolated absolute discounting (Ney's discount ``D = n1 / (n1 + 2 n2)`` from
the bigram count-of-counts) written in back-off form. For a history ``h`` seen ``c(h)`` times and
followed by ``N(h)`` distinct words::

    P(w | h) = (c(h, w) - D) / c(h) + gamma(h) P(w)     for bigrams seen in training
    P(w | h) = gamma(h) P(w)                             otherwise
    gamma(h) = D N(h) / c(h)

``P(w)`` is the maximum-likelihood unigram over the words and ``</s>`` (``<s>`` is never
predicted). ``gamma(h)`` is the ARPA back-off weight: the unseen words receive exactly the mass the
seen ones gave away, so every conditional distribution sums to 1.
"""

from __future__ import annotations

import collections
import functools
import math
import os
import tempfile
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torchaudio.functional as AF

from echostream_fairseq.common.files import atomic_open
from echostream_fairseq.data.audio import SAMPLE_RATE, read_audio
from echostream_fairseq.data.text import edit_distance, normalize_text

__all__ = [
    "SENTENCE_START",
    "SENTENCE_END",
    "DEFAULT_NOISE_SNR_DB",
    "write_bigram_arpa",
    "write_pronunciation_dict",
    "PocketsphinxRecognizer",
    "word_error_rate",
    "evaluate_wavs",
]

SENTENCE_START = "<s>"
SENTENCE_END = "</s>"
# ARPA convention for "never predicted" (<s> as a next word); log10 probability
_LOG10_ZERO = -99.0
# Below this input rate the audio holds nothing of the 4-8 kHz band the acoustic model uses.
_MIN_SAMPLE_RATE = 8000
# Larger peaks mean int16-scale samples passed as floats; clipping them would hide the mistake.
_MAX_PEAK = 2.0
_INT16_SCALE = 32768.0
# noise floor added before decoding (see PocketsphinxRecognizer); the seed makes it reproducible
DEFAULT_NOISE_SNR_DB = 30.0
_NOISE_SEED = 0
# absolute minimum of that floor (-80 dBFS, about 3 int16 steps), for (near-)silent input: on pure
# digital silence the decoder hallucinates words, on a faint noise floor it returns nothing
_MIN_NOISE_RMS = 1e-4

Waveform = Union[torch.Tensor, np.ndarray]


def _pocketsphinx():
    """The pocketsphinx module, imported on first use (an optional, evaluation-only dependency)."""
    try:
        import pocketsphinx
    except ImportError:
        raise ImportError("the ASR evaluation needs pocketsphinx: `pip install pocketsphinx==5.1.1`") from None
    return pocketsphinx


def _bundled_paths() -> Dict[str, str]:
    """Paths of the acoustic model, general LM and CMU dictionary inside the pocketsphinx wheel."""
    root = os.path.join(_pocketsphinx().get_model_path(), "en-us")
    return {
        "hmm": os.path.join(root, "en-us"),
        "lm": os.path.join(root, "en-us.lm.bin"),
        "dict": os.path.join(root, "cmudict-en-us.dict"),
    }


# --------------------------------------------------------------------------------------------
# Language model


def _sentence_words(sentences: Iterable[str]) -> List[List[str]]:
    """Normalised word lists of ``sentences``; sentences with no words left are dropped."""
    out = []
    for sentence in sentences:
        words = normalize_text(sentence).split()
        if words:
            out.append(words)
    return out


def write_bigram_arpa(sentences: Iterable[str], path: str) -> Dict[str, int]:
    """Count a back-off word bigram model from ``sentences`` and write it as an ARPA file.

    Args:
        sentences: raw English text, one sentence each (normalised here with ``normalize_text``;
            sentences that normalise to nothing are skipped).
        path: the ARPA file to write (atomically: an interrupted write leaves the old file).

    Returns:
        ``{"sentences", "tokens", "unigrams", "bigrams"}``: sentences used, predicted tokens
        (words plus one ``</s>`` per sentence), ARPA unigram entries (vocabulary plus ``<s>`` and
        ``</s>``) and bigram entries.

    Raises:
        ValueError: no sentence has a word.
    """
    word_lists = _sentence_words(sentences)
    if not word_lists:
        raise ValueError("cannot build a language model from no words (all sentences empty after normalisation)")

    unigram_counts: collections.Counter = collections.Counter()
    bigram_counts: collections.Counter = collections.Counter()
    for words in word_lists:
        tokens = [SENTENCE_START, *words, SENTENCE_END]
        unigram_counts.update(tokens[1:])  # <s> is a context only, never predicted
        bigram_counts.update(zip(tokens[:-1], tokens[1:]))

    total = sum(unigram_counts.values())
    unigram_prob = {w: c / total for w, c in unigram_counts.items()}

    # Ney's estimate of the absolute discount from the count-of-counts; kept inside [0.1, 0.9]
    # so that each history always leaves some mass to unseen words (tiny corpora can have
    # n1 = 0 or n2 = 0) and every seen bigram keeps a positive share of its count.
    count_of_counts = collections.Counter(bigram_counts.values())
    n1, n2 = count_of_counts.get(1, 0), count_of_counts.get(2, 0)
    discount = n1 / (n1 + 2 * n2) if n1 > 0 and n2 > 0 else 0.5
    discount = min(max(discount, 0.1), 0.9)

    history_total: collections.Counter = collections.Counter()
    history_types: collections.Counter = collections.Counter()
    for (history, _), count in bigram_counts.items():
        history_total[history] += count
        history_types[history] += 1
    backoff = {h: discount * history_types[h] / history_total[h] for h in history_total}

    vocabulary = sorted(set(unigram_counts) | {SENTENCE_START})
    bigrams = sorted(bigram_counts)
    with atomic_open(path) as f:
        f.write("\\data\\\n")
        f.write(f"ngram 1={len(vocabulary)}\n")
        f.write(f"ngram 2={len(bigrams)}\n\n")
        f.write("\\1-grams:\n")
        for word in vocabulary:
            log_prob = _LOG10_ZERO if word == SENTENCE_START else math.log10(unigram_prob[word])
            line = f"{log_prob:.7f}\t{word}"
            if word in backoff:  # </s> is never a history, so it gets no back-off weight
                line += f"\t{math.log10(backoff[word]):.7f}"
            f.write(line + "\n")
        f.write("\n\\2-grams:\n")
        for history, word in bigrams:
            prob = (bigram_counts[history, word] - discount) / history_total[history] + backoff[history] * unigram_prob[word]
            f.write(f"{math.log10(prob):.7f}\t{history} {word}\n")
        f.write("\n\\end\\\n")
    return {
        "sentences": len(word_lists),
        "tokens": total,
        "unigrams": len(vocabulary),
        "bigrams": len(bigrams),
    }


# --------------------------------------------------------------------------------------------
# Pronunciations


@functools.lru_cache(maxsize=None)
def _cmu_dictionary(path: str) -> Dict[str, Tuple[str, ...]]:
    """word -> its pronunciations (phone strings, in the file's order) from a CMU-format file."""
    entries: Dict[str, List[str]] = collections.defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            # alternative pronunciations are spelled "word(2)", "word(3)", ...
            word = fields[0].split("(", 1)[0] if fields[0].endswith(")") else fields[0]
            entries[word].append(" ".join(fields[1:]))
    return {word: tuple(prons) for word, prons in entries.items()}


# Regular English "-s" ending (plural, third person, possessive): /IH Z/ after a sibilant,
# /S/ after another voiceless consonant, /Z/ otherwise.
_SIBILANTS = frozenset({"S", "Z", "SH", "ZH", "CH", "JH"})
_VOICELESS = frozenset({"P", "T", "K", "F", "TH"})


def _s_suffix(pronunciation: str) -> str:
    last = pronunciation.split()[-1]
    if last in _SIBILANTS:
        return pronunciation + " IH Z"
    if last in _VOICELESS:
        return pronunciation + " S"
    return pronunciation + " Z"


def _derive_s_form(word: str, dictionary: Mapping[str, Tuple[str, ...]]) -> Tuple[str, ...]:
    """Pronunciations of ``word`` as the regular "-s"/"-es"/"-'s" form of a dictionary word; ``()`` if none."""
    candidates = []
    if word.endswith("'s"):
        candidates.append(word[:-2])
    elif word.endswith("es"):
        candidates += [word[:-1], word[:-2]]  # "lemonades" -> "lemonade"; "boxes" -> "box"
    elif word.endswith("s") and not word.endswith("ss"):
        candidates.append(word[:-1])
    for stem in candidates:
        if stem in dictionary:
            prons = tuple(_s_suffix(p) for p in dictionary[stem])
            if stem == word[:-2] and word.endswith("es"):
                # a bare "-es" after the stem is the regular ending only after a sibilant ("box-es");
                # "tomato-es" and the like are left to the caller
                prons = tuple(p for p in prons if p.endswith(" IH Z"))
            if prons:
                return prons
    return ()


def write_pronunciation_dict(
    words: Iterable[str], path: str, derive_s_forms: bool = True, source: Optional[str] = None
) -> List[str]:
    """Write the CMU dictionary entries (all pronunciations) of ``words`` to ``path``.

    Args:
        words: normalised words (lower case, as :func:`normalize_text` gives them); repeats are fine.
        path: output dictionary, pocketsphinx format (``word PH ...``, ``word(2) PH ...``), written
            atomically, words sorted.
        derive_s_forms: a word missing from the dictionary that is the regular ``-s``, ``-es`` or
            ``-'s`` form of a word in it (``lemonades`` from ``lemonade``) gets the stem's
            pronunciations plus /S/, /Z/ or /IH Z/ chosen by the stem's last phone. Without it,
            such words are missing too.
        source: CMU-format dictionary to take the entries from; the one bundled with pocketsphinx
            by default.

    Returns:
        The words whose pronunciations were derived (sorted; empty when all were in the dictionary).

    Raises:
        ValueError: some words have no pronunciation; the message lists them.
    """
    dictionary = _cmu_dictionary(source or _bundled_paths()["dict"])
    wanted = sorted(set(words))
    entries: Dict[str, Tuple[str, ...]] = {}
    derived: List[str] = []
    missing: List[str] = []
    for word in wanted:
        if word in dictionary:
            entries[word] = dictionary[word]
            continue
        prons = _derive_s_form(word, dictionary) if derive_s_forms else ()
        if prons:
            entries[word] = prons
            derived.append(word)
        else:
            missing.append(word)
    if missing:
        shown = ", ".join(repr(w) for w in missing[:50]) + (" ..." if len(missing) > 50 else "")
        raise ValueError(f"{len(missing)} word(s) have no pronunciation in the CMU dictionary: {shown}")
    if not entries:
        raise ValueError("no words to write a pronunciation dictionary for")
    with atomic_open(path) as f:
        for word in wanted:
            for index, pronunciation in enumerate(entries[word]):
                name = word if index == 0 else f"{word}({index + 1})"
                f.write(f"{name} {pronunciation}\n")
    return derived


# --------------------------------------------------------------------------------------------
# Recogniser


class PocketsphinxRecognizer:
    """pocketsphinx's US English acoustic model with a given (or the bundled) LM and dictionary.

    Build it with :meth:`from_sentences` (our bigram LM; the usual way) or directly from an ARPA
    or binary LM and a dictionary. ``PocketsphinxRecognizer()`` uses the bundled general English
    LM and full CMU dictionary.

    Noise floor. espeak-ng speech holds stretches of exact digital silence (about 12% of the
    samples of our target audio). Their log energies lie far below anything in the acoustic
    model's training recordings, which all have some background noise: they drag the cepstral mean
    and match neither silence nor speech models, and most words get deleted. So before decoding we
    add white Gaussian noise ``noise_snr_db`` below the utterance's RMS level (30 dB: the best of
    25/30/35 dB on the dev split of ``results/synthetic_tiny`` with its train-split bigram LM,
    where it brings the WER from 73% to 25%). The floor is relative, so the recogniser stays
    insensitive to the input's gain, and it is the same for reference and vocoded audio. It never
    goes below -80 dBFS, so that silent input decodes to nothing rather than to a hallucinated
    word. Its generator is re-seeded for every utterance: the same input always gets the same noise.

    Decoding is deterministic and independent of what was decoded before: the feature extraction
    (including cepstral mean normalisation, whose running mean pocketsphinx otherwise carries from
    one utterance to the next) is re-initialised for each utterance, and the mean is computed over
    the whole utterance ("batch" CMN), which suits offline decoding of complete sentences.

    Not thread-safe (one pocketsphinx decoder); make one recogniser per process or thread.

    Attributes:
        lm_path, dict_path: the files loaded (``None`` after :meth:`from_sentences` without a
            ``work_dir``: they were temporary).
        lm_counts: :func:`write_bigram_arpa`'s counts when built by :meth:`from_sentences`, else ``None``.
        derived_pronunciations: words whose pronunciation :meth:`from_sentences` derived (see
            :func:`write_pronunciation_dict`).
    """

    def __init__(
        self,
        lm_path: Optional[str] = None,
        dict_path: Optional[str] = None,
        decoder_options: Optional[Mapping[str, Any]] = None,
        noise_snr_db: Optional[float] = DEFAULT_NOISE_SNR_DB,
    ) -> None:
        """
        Args:
            lm_path: ARPA (text) or pocketsphinx binary LM; ``None``: the bundled general English LM.
            dict_path: pronunciation dictionary; ``None``: the bundled CMU dictionary.
            noise_snr_db: level of the added noise floor below the utterance's RMS, in dB (see the
                class docstring); ``None``: add none.
            decoder_options: extra pocketsphinx configuration (``lw``, ``beam``, ``loglevel``, ...),
                applied over ours.

        Raises:
            FileNotFoundError: ``lm_path`` or ``dict_path`` does not exist.
            RuntimeError: pocketsphinx could not load them.
        """
        ps = _pocketsphinx()
        bundled = _bundled_paths()
        self.noise_snr_db = noise_snr_db
        self.lm_path: Optional[str] = lm_path or bundled["lm"]
        self.dict_path: Optional[str] = dict_path or bundled["dict"]
        self.lm_counts: Optional[Dict[str, int]] = None
        self.derived_pronunciations: List[str] = []
        for kind, file in (("language model", self.lm_path), ("pronunciation dictionary", self.dict_path)):
            if not os.path.isfile(file):
                raise FileNotFoundError(f"{kind} not found: {file}")
        options: Dict[str, Any] = {
            "hmm": bundled["hmm"],
            "lm": self.lm_path,
            "dict": self.dict_path,
            "samprate": SAMPLE_RATE,
            "cmn": "batch",
            # pocketsphinx's own dither draws from an unseeded generator; our noise floor replaces it
            "dither": False,
            # pocketsphinx prints its whole configuration and per-utterance statistics on stderr;
            # errors still reach the caller as exceptions
            "loglevel": "FATAL",
        }
        options.update(decoder_options or {})
        try:
            self._decoder = ps.Decoder(**options)
        except (RuntimeError, ValueError) as e:
            raise RuntimeError(
                f"pocketsphinx could not load lm={self.lm_path} dict={self.dict_path} ({e}); "
                "pass decoder_options={'loglevel': 'ERROR'} to see its messages"
            ) from None

    @classmethod
    def from_sentences(
        cls,
        sentences: Iterable[str],
        work_dir: Optional[str] = None,
        decoder_options: Optional[Mapping[str, Any]] = None,
        noise_snr_db: Optional[float] = DEFAULT_NOISE_SNR_DB,
    ) -> "PocketsphinxRecognizer":
        """A recogniser whose LM and dictionary are built from ``sentences`` (training-side English).

        Args:
            sentences: raw English sentences.
            work_dir: where to keep ``lm.arpa`` and ``lm.dict``; a temporary folder (removed once
                pocketsphinx has read them) by default.
            decoder_options, noise_snr_db: as for the constructor.

        Raises:
            ValueError: no words, or words without a pronunciation (see :func:`write_pronunciation_dict`).
        """
        sentences = list(sentences)
        vocabulary = {w for words in _sentence_words(sentences) for w in words}
        with tempfile.TemporaryDirectory(prefix="echostream-asr-") as temp:
            folder = work_dir or temp
            lm_path, dict_path = os.path.join(folder, "lm.arpa"), os.path.join(folder, "lm.dict")
            lm_counts = write_bigram_arpa(sentences, lm_path)
            derived = write_pronunciation_dict(vocabulary, dict_path)
            recognizer = cls(lm_path, dict_path, decoder_options, noise_snr_db)
        recognizer.lm_counts = lm_counts
        recognizer.derived_pronunciations = derived
        if work_dir is None:  # the files are gone; the decoder holds what it read from them
            recognizer.lm_path = recognizer.dict_path = None
        return recognizer

    def transcribe(self, waveform: Waveform, sample_rate: int) -> str:
        """Recognise one utterance.

        Args:
            waveform: ``[num_samples]`` (or ``[1, num_samples]`` / ``[num_samples, 1]``) float
                samples in [-1, 1], mono. Peaks up to 2 are clipped (vocoders overshoot a little);
                larger ones are refused.
            sample_rate: rate of ``waveform``; resampled to 16 kHz if different.

        Returns:
            The recognised words, normalised like the references; ``""`` when nothing was recognised.

        Raises:
            ValueError: empty, multichannel, non-finite or int16-scale audio; a sample rate that
                is not an integer >= 8000.
            TypeError: not a float tensor/array.
        """
        samples = _as_16k_mono(waveform, sample_rate)
        if self.noise_snr_db is not None:
            rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
            noise = np.random.default_rng(_NOISE_SEED).standard_normal(samples.shape[0])
            level = max(rms * 10.0 ** (-self.noise_snr_db / 20.0), _MIN_NOISE_RMS)
            samples = np.clip(samples + level * noise, -1.0, 1.0)
        pcm = np.clip(np.round(samples * _INT16_SCALE), -32768, 32767).astype("<i2").tobytes()
        decoder = self._decoder
        decoder.reinit_feat()  # forget the previous utterance's cepstral mean (see the class docstring)
        decoder.start_utt()
        decoder.process_raw(pcm, no_search=False, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return normalize_text(hypothesis.hypstr) if hypothesis is not None else ""


def _as_16k_mono(waveform: Waveform, sample_rate: int) -> np.ndarray:
    """Validated ``[num_samples]`` float32 at 16 kHz clipped to [-1, 1]."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise ValueError(f"sample_rate must be an integer number of Hz, got {sample_rate!r}")
    if sample_rate < _MIN_SAMPLE_RATE:
        raise ValueError(f"sample_rate {sample_rate} Hz is too low for speech recognition (need >= {_MIN_SAMPLE_RATE} Hz)")
    if isinstance(waveform, torch.Tensor):
        if not waveform.is_floating_point():
            raise TypeError(f"waveform must hold float samples in [-1, 1], got a {waveform.dtype} tensor")
        samples = waveform.detach().to("cpu", torch.float32).numpy()
    elif isinstance(waveform, np.ndarray):
        if not np.issubdtype(waveform.dtype, np.floating):
            raise TypeError(f"waveform must hold float samples in [-1, 1], got a {waveform.dtype} array")
        samples = waveform.astype(np.float32, copy=False)
    else:
        raise TypeError(f"waveform must be a torch.Tensor or numpy.ndarray, got {type(waveform).__name__}")
    if samples.ndim == 2 and 1 in samples.shape:
        samples = samples.reshape(-1)
    if samples.ndim != 1:
        raise ValueError(f"waveform must be mono [num_samples], got shape {list(samples.shape)}")
    if samples.size == 0:
        raise ValueError("waveform is empty")
    if not np.isfinite(samples).all():
        raise ValueError("waveform contains NaN or inf samples")
    peak = float(np.abs(samples).max())
    if peak > _MAX_PEAK:
        raise ValueError(f"waveform peak {peak:g} is far outside [-1, 1]: pass float samples, not int16-scale values")
    if sample_rate != SAMPLE_RATE:
        # the same resampler as echostream_fairseq.data.audio.read_audio
        samples = AF.resample(torch.from_numpy(np.ascontiguousarray(samples)), int(sample_rate), SAMPLE_RATE).numpy()
    return np.clip(samples, -1.0, 1.0)


# --------------------------------------------------------------------------------------------
# Scoring


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate in percent: total word edit distance / total reference words * 100.

    Both sides are normalised with :func:`normalize_text` first, so case and punctuation do not count.

    Raises:
        ValueError: the lists differ in length, or the references have no words.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    errors = words = 0
    for reference, hypothesis in zip(references, hypotheses):
        ref_words, hyp_words = normalize_text(reference).split(), normalize_text(hypothesis).split()
        errors += edit_distance(ref_words, hyp_words)
        words += len(ref_words)
    if words == 0:
        raise ValueError("the references have no words: the word error rate is undefined")
    return 100.0 * errors / words


def evaluate_wavs(
    wav_paths: Sequence[str], references: Sequence[str], recognizer: PocketsphinxRecognizer
) -> Dict[str, Any]:
    """Transcribe audio files and score them against their reference text.

    Args:
        wav_paths: audio files (anything :func:`read_audio` reads; resampled to 16 kHz, downmixed).
        references: raw reference text, one per file.
        recognizer: the recogniser to use.

    Returns:
        ``{"wer", "errors", "reference_words", "utterances", "sentence_errors", "audio_seconds",
        "decode_seconds", "seconds_per_utterance", "real_time_factor", "hypotheses"}``: corpus WER
        in percent, word edit operations, reference words, files, files with at least one error,
        total audio duration, total wall-clock decoding time (reading files excluded), its mean per
        file, decode time / audio time, and the normalised transcripts in input order.

    Raises:
        ValueError: the lists differ in length or are empty.
        echostream_fairseq.data.audio.AudioError: a file cannot be read.
    """
    if len(wav_paths) != len(references):
        raise ValueError(f"{len(wav_paths)} audio files but {len(references)} references")
    if not wav_paths:
        raise ValueError("no audio files to evaluate")
    hypotheses: List[str] = []
    audio_seconds = decode_seconds = 0.0
    errors = words = wrong_sentences = 0
    for path, reference in zip(wav_paths, references):
        waveform = read_audio(path, SAMPLE_RATE)
        audio_seconds += waveform.numel() / SAMPLE_RATE
        start = time.perf_counter()
        hypothesis = recognizer.transcribe(waveform, SAMPLE_RATE)
        decode_seconds += time.perf_counter() - start
        hypotheses.append(hypothesis)
        ref_words = normalize_text(reference).split()
        distance = edit_distance(ref_words, hypothesis.split())
        errors += distance
        words += len(ref_words)
        wrong_sentences += distance > 0
    return {
        "wer": word_error_rate(references, hypotheses),
        "errors": errors,
        "reference_words": words,
        "utterances": len(hypotheses),
        "sentence_errors": wrong_sentences,
        "audio_seconds": audio_seconds,
        "decode_seconds": decode_seconds,
        "seconds_per_utterance": decode_seconds / len(hypotheses),
        "real_time_factor": decode_seconds / audio_seconds if audio_seconds > 0 else float("nan"),
        "hypotheses": hypotheses,
    }
