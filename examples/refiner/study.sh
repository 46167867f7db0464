#!/usr/bin/env bash
# The unit refiner measured (docs/results/2026-12-07-unit-refiner.md): trained on a frozen model,
# then the speech-to-speech agent with and without it at 320 and 2000 ms on test (unit error of
# the voiced units, ASR-BLEU, latency), and its cost per chunk.
#
#   examples/refiner/study.sh [CHECKPOINT] [UPDATES] [THRESHOLDS...]
#
# CHECKPOINT defaults to the demo's model, UPDATES to 2000; THRESHOLDS (--unit-refiner-threshold)
# to 0.5 0.7. The demo's own runs (results/demo/s2st_test_{320,2000}ms) are the runs without it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/synthetic_tiny/recipe.sh
source examples/s2st_simul.sh
CKPT=${1:-results/demo/$RECIPE_ARCH/checkpoint_last.pt}
UPDATES=${2:-2000}
THRESHOLDS=("${@:3}")
[ ${#THRESHOLDS[@]} -gt 0 ] || THRESHOLDS=(0.5 0.7)
BIN=${BIN:-.venv/bin}
DATA=${DATA:-results/synthetic/corpus}
DEMO=${DEMO:-results/demo}
W=${WORK:-results/refiner_study}
V=$DEMO/vocoder_istft_tiny
VOCODER=(--vocoder "$V/generator.pt" --vocoder-cfg "$V/config.json" --dur-prediction)
export PYTHONWARNINGS=ignore
mkdir -p "$W"
if [ ! -f "$W/train.json" ]; then
  "$BIN/echostream-train-refiner" --model-path "$CKPT" --data-bin "$DATA" --save "$W/refiner.pt" \
    --max-updates "$UPDATES" --threads 2 2> "$W/train.log" | tee "$W/train.json"
fi
cat "$W/train.json"
RUNS=("$DEMO/s2st_test_320ms" "$DEMO/s2st_test_2000ms"); LABELS=("320 ms" "2000 ms")
for T in "${THRESHOLDS[@]}"; do
  for SEG in 320 2000; do
    OUT=$W/s2st_test_${SEG}ms_refined_$T
    RUNS+=("$OUT"); LABELS+=("$SEG ms, refiner $T")
    s2st_simul "$OUT" test "$SEG" "$CKPT" "$DEMO/train_english.txt" \
      --unit-refiner "$W/refiner.pt" --unit-refiner-threshold "$T"
  done
done
"$BIN/echostream-simul-report" "${RUNS[@]}" --labels "${LABELS[@]}" --reference "$DATA/simuleval/test.target" \
  | tee "$W/report.md"
"$BIN/python" examples/refiner/units_and_cost.py "$CKPT" "$DATA" "$W/refiner.pt" "$V" "${RUNS[@]}" \
  --labels "${LABELS[@]}" --thresholds "${THRESHOLDS[@]}" | tee -a "$W/report.md"
