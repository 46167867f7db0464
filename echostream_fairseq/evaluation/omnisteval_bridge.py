"""A long-form run in OmniSTEval's terms (FBK's long-form scorer, the ``omnisteval`` package): the
files its command reads, and its LongYAAL computed in this process.

OmniSTEval resegments a stream's words against the reference sentences of a segmentation (each
sentence's offset and duration in the recording) and scores each sentence's latency with YAAL,
where a word counts until the recording ends (LongYAAL). Its inputs, written by
:func:`write_omnisteval_inputs`:

* ``{name}.omnisteval.jsonl``: one line, SimulEval's instance form: ``source`` (the wav's name),
  ``prediction`` (the words), ``delays`` and ``elapsed`` (each word's ideal and computation-aware
  emission time, ms from the recording's start), ``source_length`` (ms);
* ``{name}.segmentation.yaml``: the reference sentences' ``wav``, ``offset`` and ``duration`` (s);
* ``{name}.references.txt``: one reference sentence per line.

so ``omnisteval longform --speech_segmentation S --ref_sentences_file R --hypothesis_file H
--word_level --lang en`` scores the same run. :func:`long_yaal` computes its LongYAAL, ideal and
computation-aware, through its Python API.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Dict, Sequence

import yaml

from echostream_fairseq.evaluation.longform import ReferenceSentence, TimedWord

__all__ = ["write_omnisteval_inputs", "long_yaal"]


def write_omnisteval_inputs(
    folder: str, name: str, wav: str, words: Sequence[TimedWord], references: Sequence[ReferenceSentence]
) -> Dict[str, str]:
    """The three files of OmniSTEval's long-form command for one stream; their paths by role."""
    paths = {
        "hypothesis": os.path.join(folder, f"{name}.omnisteval.jsonl"),
        "segmentation": os.path.join(folder, f"{name}.segmentation.yaml"),
        "references": os.path.join(folder, f"{name}.references.txt"),
    }
    wav_name = os.path.basename(wav)
    end = max(r.end for r in references)
    instance = {
        "source": wav_name,
        "prediction": " ".join(w.word for w in words),
        "delays": [round(1000 * w.delay, 1) for w in words],
        "elapsed": [round(1000 * w.computation_aware_delay, 1) for w in words],
        "source_length": round(1000 * end, 1),
    }
    with open(paths["hypothesis"], "w", encoding="utf-8") as f:
        f.write(json.dumps(instance) + "\n")
    segments = [
        {"wav": wav_name, "offset": round(r.start, 3), "duration": round(r.end - r.start, 3), "speaker_id": "spk"}
        for r in references
    ]
    with open(paths["segmentation"], "w", encoding="utf-8") as f:
        yaml.safe_dump(segments, f, sort_keys=False)
    with open(paths["references"], "w", encoding="utf-8") as f:
        f.writelines(r.text.replace("\n", " ") + "\n" for r in references)
    return paths


def long_yaal(
    words: Sequence[TimedWord], references: Sequence[ReferenceSentence], lang: str = "en"
) -> Dict[str, float]:
    """OmniSTEval's LongYAAL of one stream in seconds: ``long_yaal`` (ideal) and ``long_yaal_ca``
    (computation-aware), as its command would print them for the files of
    :func:`write_omnisteval_inputs` (in ms there)."""
    from omnisteval import Word, YAALScorer, resegment

    for name in ("omnisteval", "mosestokenizer"):  # their alignment and tokenizer log every word at DEBUG
        logging.getLogger(name).setLevel(logging.WARNING)
    end = 1000 * max(r.end for r in references)
    segmentation = [
        {"offset": 1000 * r.start, "duration": 1000 * (r.end - r.start), "time_to_recording_end": end - 1000 * r.start}
        for r in references
    ]
    reference_words = [[Word(w, seq_id=i) for i, r in enumerate(references) for w in r.text.lower().split()]]
    hypothesis_words = [
        [Word(w.word, emission_cu=1000 * w.delay, emission_ca=1000 * w.computation_aware_delay) for w in words]
    ]
    instances, _ = resegment(
        reference_words, hypothesis_words, segmentation, [r.text for r in references], char_level=False, lang=lang
    )
    ideal = YAALScorer(computation_aware=False, is_longform=True)(instances)
    aware = YAALScorer(computation_aware=True, is_longform=True)(instances)
    # None where no sentence has a word before the recording's end (OmniSTEval gives NaN or None)
    return {
        "long_yaal": None if ideal is None or math.isnan(ideal) else ideal / 1000,
        "long_yaal_ca": None if aware is None or math.isnan(aware) else aware / 1000,
    }
