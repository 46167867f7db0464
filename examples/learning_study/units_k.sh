#!/usr/bin/env bash
# K of the log-mel k-means against what the units keep: for K = 100, 200, 500, a corpus with the
# same sentences and voices (seed 1; 2000 train utterances to fit the k-means on, 100 test), the
# test split's reference units through the training-free Griffin-Lim vocoder (their centroids,
# durations predicted from train), scored by pocketsphinx ASR-BLEU with the training-side
# language model (LM_TEXT, default the small corpus's own 2000 English sentences; the study gave it
# the 20000 of the demo corpus, results/demo/train_english.txt, as the demo's ceilings use), beside
# the unit sequence lengths the unit decoder has to produce.
#
#   [LM_TEXT=...] examples/learning_study/units_k.sh [OUT]   (default results/study/units_k; about 12 minutes)
set -euo pipefail
BIN=${BIN:-.venv/bin}
OUT=${1:-results/study/units_k}
mkdir -p "$OUT"
for K in ${KS:-100 200 500}; do
  C=$OUT/k$K
  "$BIN/echostream-prep" synthetic --out "$C" --num-train 2000 --num-dev 10 --num-test 100 --num-units "$K" \
    --seed 1 --no-progress --quiet
  cut -f3 "$C/text/train.tsv" | tail -n +2 > "$C/train_english.txt"
  LM=${LM_TEXT:-$C/train_english.txt}
  cut -f2 "$C/units/test.tsv" | tail -n +2 > "$C/test_units.txt"
  "$BIN/echostream-vocode" --in-code-file "$C/test_units.txt" --vocoder-type griffin_lim \
    --vocoder "$C/units/kmeans.pt" --dur-prediction --results-path "$C/gold_wavs" > /dev/null
  "$BIN/echostream-asr-bleu" --wav-dir "$C/gold_wavs" --reference "$C/simuleval/test.target" \
    --lm-text "$LM" --json "$C/gold_asr_bleu.json" > /dev/null
done
"$BIN/python" - "$OUT" ${KS:-100 200 500} <<'PY'
import json, sys
out, ks = sys.argv[1], sys.argv[2:]
print("| K | ASR-BLEU of reference units (Griffin-Lim) | units per utterance (test) | units per second of target speech |")
print("|---|---|---|---|")
for k in ks:
    stats = json.load(open(f"{out}/k{k}/stats.json"))["splits"]["test"]
    score = json.load(open(f"{out}/k{k}/gold_asr_bleu.json"))
    bleu = score["bleu"]
    print(f"| {k} | {bleu:.1f} | {stats['tgt_units_mean']:.1f} | {stats['tgt_units_mean'] / stats['tgt_seconds_mean']:.1f} |")
PY
