"""Training subsets of a prepared corpus for the learning-curve study.

    .venv/bin/python examples/learning_study/make_subsets.py CORPUS 1000 5000

writes ``train_{N}.tsv`` (the first N train utterances: with one seed, the train split of a smaller
``echostream-prep synthetic`` corpus is a prefix of a larger one's) with the matching
``src_unigram/`` and ``tgt_unigram/`` files, and ``train_{N}_wav.tsv`` (the same utterances read
from their wavs, fbank computed on the fly) when the manifests point at precomputed features.
"""

import sys
from pathlib import Path

from echostream_fairseq.common.files import atomic_open


def _lines(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return lines[0], lines[1:]


def _write(path: Path, header: str, rows) -> None:
    with atomic_open(path) as f:
        f.write(header + "".join(rows))


def main(corpus: str, *sizes: str) -> None:
    root = Path(corpus)
    header, rows = _lines(root / "train.tsv")
    precomputed = rows[0].split("\t")[1].endswith(".npy")
    texts = {task: _lines(root / task / "train.tsv") for task in ("src_unigram", "tgt_unigram")}
    for size in map(int, sizes):
        if size > len(rows):
            raise SystemExit(f"{root}/train.tsv has {len(rows)} utterances, fewer than {size}")
        names = [f"train_{size}"] + ([f"train_{size}_wav"] if precomputed else [])
        _write(root / f"{names[0]}.tsv", header, rows[:size])
        if precomputed:
            wav_rows = [
                "\t".join([f[0], f"audio/src/{f[0]}.wav", *f[2:]]) for f in (r.split("\t") for r in rows[:size])
            ]
            _write(root / f"{names[1]}.tsv", header, wav_rows)
        for task, (text_header, text_rows) in texts.items():
            for name in names:
                _write(root / task / f"{name}.tsv", text_header, text_rows[:size])


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
