#!/usr/bin/env bash
# Train the tiny unit HiFi-GAN on the synthetic corpus on CPU, vocode the test split's reference
# units with it and with the Griffin-Lim fallback, and run the vocoder benchmark.
#
#   examples/vocoder/train_tiny.sh [UPDATES] [WORK_DIR]
#
# UPDATES (the training budget) defaults to 2000 (about 8 minutes on 2 cores), WORK_DIR to
# results/synthetic_tiny (the corpus is shared with examples/synthetic_tiny/train.sh).
# Rerunning resumes the training where it stopped.
set -euo pipefail
UPDATES=${1:-2000}
WORK=${2:-results/synthetic_tiny}
BIN=${BIN:-.venv/bin}
DATA=$WORK/corpus
SAVE=$WORK/vocoder_tiny
export PYTHONWARNINGS=ignore

"$BIN/echostream-prep" synthetic --out "$DATA"

"$BIN/echostream-train-vocoder" --data "$DATA" --save-dir "$SAVE" --preset tiny --max-updates "$UPDATES"

# the test split's reference units, one line each, as a model would emit them (de-duplicated)
cut -f4 "$DATA/test.tsv" | tail -n +2 > "$SAVE/test_units.txt"
"$BIN/echostream-vocode" --in-code-file "$SAVE/test_units.txt" --vocoder "$SAVE/generator.pt" \
  --vocoder-cfg "$SAVE/config.json" --results-path "$SAVE/test_wavs" --dur-prediction
"$BIN/echostream-vocode" --in-code-file "$SAVE/test_units.txt" --vocoder-type griffin_lim \
  --vocoder "$DATA/units/kmeans.pt" --results-path "$SAVE/test_wavs_griffin_lim" --dur-prediction

"$BIN/echostream-bench-vocoder" --data "$DATA" --vocoder "$SAVE/generator.pt" --vocoder-cfg "$SAVE/config.json" \
  --out results/bench_vocoder
