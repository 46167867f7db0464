"""Word error rate: of transcripts against references, and of audio files through a recogniser.

Both sides are normalised with :func:`echostream_fairseq.data.text.normalize_text` first, so case
and punctuation do not count; the word edit distance is
:func:`echostream_fairseq.data.text.edit_distance`.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Sequence

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.data.audio import read_audio
from echostream_fairseq.data.text import edit_distance, normalize_text
from echostream_fairseq.evaluation.recognizer import PocketsphinxRecognizer

__all__ = ["word_error_rate", "evaluate_wavs"]


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
