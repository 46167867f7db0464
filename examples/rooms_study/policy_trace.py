"""Where the 320 ms translation loses against 2000 ms, sentence by sentence.

    .venv/bin/python examples/rooms_study/policy_trace.py CKPT DATA [--split test] [--limit 100]

Runs the speech-to-text translator over each utterance of SPLIT at 320 ms (words as they come,
and whole words) and at 2000 ms, one sentence per utterance (long-form mode off), and records at
every chunk how many ASR CTC subwords, ST CTC subwords and target subwords there are. Then, per
setting:

- BLEU against the reference (as ``echostream-simul-report`` scores it), and the share of
  sentences whose text equals the 2000 ms text;
- words written early: target word j of N counts as written early when, at the chunk that wrote
  it, the ASR transcript had less of its final length than j/N (the share of the translation
  before that word); a proxy that assumes the translation follows the source's order, which the
  grammar's sentences mostly do (adjectives move by one word). For early and other words, the
  share that the 2000 ms text also has at that place (difflib's alignment);
- the ST CTC head's timing against the ASR head's: over the chunks of each sentence, the mean of
  (ST subwords so far / ST final) - (ASR subwords so far / ASR final); above 0, the ST head
  runs ahead of the transcript.

Prints a markdown table (the model, CPU and settings above it).
"""

from __future__ import annotations

import argparse
import difflib
import platform
import sys
from typing import Dict, List

import sacrebleu
import torch

from echostream_fairseq.data.audio import read_audio
from echostream_fairseq.data.text import WORD_START, normalize_text, pieces_to_words
from echostream_fairseq.streaming.loading import load_translator
from echostream_fairseq.streaming.options import TranslatorOptions


def trace(translator, wave, chunk_samples: int) -> Dict[str, list]:
    """Per chunk: ASR, ST and target subword counts; the target subwords at the end."""
    state = translator.initial_state()
    asr, st, target, written = [], [], [], []
    start = 0
    while True:
        last = start + chunk_samples >= len(wave)
        out, state = translator.step(wave[start : start + chunk_samples], state, finish=last)
        written += out.target_tokens
        asr.append((asr[-1] if asr else 0) + len(out.asr_tokens))
        st.append(len(state.st_tokens))
        target.append(len(written))
        start += chunk_samples
        if last:
            return {"asr": asr, "st": st, "target": target, "tokens": written}


def word_chunks(tokens: List[str], target_counts: List[int]) -> List[int]:
    """The chunk at which each word of the subwords ``tokens`` was complete (its last subword
    written)."""
    chunk_of_token = []
    for chunk, count in enumerate(target_counts):
        chunk_of_token += [chunk] * (count - len(chunk_of_token))
    chunks, word_end = [], []
    for i, piece in enumerate(tokens):
        if piece.startswith(WORD_START) and i > 0:
            word_end.append(i - 1)
    if tokens:
        word_end.append(len(tokens) - 1)
    for end in word_end:
        chunks.append(chunk_of_token[end])
    return chunks


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model_path")
    p.add_argument("data")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sources = open(f"{args.data}/simuleval/{args.split}.source").read().split()[: args.limit]
    references = open(f"{args.data}/simuleval/{args.split}.target").read().splitlines()[: args.limit]
    settings = {
        "320 ms, words as they come": (320, "off"),
        "320 ms, whole words": (320, "on"),
        "2000 ms": (2000, "on"),
    }
    runs = {}
    for name, (ms, whole) in settings.items():
        options = TranslatorOptions(
            output="text", whole_word=whole, source_segment_size=ms, sentence_pause_ms=0, sentence_confirmed_pause_ms=0
        )
        translator = load_translator(args.model_path, args.data, options)
        target_dict = translator.dictionaries.target
        traces = []
        for path in sources:
            t = trace(translator, read_audio(path), 16 * ms)
            t["pieces"] = [target_dict[i] for i in t["tokens"]]
            t["text"] = " ".join(pieces_to_words(target_dict, t["tokens"]))
            traces.append(t)
        runs[name] = traces
    print(f"Model {args.model_path}; {args.split}, first {len(sources)} utterances; {platform.processor() or 'cpu'}")
    print(
        "\n| run | BLEU | equal to 2000 ms | words written early | early words as at 2000 ms "
        "| other words as at 2000 ms | ST ahead of ASR |\n|---|---|---|---|---|---|---|"
    )
    offline = runs["2000 ms"]
    for name, traces in runs.items():
        bleu = sacrebleu.corpus_bleu(
            [normalize_text(t["text"]) for t in traces], [[normalize_text(r) for r in references]]
        ).score
        equal = sum(t["text"] == o["text"] for t, o in zip(traces, offline)) / len(traces)
        early = [0, 0]  # words written early: count, as at 2000 ms
        other = [0, 0]
        lead = []
        for t, o in zip(traces, offline):
            words, chunks = t["text"].split(), word_chunks(t["pieces"], t["target"])
            same = set()
            for tag, i1, i2, _, _ in difflib.SequenceMatcher(a=words, b=o["text"].split()).get_opcodes():
                if tag == "equal":
                    same.update(range(i1, i2))
            asr_final = max(t["asr"][-1], 1)
            for j, chunk in enumerate(chunks[: len(words)]):
                heard = t["asr"][chunk] / asr_final
                bucket = early if heard < j / len(words) else other
                bucket[0] += 1
                bucket[1] += j in same
            st_final = max(t["st"][-1], 1)
            lead += [s / st_final - a / asr_final for s, a in zip(t["st"], t["asr"])]
        words_total = max(early[0] + other[0], 1)
        print(
            f"| {name} | {bleu:.1f} | {equal:.0%} | {early[0] / words_total:.0%} "
            f"| {early[1] / max(early[0], 1):.0%} | {other[1] / max(other[0], 1):.0%} "
            f"| {sum(lead) / max(len(lead), 1):+.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
