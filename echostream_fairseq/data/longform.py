"""Long-form test streams: many held-out sentences in one recording (``echostream-prep longform``).

A stream is one 16 kHz wav of source sentences separated by pauses, with the speaker's voice
changing now and then, plus the reference list of what was said when. The sentences are drawn
from the synthetic grammar and are none of the corpus's own (its ``text/*.tsv`` sentences are
excluded, train's included), so a model trained on the corpus has never seen them. Each stream
writes, in ``OUT``:

=========================== ==========================================================
``{name}.wav``              the stream (``name`` = ``stream_{minutes}min``)
``{name}.tsv``              one row per sentence: ``index, start, end, voice, src_text, tgt_text``
                            (``start``/``end``: seconds where the sentence's speech begins and ends)
``{name}.target``           the reference translation as one line (the SimulEval target)
``sentences/{name}_{i}.wav`` each sentence alone, for the sentence-level run of the same speech
``{name}_sentences.source`` / ``.target``: SimulEval lists of those
=========================== ==========================================================

and ``streams.source`` / ``streams.target`` list every stream as one SimulEval instance.
``longform.json`` records the options; a rerun with the same options rewrites nothing.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Set, Tuple

import torch

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.common.files import atomic_open, atomic_path
from echostream_fairseq.data.audio import write_wav
from echostream_fairseq.data.corpus import source_voice
from echostream_fairseq.data.grammar import GRAMMAR_VERSION, SentenceSampler
from echostream_fairseq.data.manifest import read_tsv, write_tsv
from echostream_fairseq.data.steps import PrepError

__all__ = [
    "LongFormOptions",
    "StreamSentence",
    "build_longform",
    "draw_new_sentences",
    "stream_name",
    "read_stream_sentences",
]

LEAD_SILENCE_S = 0.3  # before the first sentence, as a recording starts


@dataclass(frozen=True)
class LongFormOptions:
    """Attributes:
    corpus: an ``echostream-prep synthetic`` folder (its sentences are excluded, its training
        voices are used).
    out: output folder.
    minutes: one stream per entry, each at least this long (the last sentence ends it).
    pause_range: seconds of silence between sentences, drawn uniformly.
    voice_every: the voice changes after a number of sentences drawn uniformly from this range.
    seed: fixes sentences, pauses and voices.
    """

    corpus: str
    out: str
    minutes: Tuple[float, ...] = (1.0, 5.0, 10.0)
    pause_range: Tuple[float, float] = (0.2, 1.5)
    voice_every: Tuple[int, int] = (3, 8)
    seed: int = 1

    def check(self) -> None:
        if not self.minutes or any(m <= 0 for m in self.minutes):
            raise PrepError(f"--minutes must be positive numbers, got {list(self.minutes)}")
        lo, hi = self.pause_range
        if not 0 <= lo <= hi:
            raise PrepError(f"--pause-range must be two seconds 0 <= low <= high, got {lo} {hi}")
        a, b = self.voice_every
        if not 1 <= a <= b:
            raise PrepError(f"--voice-every must be two counts 1 <= low <= high, got {a} {b}")
        if not os.path.isdir(os.path.join(self.corpus, "text")):
            raise PrepError(f"{self.corpus}: no text/ folder (is it a corpus made by echostream-prep synthetic?)")


@dataclass(frozen=True)
class StreamSentence:
    index: int
    start: float
    end: float
    voice: str
    src_text: str
    tgt_text: str


def stream_name(minutes: float) -> str:
    return f"stream_{minutes:g}min"


def _corpus_sentences(corpus: str) -> Set[str]:
    text_dir = os.path.join(corpus, "text")
    seen: Set[str] = set()
    for name in sorted(os.listdir(text_dir)):
        if name.endswith(".tsv"):
            for row in read_tsv(os.path.join(text_dir, name), ("src_text", "tgt_text")):
                seen.add(row["src_text"].lower())
                seen.add(row["tgt_text"].lower())
    if not seen:
        raise PrepError(f"{text_dir}: no sentences")
    return seen


def _training_voices(corpus: str) -> List[str]:
    """The voice variants of the corpus's train split (``audio/src_voices.tsv``)."""
    path = os.path.join(corpus, "audio", "src_voices.tsv")
    if not os.path.isfile(path):
        raise PrepError(f"{path}: not found (long-form streams are built from synthetic corpora)")
    variants = sorted({row["variant"] for row in read_tsv(path, ("id", "variant")) if row["id"].startswith("train_")})
    if not variants:
        raise PrepError(f"{path}: no train utterances")
    return variants


def draw_new_sentences(seed: int, count: int, exclude: Set[str], max_tries: int = 1000):
    """``count`` distinct grammar sentences whose French and English are both outside ``exclude``
    (lower-cased texts)."""
    sampler = SentenceSampler(seed)
    seen = set(exclude)
    out = []
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > max_tries * max(1, count):
            raise PrepError(f"the grammar ran out of new sentences after {len(out)} of {count}")
        s = sampler.sample()
        if s.fr.lower() in seen or s.en.lower() in seen:
            continue
        seen.update((s.fr.lower(), s.en.lower()))
        out.append(s)
    return out


def read_stream_sentences(path: str) -> List[StreamSentence]:
    """The sentence table of one stream (``{name}.tsv``)."""
    rows = read_tsv(path, ("index", "start", "end", "voice", "src_text", "tgt_text"), id_column=None)
    return [
        StreamSentence(int(r["index"]), float(r["start"]), float(r["end"]), r["voice"], r["src_text"], r["tgt_text"])
        for r in rows
    ]


def _write_lines(path: str, lines: Sequence[str]) -> None:
    with atomic_open(path) as f:
        f.writelines(line + "\n" for line in lines)


def build_longform(options: LongFormOptions, progress: bool = True) -> Dict[str, List[StreamSentence]]:
    """Write the streams of ``options``; returns each stream's sentence table by name."""
    from echostream_fairseq.data.tts import get_synthesizer

    options.check()
    record = {**asdict(options), "grammar_version": GRAMMAR_VERSION}
    record.pop("out")
    record_path = os.path.join(options.out, "longform.json")
    names = [stream_name(m) for m in options.minutes]
    if os.path.isfile(record_path):
        with open(record_path, encoding="utf-8") as f:
            if json.load(f) == json.loads(json.dumps(record)) and all(
                os.path.isfile(os.path.join(options.out, f"{n}.tsv")) for n in names
            ):
                return {n: read_stream_sentences(os.path.join(options.out, f"{n}.tsv")) for n in names}
    os.makedirs(os.path.join(options.out, "sentences"), exist_ok=True)
    rng = random.Random(f"longform:{options.seed}")
    voices = _training_voices(options.corpus)
    # about 2.9 s of speech and pause per sentence; draw with room to spare
    budget = sum(int(m * 60 / 1.5) + 10 for m in options.minutes)
    pool = iter(draw_new_sentences(options.seed + 1000, budget, _corpus_sentences(options.corpus)))
    synthesizer = get_synthesizer()
    tables: Dict[str, List[StreamSentence]] = {}
    for minutes, name in zip(options.minutes, names):
        pieces = [torch.zeros(int(LEAD_SILENCE_S * SAMPLE_RATE))]
        samples = pieces[0].numel()
        table: List[StreamSentence] = []
        voice, left = None, 0
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=int(minutes * 60), desc=name, unit="s")
        while samples < minutes * 60 * SAMPLE_RATE:
            if left == 0:
                voice = source_voice(options.seed, f"{name}_voice{len(table)}", voices)
                left = rng.randint(*options.voice_every)
            left -= 1
            sentence = next(pool)
            speech = synthesizer.synthesize(sentence.fr, voice, SAMPLE_RATE)
            index = len(table)
            with atomic_path(os.path.join(options.out, "sentences", f"{name}_{index:04d}.wav")) as temp:
                write_wav(temp, speech)
            start = samples / SAMPLE_RATE
            table.append(
                StreamSentence(
                    index,
                    round(start, 5),
                    round(start + speech.numel() / SAMPLE_RATE, 5),
                    voice.describe(),
                    sentence.fr,
                    sentence.en,
                )
            )
            pause = torch.zeros(int(rng.uniform(*options.pause_range) * SAMPLE_RATE))
            pieces += [speech, pause]
            samples += speech.numel() + pause.numel()
            if bar is not None:
                bar.update(int(samples / SAMPLE_RATE) - bar.n)
        if bar is not None:
            bar.close()
        with atomic_path(os.path.join(options.out, f"{name}.wav")) as temp:
            write_wav(temp, torch.cat(pieces))
        write_tsv(
            os.path.join(options.out, f"{name}.tsv"),
            ("index", "start", "end", "voice", "src_text", "tgt_text"),
            (asdict(s) for s in table),
        )
        _write_lines(os.path.join(options.out, f"{name}.target"), [" ".join(s.tgt_text for s in table)])
        sentence_dir = os.path.abspath(os.path.join(options.out, "sentences"))
        _write_lines(
            os.path.join(options.out, f"{name}_sentences.source"),
            [os.path.join(sentence_dir, f"{name}_{s.index:04d}.wav") for s in table],
        )
        _write_lines(os.path.join(options.out, f"{name}_sentences.target"), [s.tgt_text for s in table])
        tables[name] = table
    out_abs = os.path.abspath(options.out)
    _write_lines(os.path.join(options.out, "streams.source"), [os.path.join(out_abs, f"{n}.wav") for n in names])
    _write_lines(os.path.join(options.out, "streams.target"), [" ".join(s.tgt_text for s in tables[n]) for n in names])
    with atomic_open(record_path) as f:
        json.dump(record, f, indent=2)
    return tables
