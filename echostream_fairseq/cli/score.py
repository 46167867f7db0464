"""``echostream-score``: score a ``fairseq-generate`` run against the corpus references.

Reads ``generate-{split}.txt`` (fairseq's ``T-``/``H-`` unit lines) and ``generate-{split}.text.txt``
(this task's ``ID-``/``ASR-``/``ST-``/``MT-`` lines) from ``--results-path``, and the raw text of
``DATA/text/{split}.tsv``; prints

* ``asr_wer``: word error rate of the ASR CTC transcript against the source text;
* ``mt_bleu`` / ``st_ctc_bleu``: sacreBLEU of the beam-search translation and of the ST CTC output
  against the target text;
* ``unit_er``: unit edit distance over reference units.

References are normalised the way the training text was (lower case, no punctuation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

from echostream_fairseq.common.files import atomic_open
from echostream_fairseq.data.manifest import ManifestError, read_tsv
from echostream_fairseq.data.text import edit_distance, normalize_text

__all__ = ["score_generate", "main"]


def _lines(path: Path, prefixes) -> Dict[str, Dict[int, str]]:
    if not path.is_file():
        raise ManifestError(f"{path}: file not found (run fairseq-generate with --results-path first)")
    out: Dict[str, Dict[int, str]] = {p: {} for p in prefixes}
    for line in path.read_text(encoding="utf-8").splitlines():
        head, _, rest = line.partition("\t")
        prefix, _, index = head.rpartition("-")
        if prefix in out and index.isdigit():
            out[prefix][int(index)] = rest
    return out


def score_generate(results_path: Path, data: Path, split: str) -> Dict[str, float]:
    """Scores of one ``fairseq-generate`` run (see the module docstring)."""
    import sacrebleu

    units = _lines(Path(results_path) / f"generate-{split}.txt", ("T", "H"))
    text = _lines(Path(results_path) / f"generate-{split}.text.txt", ("ID", "ASR", "ST", "MT"))
    refs = {row["id"]: row for row in read_tsv(Path(data) / "text" / f"{split}.tsv", ("id", "src_text", "tgt_text"))}
    if not text["ID"]:
        raise ManifestError(f"{results_path}/generate-{split}.text.txt: no ID- lines")
    asr_err = asr_words = unit_err = unit_total = 0
    mt_hyps: List[str] = []
    st_hyps: List[str] = []
    tgt_refs: List[str] = []
    for index, utt in sorted(text["ID"].items()):
        if utt not in refs:
            raise ManifestError(f"{data}/text/{split}.tsv: no reference for id {utt!r}")
        src_ref = normalize_text(refs[utt]["src_text"]).split()
        asr_err += edit_distance(text["ASR"].get(index, "").split(), src_ref)
        asr_words += len(src_ref)
        mt_hyps.append(text["MT"].get(index, "").split("\t")[-1])
        st_hyps.append(text["ST"].get(index, ""))
        tgt_refs.append(normalize_text(refs[utt]["tgt_text"]))
        ref_units = units["T"].get(index, "").split()
        hyp_units = units["H"].get(index, "").split("\t")[-1].split()
        unit_err += edit_distance(hyp_units, ref_units)
        unit_total += len(ref_units)
    return {
        "utterances": len(text["ID"]),
        "asr_wer": round(100.0 * asr_err / max(asr_words, 1), 2),
        "mt_bleu": round(sacrebleu.corpus_bleu(mt_hyps, [tgt_refs]).score, 2),
        "st_ctc_bleu": round(sacrebleu.corpus_bleu(st_hyps, [tgt_refs]).score, 2),
        "unit_er": round(100.0 * unit_err / max(unit_total, 1), 2),
    }


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="echostream-score", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-path", required=True, type=Path, help="fairseq-generate --results-path")
    parser.add_argument("--data", required=True, type=Path, help="corpus folder (has text/{split}.tsv)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    args = parser.parse_args(argv)
    try:
        scores = score_generate(args.results_path, args.data, args.split)
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    for key, value in scores.items():
        print(f"{key}\t{value}")
    if args.json:
        with atomic_open(args.json) as f:
            f.write(json.dumps(scores, indent=2) + "\n")


if __name__ == "__main__":
    main()
