#!/usr/bin/env bash
# Quality and latency of the demo model under each --model-dtype: SimulEval's speech-to-speech agent
# (ASR-BLEU, BLEU) and its ASR agent (WER) on the test split at 320 ms chunks, one run per dtype,
# then one table (results/precision/report.md). Run `make demo` first; the defaults are its paths.
#   examples/precision/compare.sh                 # fp32 bf16 int8
#   DTYPES="fp32 int8" VOCODER_DIR=... examples/precision/compare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
DATA=${DATA:-results/synthetic/corpus}
DEMO=${DEMO:-results/demo}
source examples/synthetic_tiny/recipe.sh
SAVE=${SAVE:-$DEMO/${DEMO_ARCH:-$RECIPE_ARCH}}
VOCODER_DIR=${VOCODER_DIR:-$DEMO/vocoder_tiny}
WORK=${WORK:-results/precision}
DTYPES=${DTYPES:-fp32 bf16 int8}
SEG=${SEG:-320}
export PYTHONWARNINGS=ignore
for f in "$SAVE/checkpoint_last.pt" "$VOCODER_DIR/generator.pt" "$DEMO/train_english.txt"; do
  test -f "$f" || { echo "$f not found: run make demo first (or set SAVE, VOCODER_DIR, DEMO)"; exit 1; }
done
mkdir -p "$WORK"
RUNS=(); LABELS=()
for DTYPE in $DTYPES; do
  OUT=$WORK/s2st_${DTYPE}; RUNS+=("$OUT"); LABELS+=("$DTYPE")
  if [ ! -f "$OUT/scores.tsv" ]; then
    rm -rf "$OUT"
    "$BIN/simuleval" --agent agents/echostream_s2st_agent.py --user-dir echostream_fairseq/evaluation/asr_bleu \
      --source "$DATA/simuleval/test.source" --target "$DATA/simuleval/test.target" \
      --source-segment-size "$SEG" --model-path "$SAVE/checkpoint_last.pt" --data-bin "$DATA" --model-dtype "$DTYPE" \
      --vocoder "$VOCODER_DIR/generator.pt" --vocoder-cfg "$VOCODER_DIR/config.json" --dur-prediction \
      --output "$OUT" --extra-output-dir "$OUT/text" \
      --quality-metrics ASR_BLEU_OFFLINE --asr-bleu-lm-text "$DEMO/train_english.txt" \
      --latency-metrics AL AP DAL StartOffset EndOffset ATD --computation-aware --threads 2 > "$OUT.log" 2>&1 || true
    test -f "$OUT/scores.tsv" || { echo "simuleval failed: see $OUT.log"; exit 1; }
  fi
  ASR=$WORK/asr_${DTYPE}
  if [ ! -f "$ASR/scores.tsv" ]; then
    rm -rf "$ASR"
    "$BIN/simuleval" --agent agents/echostream_asr_agent.py \
      --source "$DATA/simuleval/test.source" --target "$DATA/simuleval/test.src_text" \
      --source-segment-size "$SEG" --model-path "$SAVE/checkpoint_last.pt" --data-bin "$DATA" --model-dtype "$DTYPE" \
      --output "$ASR" --quality-metrics WER --latency-metrics AL --threads 2 > "$ASR.log" 2>&1 || true
    test -f "$ASR/scores.tsv" || { echo "simuleval failed: see $ASR.log"; exit 1; }
  fi
  echo "$DTYPE: done"
done
"$BIN/echostream-simul-report" "${RUNS[@]}" --labels "${LABELS[@]}" \
  --reference "$DATA/simuleval/test.target" --json "$WORK/report.json" > "$WORK/report.md"
"$BIN/python" - "$WORK" $DTYPES >> "$WORK/report.md" <<'PY'
import json, sys
from echostream_fairseq.evaluation.wer import word_error_rate
work, dtypes = sys.argv[1], sys.argv[2:]
print("\n| dtype | ASR WER %, normalised (SimulEval's own WER, case and punctuation counted) |\n|---|---|")
for dtype in dtypes:
    rows = [json.loads(line) for line in open(f"{work}/asr_{dtype}/instances.log")]
    wer = word_error_rate([r["reference"] for r in rows], [r["prediction"] for r in rows])
    simuleval = open(f"{work}/asr_{dtype}/scores.tsv").read().split("\n")[1].split("\t")[0]
    print(f"| {dtype} | {wer:.1f} ({float(simuleval):.1f}) |")
PY
cat "$WORK/report.md"
