"""Scoring one long output against the sentences of its stream, as long-form work does.

The system writes one long text (words with the stream time at which each was written); the
reference is the list of the stream's sentences with their start and end times. Scoring:

* :func:`resegment`: the hypothesis is cut into as many pieces as there are reference sentences
  by minimising WER against them (``mweralign``, the Python successor of mwerSegmenter);
* :func:`longform_scores`: sacreBLEU of the pieces (text normalised as everywhere in the
  project), the share of reference sentences whose piece is not empty, StreamLAAL (LAAL per
  piece with the delays taken from the reference sentence's start and its duration as the
  source length, averaged over non-empty pieces; FBK's ``simulstream`` definition) and each
  sentence's lag: when its last word was written, behind the end of its source speech;
* :func:`lag_trend`: whether that lag grows along the stream, with bootstrap intervals.

Delays are seconds of stream time; a computation-aware delay is when the word would be out had
the audio arrived in real time (each chunk waits for its audio and for the chunk before it).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence

from echostream_fairseq.data.text import normalize_text

__all__ = ["TimedWord", "ReferenceSentence", "resegment", "laal", "longform_scores", "boundary_scores", "lag_trend"]


@dataclass(frozen=True)
class TimedWord:
    word: str
    delay: float  # stream seconds read when the word was written
    computation_aware_delay: float


@dataclass(frozen=True)
class ReferenceSentence:
    text: str
    start: float
    end: float


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """mweralign's C++ core reports its WER on file descriptor 2; keep it off the caller's output."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def resegment(words: Sequence[str], references: Sequence[str]) -> List[List[int]]:
    """Indices of ``words`` that fall into each reference sentence's piece (minimum-WER alignment).

    Words are normalised first; a word that normalises to nothing joins no piece.
    """
    from mweralign import mweralign

    if not references:
        raise ValueError("resegment: no reference sentences")
    kept = [i for i, w in enumerate(words) if normalize_text(w)]
    hypothesis = " ".join(normalize_text(words[i]) for i in kept)
    refs = "\n".join(normalize_text(r) or "-" for r in references)
    if hypothesis:
        with _quiet_stderr():
            pieces = mweralign.align_texts(refs, hypothesis).split("\n")
    else:
        pieces = [""] * len(references)
    if len(pieces) != len(references):
        raise RuntimeError(f"mweralign returned {len(pieces)} pieces for {len(references)} reference sentences")
    out, position = [], 0
    for piece in pieces:
        n = len(piece.split())
        out.append(kept[position : position + n])
        position += n
    if position != len(kept):
        raise RuntimeError(f"mweralign's pieces hold {position} words, the hypothesis {len(kept)}")
    return out


def laal(delays: Sequence[float], source_length: float, reference_length: int) -> float:
    """Length-adaptive average lagging of one sentence (delays from the sentence's start)."""
    if not delays:
        raise ValueError("laal: no delays")
    if delays[0] > source_length:
        return delays[0]
    rate = max(len(delays), reference_length) / source_length
    total, counted = 0.0, 0
    for i, d in enumerate(delays):
        total += d - i / rate
        counted = i + 1
        if d >= source_length:
            break
    return total / counted


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def longform_scores(words: Sequence[TimedWord], references: Sequence[ReferenceSentence]) -> Dict[str, object]:
    """BLEU after resegmentation, coverage, StreamLAAL (plain and computation-aware) and per-sentence lags."""
    import sacrebleu

    pieces = resegment([w.word for w in words], [r.text for r in references])
    hyps = [" ".join(normalize_text(words[i].word) for i in piece) for piece in pieces]
    refs = [normalize_text(r.text) for r in references]
    bleu = float(sacrebleu.corpus_bleu(hyps, [refs]).score)
    laals, ca_laals, lags = [], [], []
    for piece, ref, ref_text in zip(pieces, references, refs):
        if not piece:
            lags.append(None)
            continue
        duration = max(ref.end - ref.start, 1e-3)
        n_ref = len(ref_text.split())
        laals.append(laal([words[i].delay - ref.start for i in piece], duration, n_ref))
        ca_laals.append(laal([words[i].computation_aware_delay - ref.start for i in piece], duration, n_ref))
        lags.append(words[piece[-1]].delay - ref.end)
    covered = sum(1 for p in pieces if p)
    return {
        "bleu": bleu,
        "sentences": len(references),
        "covered": covered,
        "coverage": covered / len(references),
        "stream_laal": _mean(laals),
        "stream_laal_ca": _mean(ca_laals),
        "lags": lags,
        "hypotheses": hyps,
    }


def boundary_scores(
    end_times: Sequence[float], references: Sequence[ReferenceSentence], early: float = 0.32, late: float = 0.5
) -> Dict[str, float]:
    """How well the system's sentence ends (stream seconds at which each was decided) match the
    reference sentences.

    An end is *on a boundary* if it falls at most ``early`` seconds before a sentence's source end
    (one 320 ms chunk: the chunk holding the last syllable) and at most ``late`` seconds after the
    next sentence starts (a streaming decision may wait for the next onset), or after the last
    sentence's end; ends elsewhere split a sentence. ``precision``: the share of ends on a
    boundary; ``recall``: the share of the boundaries between sentences that got an end;
    ``delay``: the mean time from a sentence's source end to the first end decided for it (may be
    negative); ``splits``: ends inside sentences.
    """
    windows = [(r.end - early, nxt.start + late) for r, nxt in zip(references, references[1:])]
    last_end = references[-1].end - early if references else float("inf")
    hit: List[Optional[float]] = [None] * len(windows)
    on = 0
    for t in end_times:
        if t > last_end:  # the last sentence's end, decided before the stream finished
            on += 1
            continue
        for i, (lo, hi) in enumerate(windows):
            if lo < t <= hi:
                on += 1
                hit[i] = t if hit[i] is None else hit[i]
                break
    delays = [t - references[i].end for i, t in enumerate(hit) if t is not None]
    return {
        "precision": on / len(end_times) if end_times else float("nan"),
        "recall": sum(t is not None for t in hit) / len(windows) if windows else float("nan"),
        "delay": _mean(delays),
        "splits": len(end_times) - on,
    }


def lag_trend(
    ends: Sequence[float], lags: Sequence[float], window: float = 60.0, resamples: int = 2000, seed: int = 0
) -> Dict[str, object]:
    """Whether the lag grows along the stream, with the uncertainty that a few sentences a minute
    leave: the mean lag of the sentences ending in the first ``window`` seconds and in the
    ``window`` seconds before the last sentence's end, their difference, and the least-squares
    slope of lag against end time (seconds per minute); the difference and the slope with a 95%
    bootstrap interval (``resamples`` draws of the sentences with replacement, seeded).

    ``ends``: each sentence's source end (stream seconds); ``lags``: its lag (seconds).
    """
    import numpy as np

    if len(ends) != len(lags):
        raise ValueError(f"{len(ends)} sentence ends but {len(lags)} lags")
    ends_a, lags_a = np.asarray(ends, dtype=float), np.asarray(lags, dtype=float)
    last_start = ends_a.max() - window if len(ends_a) else 0.0
    first, last = lags_a[ends_a < window], lags_a[ends_a > last_start]

    def slope(x, y) -> float:
        return float(60.0 * np.polyfit(x, y, 1)[0]) if len(x) > 2 and np.ptp(x) > 0 else float("nan")

    rng = np.random.default_rng(seed)
    differences, slopes = [], []
    for _ in range(resamples):
        if len(first) and len(last):
            differences.append(rng.choice(last, len(last)).mean() - rng.choice(first, len(first)).mean())
        pick = rng.integers(0, len(ends_a), len(ends_a))
        slopes.append(slope(ends_a[pick], lags_a[pick]))

    def interval(values) -> Optional[List[float]]:
        values = [v for v in values if v == v]
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if values else None

    return {
        "first": float(first.mean()) if len(first) else None,
        "last": float(last.mean()) if len(last) else None,
        "difference": float(last.mean() - first.mean()) if len(first) and len(last) else None,
        "difference_ci": interval(differences),
        "slope_per_minute": slope(ends_a, lags_a),
        "slope_ci": interval(slopes),
        "first_sentences": int(len(first)),
        "last_sentences": int(len(last)),
    }
