"""Training examples of several sentences in a row (``echostream-prep concat``).

A model trained on single sentences has only ever seen one sentence per input: given a stream,
its decoders have never had to carry on past a sentence. This step adds a split to a prepared
corpus whose examples are 2 to ``max_sentences`` randomly drawn train utterances joined with
pauses: the source speech with silence between, the subword transcripts (ASR, ST and MT) the
utterances' one after the other with :data:`SENTENCE_MARK` between them, and as units those of
the last sentence. The manifest's ``last_sentence_frame`` is the fbank frame where the pause
before the last sentence starts. Trained on mixed with the single sentences (the split
``{split}_mix``), they teach the encoder and the CTC heads what a sentence end sounds like (with
``--asr-sentence-ends`` the ASR CTC head learns to write it), and the MT decoder and the units to
translate a sentence heard after others from the frames after its predecessor only: what
long-form mode asks of them after a sentence end.

Writes, in the corpus folder: ``{split}.tsv`` (manifest), ``src_unigram/{split}.tsv``,
``tgt_unigram/{split}.tsv``, ``units/{split}.tsv``, the source fbank ``features/{id}.npy``
(the wav is not kept: training reads the fbank), and the same four files for ``{split}_mix``:
the source split's rows, then the new ones.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Dict, List

import numpy as np
import torch

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.common.files import atomic_open
from echostream_fairseq.data.audio import FBANK_FRAME_SHIFT_MS, fbank, read_audio
from echostream_fairseq.data.manifest import read_tsv, write_tsv
from echostream_fairseq.data.speech_to_unit_dataset import SENTENCE_MARK
from echostream_fairseq.data.steps import PrepError

__all__ = ["ConcatOptions", "build_concat_split"]


@dataclass(frozen=True)
class ConcatOptions:
    corpus: str
    split: str = "train_concat"
    count: int = 5000
    max_sentences: int = 3
    pause_range: tuple = (0.2, 1.5)
    source_split: str = "train"
    seed: int = 1

    def check(self) -> None:
        if self.count < 1:
            raise PrepError(f"--count must be at least 1, got {self.count}")
        if self.max_sentences < 2:
            raise PrepError(f"--max-sentences must be at least 2, got {self.max_sentences}")
        lo, hi = self.pause_range
        if not 0 <= lo <= hi:
            raise PrepError(f"--pause-range must be two seconds 0 <= low <= high, got {lo} {hi}")
        if self.source_split in (self.split, f"{self.split}_mix"):
            raise PrepError(f"--split {self.split} would overwrite the split it is made from ({self.source_split})")
        for path in (f"{self.source_split}.tsv", "src_unigram", "tgt_unigram", "units", "audio/src"):
            if not os.path.exists(os.path.join(self.corpus, path)):
                raise PrepError(f"{self.corpus}/{path}: not found (is it a corpus made by echostream-prep?)")


def _by_id(path: str, column: str) -> Dict[str, str]:
    return {row["id"]: row[column] for row in read_tsv(path, ("id", column), allow_empty=(column,))}


def build_concat_split(options: ConcatOptions, progress: bool = True) -> int:
    """Write the split; returns its number of examples."""
    options.check()
    c = options.corpus
    src = _by_id(os.path.join(c, "src_unigram", f"{options.source_split}.tsv"), "tgt_text")
    tgt = _by_id(os.path.join(c, "tgt_unigram", f"{options.source_split}.tsv"), "tgt_text")
    units = _by_id(os.path.join(c, "units", f"{options.source_split}.tsv"), "units")
    ids = [row["id"] for row in read_tsv(os.path.join(c, f"{options.source_split}.tsv"), ("id",))]
    rng = random.Random(f"concat:{options.seed}")
    os.makedirs(os.path.join(c, "features"), exist_ok=True)
    rows, src_rows, tgt_rows, unit_rows = [], [], [], []
    examples = range(options.count)
    if progress:
        from tqdm import tqdm

        examples = tqdm(examples, desc=options.split, unit="ex")
    for n in examples:
        picks = rng.sample(ids, rng.randint(2, options.max_sentences))
        pieces: List[torch.Tensor] = []
        for i, uid in enumerate(picks):
            if i:
                last_start = sum(p.numel() for p in pieces)  # the pause before the last sentence
                pieces.append(torch.zeros(int(rng.uniform(*options.pause_range) * SAMPLE_RATE)))
            pieces.append(read_audio(os.path.join(c, "audio", "src", f"{uid}.wav")))
        uid = f"{options.split}_{n:05d}"
        feats = np.asarray(fbank(torch.cat(pieces)).numpy(), dtype=np.float32)
        with atomic_open(os.path.join(c, "features", f"{uid}.npy"), "wb") as f:
            np.save(f, feats)
        unit_text = units[picks[-1]]
        rows.append(
            {
                "id": uid,
                "src_audio": os.path.join("features", f"{uid}.npy"),
                "src_n_frames": feats.shape[0],
                "tgt_audio": unit_text,
                "tgt_n_frames": len(unit_text.split()),
                "last_sentence_frame": min(
                    int(last_start / SAMPLE_RATE * 1000 / FBANK_FRAME_SHIFT_MS), feats.shape[0] - 1
                ),
            }
        )
        src_rows.append({"id": uid, "tgt_text": f" {SENTENCE_MARK} ".join(src[p] for p in picks)})
        tgt_rows.append({"id": uid, "tgt_text": f" {SENTENCE_MARK} ".join(tgt[p] for p in picks)})
        unit_rows.append({"id": uid, "units": unit_text})
    manifest = ("id", "src_audio", "src_n_frames", "tgt_audio", "tgt_n_frames", "last_sentence_frame")
    files = [
        (("src_unigram",), ("id", "tgt_text"), src_rows),
        (("tgt_unigram",), ("id", "tgt_text"), tgt_rows),
        (("units",), ("id", "units"), unit_rows),
        ((), manifest, rows),
    ]
    for folder, columns, new_rows in files:  # the manifest last: a split is there once it is complete
        write_tsv(os.path.join(c, *folder, f"{options.split}.tsv"), columns, new_rows)
    for folder, columns, new_rows in files:
        old_rows = read_tsv(
            os.path.join(c, *folder, f"{options.source_split}.tsv"),
            [k for k in columns if k != "last_sentence_frame"],
            allow_empty=("units", "tgt_audio"),
        )
        write_tsv(
            os.path.join(c, *folder, f"{options.split}_mix.tsv"),
            columns,
            [{k: row.get(k, 0) for k in columns} for row in old_rows] + new_rows,
        )
    return len(rows)
