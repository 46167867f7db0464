"""The text BLEU of simultaneous runs on test_room, by the noise, SNR and reverberation drawn.

    python examples/rooms_study/breakdown.py ROOMS_TSV REFERENCE RUN [RUN ...]

ROOMS_TSV is the corpus's audio/rooms.tsv, REFERENCE the one-line-per-instance reference, each RUN
a simuleval --output folder of the s2tt agent on test_room (its text/translation.txt, and its
instances.log for which utterance each line is). Prints one markdown table, a column per run.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Callable, Dict, List

import sacrebleu

from echostream_fairseq.data.text import normalize_text


def _rooms(path: str) -> Dict[str, Dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f, delimiter="\t")}


def _run(folder: Path) -> Dict[str, str]:
    """Utterance id -> the run's translation."""
    hyps = (folder / "text" / "translation.txt").read_text(encoding="utf-8").splitlines()
    ids = {}
    with open(folder / "instances.log", encoding="utf-8") as f:
        for line in f:
            instance = json.loads(line)
            ids[instance["index"]] = Path(instance["source"][0]).stem
    return {ids[i]: hyp for i, hyp in enumerate(hyps)}


def main(argv: List[str]) -> None:
    rooms_tsv, reference, *runs = argv
    rooms = _rooms(rooms_tsv)
    refs = Path(reference).read_text(encoding="utf-8").splitlines()
    outputs = [_run(Path(r)) for r in runs]
    ids = sorted(outputs[0])
    ref_of = {uid: refs[int(uid.rsplit("_", 1)[1])] for uid in ids}
    snr = sorted(float(rooms[u]["snr_db"]) for u in ids)
    rt60 = sorted(float(rooms[u]["rt60_s"]) for u in ids)
    snr_mid, rt60_mid = snr[len(snr) // 2], rt60[len(rt60) // 2]
    groups: Dict[str, Callable[[Dict[str, str]], bool]] = {
        "all": lambda r: True,
        "babble": lambda r: r["noise"] == "babble",
        "coloured noise (white, pink, brown)": lambda r: r["noise"] != "babble",
        f"SNR below {snr_mid:.1f} dB": lambda r: float(r["snr_db"]) < snr_mid,
        f"SNR {snr_mid:.1f} dB and above": lambda r: float(r["snr_db"]) >= snr_mid,
        f"RT60 below {rt60_mid:.2f} s": lambda r: float(r["rt60_s"]) < rt60_mid,
        f"RT60 {rt60_mid:.2f} s and above": lambda r: float(r["rt60_s"]) >= rt60_mid,
    }
    print("| test_room utterances | n | " + " | ".join(f"{Path(r).parent.name}/{Path(r).name}" for r in runs) + " |")
    print("|---|---|" + "---|" * len(runs))
    for name, keep in groups.items():
        chosen = [u for u in ids if keep(rooms[u])]
        if not chosen:
            continue
        scores = []
        for out in outputs:
            bleu = sacrebleu.corpus_bleu(
                [normalize_text(out[u]) for u in chosen], [[normalize_text(ref_of[u]) for u in chosen]]
            )
            scores.append(f"{bleu.score:.1f}")
        print(f"| {name} | {len(chosen)} | " + " | ".join(scores) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
