"""Offline English speech recognition with pocketsphinx, for word error rate and ASR-BLEU.

Why pocketsphinx: it runs on a CPU without downloads, and its wheel ships a US English acoustic
model, a general English trigram model and the CMU pronunciation dictionary
(:mod:`~echostream_fairseq.evaluation.pocketsphinx_model`). Its general model does poorly on
espeak-ng's formant speech, so for our corpora :meth:`PocketsphinxRecognizer.from_sentences`
builds a closed-vocabulary word bigram model from the training side's English text
(:mod:`~echostream_fairseq.evaluation.lm`) and a pronunciation dictionary restricted to its words
(:mod:`~echostream_fairseq.evaluation.pronunciations`). The recogniser then only knows the
training vocabulary: that is a property of the measurement, which compares speech *renderings*
of the same text (reference audio against vocoded audio), not an open-vocabulary ASR.

Transcripts are normalised with :func:`echostream_fairseq.data.text.normalize_text` (lower case,
no punctuation, apostrophes only inside words), the normalisation used for every other text of
the project.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np

from echostream_fairseq.common.audio import SAMPLE_RATE, Waveform, mono_float32, resample
from echostream_fairseq.data.text import normalize_text
from echostream_fairseq.evaluation.lm import sentence_words, write_bigram_arpa
from echostream_fairseq.evaluation.pocketsphinx_model import bundled_paths, import_pocketsphinx
from echostream_fairseq.evaluation.pronunciations import write_pronunciation_dict

__all__ = ["DEFAULT_NOISE_SNR_DB", "PocketsphinxRecognizer"]

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
        ps = import_pocketsphinx()
        bundled = bundled_paths()
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
        vocabulary = {w for words in sentence_words(sentences) for w in words}
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
    """Validated ``[num_samples]`` float32 at 16 kHz clipped to [-1, 1].

    Stricter than :func:`~echostream_fairseq.common.audio.mono_float32` alone: the rate must be
    an integer the acoustic model can use, and non-finite or int16-scale samples are refused
    rather than decoded into a misleading transcript.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise ValueError(f"sample_rate must be an integer number of Hz, got {sample_rate!r}")
    if sample_rate < _MIN_SAMPLE_RATE:
        raise ValueError(
            f"sample_rate {sample_rate} Hz is too low for speech recognition (need >= {_MIN_SAMPLE_RATE} Hz)"
        )
    samples = mono_float32(waveform)
    if not bool(samples.isfinite().all()):
        raise ValueError("waveform contains NaN or inf samples")
    peak = float(samples.abs().max())
    if peak > _MAX_PEAK:
        raise ValueError(f"waveform peak {peak:g} is far outside [-1, 1]: pass float samples, not int16-scale values")
    # the same resampler as echostream_fairseq.data.audio.read_audio
    return resample(samples, sample_rate, SAMPLE_RATE).clamp(-1.0, 1.0).numpy()
