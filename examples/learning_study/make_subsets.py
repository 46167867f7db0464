"""Training subsets of a prepared corpus for the learning-curve study.

    python examples/learning_study/make_subsets.py CORPUS 1000 5000

writes ``train_{N}.tsv`` (the first N train utterances: with one seed, the train split of a smaller
``echostream-prep synthetic`` corpus is a prefix of a larger one's) with the matching
``src_unigram/`` and ``tgt_unigram/`` files, and ``train_{N}_wav.tsv`` (the same utterances read
from their wavs, fbank computed on the fly) when the manifests point at precomputed features.
"""

import sys
from pathlib import Path


def _write(path: Path, header: str, rows) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(header + "".join(rows), encoding="utf-8")
    tmp.replace(path)


def main(corpus: str, *sizes: str) -> None:
    root = Path(corpus)
    lines = (root / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    for size in map(int, sizes):
        if size > len(rows):
            raise SystemExit(f"{root}/train.tsv has {len(rows)} utterances, fewer than {size}")
        name = f"train_{size}"
        _write(root / f"{name}.tsv", header, rows[:size])
        if rows[0].split("\t")[1].endswith(".npy"):
            wav_rows = []
            for row in rows[:size]:
                fields = row.split("\t")
                fields[1] = f"audio/src/{fields[0]}.wav"
                wav_rows.append("\t".join(fields))
            _write(root / f"{name}_wav.tsv", header, wav_rows)
        for task in ("src_unigram", "tgt_unigram"):
            text = (root / task / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
            _write(root / task / f"{name}.tsv", text[0], text[1:size + 1])
            if rows[0].split("\t")[1].endswith(".npy"):
                _write(root / task / f"{name}_wav.tsv", text[0], text[1:size + 1])


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
