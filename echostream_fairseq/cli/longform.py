"""``echostream-longform``: translate long-form streams continuously and score them as long-form work does.

::

    echostream-longform --model-path CKPT --data-bin DATA --streams STREAMS --out OUT \\
        [--names stream_1min stream_10min] [--source-segment-size 320] [--sentence-level] [agent flags]

``STREAMS`` is a folder written by ``echostream-prep longform``. Each stream is fed to the
speech-to-text translator chunk by chunk as one recording (no reset by the caller); the written
words, with the stream time of each, are resegmented against the stream's sentences and scored
(:mod:`echostream_fairseq.evaluation.longform`). ``--sentence-level`` also translates every
sentence of the stream alone, with the same settings, for the ratio the long-form score is judged
by. Every flag of the agents (``--sentence-pause-ms``, ``--reencode``, ``--threads``, ...) applies.

Writes ``OUT/{name}.json`` (scores, per-sentence lags, the sentence ends against the reference
boundaries, per-chunk compute, state size) and ``OUT/{name}.words.tsv``; prints the tables. Beside
StreamLAAL it reports OmniSTEval's LongYAAL (ideal and computation-aware), and writes the files its
``omnisteval longform`` command reads (:mod:`echostream_fairseq.evaluation.omnisteval_bridge`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings
from typing import Dict, List, Optional

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from echostream_fairseq.streaming.options import add_translator_args

    p = argparse.ArgumentParser(prog="echostream-longform", description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", required=True, help="folder made by echostream-prep longform")
    p.add_argument("--names", nargs="+", default=None, help="streams to run (default: all in streams.source)")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--sentence-level", action="store_true", help="also translate each sentence alone")
    p.add_argument(
        "--speech-output",
        action="store_true",
        help="speech-to-speech: write OUT/{name}.wav and score its pocketsphinx transcript (ASR-BLEU, "
        "resegmented); needs the vocoder flags",
    )
    add_translator_args(p, speech_output=True, source_segment_size=True)
    return p


def _state_bytes(state) -> int:
    """Bytes a translator state holds: its tensors, plus 8 per token of its token tuples."""
    import dataclasses

    import torch

    seen = set()

    def walk(x) -> int:
        if isinstance(x, torch.Tensor):
            if id(x) in seen:
                return 0
            seen.add(id(x))
            return x.numel() * x.element_size()
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return sum(walk(getattr(x, f.name)) for f in dataclasses.fields(x))
        if isinstance(x, (list, tuple)):
            return sum(walk(v) for v in x) + (8 * len(x) if x and isinstance(x[0], int) else 0)
        return 0

    return walk(state)


def translate_stream(translator, path: str, chunk_ms: int):
    """Run one recording through ``translator``.

    Returns the timed words, the per-chunk records, the output speech as it would play live
    (each piece from when it is ready, or after the piece before it), and the speech of each
    sentence the system ended, without those waits.
    """
    import psutil
    import torch

    from echostream_fairseq.common.audio import SAMPLE_RATE
    from echostream_fairseq.data.audio import read_audio
    from echostream_fairseq.data.text import split_complete_words
    from echostream_fairseq.evaluation.longform import TimedWord

    audio = read_audio(path)
    rate = SAMPLE_RATE
    chunk = rate * chunk_ms // 1000
    state = translator.initial_state(rate)
    words: List[TimedWord] = []
    speech: List = []
    played = 0  # samples of output speech so far
    spoken: List[List] = [[]]
    pending: List[int] = []
    chunks = []
    clock = 0.0  # when the previous chunk's processing ended, had the audio arrived in real time
    for start in range(0, audio.numel(), chunk):
        finish = start + chunk >= audio.numel()
        began = time.perf_counter()
        out, state = translator.step(audio[start : start + chunk], state, finish=finish)
        seconds = time.perf_counter() - began
        now = min(start + chunk, audio.numel()) / rate
        clock = max(clock, now) + seconds  # a chunk waits for its audio and for the chunk before
        done, pending = split_complete_words(
            translator.dictionaries.target, pending + out.target_tokens, finish or out.sentence_end
        )
        words += [TimedWord(w, now, clock) for w in done]
        if out.audio.numel():
            silence = int(now * rate) - played
            if silence > 0:
                speech.append(torch.zeros(silence))
                played += silence
            speech.append(out.audio)
            played += out.audio.numel()
            spoken[-1].append(out.audio)
        if out.sentence_end:
            spoken.append([])
        chunks.append({"time": round(now, 3), "seconds": seconds, "sentence_end": out.sentence_end})
        if len(chunks) % 250 == 1 or finish:
            chunks[-1]["state_bytes"] = _state_bytes(state)
            chunks[-1]["rss_mib"] = psutil.Process().memory_info().rss / 2**20
    track = torch.cat(speech) if speech else torch.zeros(0)
    return words, chunks, track, [torch.cat(p) for p in spoken if p]


def _hear(recognizer, speech) -> str:
    """The recogniser's transcript of a piece of speech with 0.3 s of silence either side (without
    a lead-in, pocketsphinx's first words suffer; SimulEval's speech tracks start with silence)."""
    import torch

    from echostream_fairseq.common.audio import SAMPLE_RATE

    pad = torch.zeros(int(0.3 * SAMPLE_RATE))
    return recognizer.transcribe(torch.cat([pad, speech, pad]).numpy(), SAMPLE_RATE)


def _asr_bleu(recognizer, sentences, references) -> Dict[str, float]:
    """Resegmented BLEU of the recogniser's transcript of the output speech, heard one system
    sentence at a time without the waits between its pieces (as a sentence-level run is heard)."""
    from echostream_fairseq.evaluation.longform import TimedWord, longform_scores

    transcript = []
    for piece in sentences:
        transcript += _hear(recognizer, piece).split()

    scores = longform_scores([TimedWord(w, 0.0, 0.0) for w in transcript], references)
    return {"asr_bleu": scores["bleu"], "asr_coverage": scores["coverage"]}


def _minute_cost(chunks, minute: int) -> Optional[float]:
    times = [c["seconds"] for c in chunks if minute * 60 <= c["time"] < (minute + 1) * 60]
    return 1000 * statistics.median(times) if times else None


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    from echostream_fairseq.data.longform import read_stream_sentences
    from echostream_fairseq.evaluation.longform import ReferenceSentence, boundary_scores, lag_trend, longform_scores
    from echostream_fairseq.evaluation.omnisteval_bridge import long_yaal, write_omnisteval_inputs
    from echostream_fairseq.streaming.loading import translator_from_args

    names = args.names
    if names is None:
        with open(os.path.join(args.streams, "streams.source"), encoding="utf-8") as f:
            names = [os.path.splitext(os.path.basename(line.strip()))[0] for line in f if line.strip()]
    for name in names:
        if not os.path.isfile(os.path.join(args.streams, f"{name}.tsv")):
            print(
                f"error: {args.streams}/{name}.tsv: no such stream (made by echostream-prep longform?)", file=sys.stderr
            )
            return 2
    recognizer = None
    try:
        translator = translator_from_args(args, speech_output=args.speech_output)
        if args.speech_output:
            from echostream_fairseq.data.manifest import read_tsv
            from echostream_fairseq.evaluation.recognizer import PocketsphinxRecognizer

            train = read_tsv(os.path.join(args.data_bin, "text", "train.tsv"), ("id", "tgt_text"))
            recognizer = PocketsphinxRecognizer.from_sentences([r["tgt_text"] for r in train])
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    rows: List[Dict[str, object]] = []
    for name in names:
        table = read_stream_sentences(os.path.join(args.streams, f"{name}.tsv"))
        refs = [ReferenceSentence(s.tgt_text, s.start, s.end) for s in table]
        words, chunks, speech, spoken = translate_stream(
            translator, os.path.join(args.streams, f"{name}.wav"), args.source_segment_size
        )
        scores = longform_scores(words, refs)
        wav = os.path.join(args.streams, f"{name}.wav")
        write_omnisteval_inputs(args.out, name, wav, words, refs)  # omnisteval longform reads these
        omni = long_yaal(words, refs)
        lags = [(s.end, lag) for s, lag in zip(table, scores["lags"]) if lag is not None]
        last_minute = int(table[-1].end // 60)
        trend = lag_trend([e for e, _ in lags], [g for _, g in lags])
        record = {
            "name": name,
            "chunk_ms": args.source_segment_size,
            "words": len(words),
            **omni,
            **{k: v for k, v in scores.items() if k not in ("hypotheses",)},
            "lag_first_minute": trend["first"],
            # least-squares slope of the lag against where the sentence ends (seconds per minute)
            "lag_slope_per_minute": trend["slope_per_minute"],
            "lag_last_minute": trend["last"],
            "lag_trend": trend,
            "ms_per_chunk_first_minute": _minute_cost(chunks, 0),
            "ms_per_chunk_last_minute": _minute_cost(chunks, max(0, last_minute - 1)),
            "sentence_ends": sum(c["sentence_end"] for c in chunks),
            "boundaries": boundary_scores([c["time"] for c in chunks if c["sentence_end"]], refs),
            "state_bytes": [(c["time"], c["state_bytes"]) for c in chunks if "state_bytes" in c],
            "rss_mib": [(c["time"], round(c["rss_mib"], 1)) for c in chunks if "rss_mib" in c],
            "ms_per_chunk_by_minute": [_minute_cost(chunks, m) for m in range(last_minute + 1)],
            "hypotheses": scores["hypotheses"],
        }
        if recognizer is not None:
            from echostream_fairseq.data.audio import write_wav

            write_wav(os.path.join(args.out, f"{name}.wav"), speech.clamp(-1, 1))
            record.update(_asr_bleu(recognizer, spoken, refs))
        if args.sentence_level:
            import sacrebleu

            from echostream_fairseq.data.text import normalize_text

            alone, heard = [], []
            for s in table:
                sentence_words, _, _, sentence_speech = translate_stream(
                    translator,
                    os.path.join(args.streams, "sentences", f"{name}_{s.index:04d}.wav"),
                    args.source_segment_size,
                )
                alone.append(" ".join(normalize_text(w.word) for w in sentence_words))
                if recognizer is not None:
                    heard.append(" ".join(normalize_text(_hear(recognizer, p)) for p in sentence_speech))
            sentence_refs = [[normalize_text(s.tgt_text) for s in table]]
            record["sentence_level_bleu"] = float(sacrebleu.corpus_bleu(alone, sentence_refs).score)
            if recognizer is not None:
                record["sentence_level_asr_bleu"] = float(sacrebleu.corpus_bleu(heard, sentence_refs).score)
        with open(os.path.join(args.out, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
        with open(os.path.join(args.out, f"{name}.words.tsv"), "w", encoding="utf-8") as f:
            f.write("word\tdelay\tcomputation_aware_delay\n")
            f.writelines(f"{w.word}\t{w.delay:.3f}\t{w.computation_aware_delay:.3f}\n" for w in words)
        rows.append(record)
    print(
        "| stream | sentences | BLEU (resegmented) | sentence-level BLEU | ratio | covered | StreamLAAL (s) "
        "| StreamLAAL CA (s) | LongYAAL (s) | LongYAAL CA (s) | lag min 1 / last (s) | ms/chunk min 1 / last "
        "| state KiB first / last |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        level = r.get("sentence_level_bleu")
        ratio = f"{r['bleu'] / level:.2f}" if level else "-"
        state = r["state_bytes"]
        print(
            f"| {r['name']} | {r['sentences']} | {r['bleu']:.1f} | {level if level is None else round(level, 1)} "
            f"| {ratio} | {r['coverage']:.0%} | {r['stream_laal']:.2f} | {r['stream_laal_ca']:.2f} "
            f"| {_num(r['long_yaal'])} | {_num(r['long_yaal_ca'])} "
            f"| {r['lag_first_minute'] or float('nan'):.2f} / {r['lag_last_minute'] or float('nan'):.2f} "
            f"| {r['ms_per_chunk_first_minute']:.1f} / {r['ms_per_chunk_last_minute']:.1f} "
            f"| {state[0][1] / 1024:.0f} / {state[-1][1] / 1024:.0f} |"
        )
    print(
        "\n| stream | sentence ends | on a boundary | boundaries found | delay after the source end (s) |\n"
        "|---|---|---|---|---|"
    )
    for r in rows:
        b = r["boundaries"]
        print(f"| {r['name']} | {r['sentence_ends']} | {b['precision']:.0%} | {b['recall']:.0%} | {b['delay']:.2f} |")
    print(
        "\n| stream | lag, first minute (s) | last minute (s) | last - first (95% CI) "
        "| slope, s per minute (95% CI) |\n"
        "|---|---|---|---|---|"
    )
    for r in rows:
        t = r["lag_trend"]
        diff, slope = t["difference_ci"], t["slope_ci"]
        print(
            f"| {r['name']} | {_num(t['first'])} ({t['first_sentences']}) | {_num(t['last'])} ({t['last_sentences']}) "
            f"| {_num(t['difference'], signed=True)} ({_interval(diff)}) "
            f"| {_num(t['slope_per_minute'], 4, signed=True)} ({_interval(slope, 4)}) |"
        )
    if recognizer is not None:
        print(
            "\n| stream | ASR-BLEU (resegmented) | ASR-BLEU, each sentence alone | ratio | sentences heard |\n"
            "|---|---|---|---|---|"
        )
        for r in rows:
            level = r.get("sentence_level_asr_bleu")
            ratio = f"{r['asr_bleu'] / level:.2f}" if level else "-"
            print(
                f"| {r['name']} | {r['asr_bleu']:.1f} | {level if level is None else round(level, 1)} | {ratio} "
                f"| {r['asr_coverage']:.0%} |"
            )
    return 0


def _num(x, digits: int = 3, signed: bool = False) -> str:
    return "-" if x is None or x != x else f"{x:{'+' if signed else ''}.{digits}f}"


def _interval(ci, digits: int = 3) -> str:
    return "-" if ci is None else f"{ci[0]:+.{digits}f} to {ci[1]:+.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
