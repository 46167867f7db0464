#!/usr/bin/env bash
# Train a tiny EchoStream model on the synthetic French->English corpus on CPU with the recipe of
# recipe.sh, then decode test and test_heldout offline and score them.
#
#   examples/synthetic_tiny/train.sh [ARCH] [UPDATES] [WORK_DIR] [FAIRSEQ_TRAIN_FLAGS...]
#
# ARCH defaults to the recipe's, echostream_emformer_conv_tiny (echostream_conformer_tiny is the
# baseline, echostream_zipformer_tiny the other streaming encoder), WORK_DIR to results/synthetic.
# The budget: UPDATES updates if given, else the recipe's (RECIPE_MINUTES minutes of training, at
# most RECIPE_UPDATES updates). The corpus is made once (echostream-prep skips
# finished steps) and shared by every ARCH; training resumes from SAVE/checkpoint_last.pt. Flags
# after WORK_DIR go to fairseq-train after the recipe's (for example --lr 1e-3).
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/synthetic_tiny/recipe.sh
ARCH=${1:-$RECIPE_ARCH}
UPDATES=${2:-$RECIPE_UPDATES}
HOURS=$([ $# -ge 2 ] && echo 0 || awk "BEGIN { printf \"%.4f\", $RECIPE_MINUTES / 60 }")
WORK=${3:-results/synthetic}
BIN=${BIN:-.venv/bin}
DATA=$WORK/corpus
SAVE=$WORK/$ARCH
export PYTHONWARNINGS=ignore

"$BIN/echostream-prep" synthetic --out "$DATA" "${RECIPE_PREP[@]}"

"$BIN/fairseq-train" "$DATA" --user-dir echostream_fairseq --arch "$ARCH" "${RECIPE_TRAIN[@]}" "${@:4}" \
  --max-update "$UPDATES" --stop-time-hours "$HOURS" --save-dir "$SAVE" --log-format simple --log-interval 50 2>&1 | tee -a "$SAVE.train.log"

for SPLIT in test test_heldout; do
  "$BIN/fairseq-generate" "$DATA" --user-dir echostream_fairseq \
    --task echostream_speech_to_speech --path "$SAVE/checkpoint_last.pt" \
    --gen-subset "$SPLIT" --max-tokens 8000 --beam 5 --asr-beam 16 --cpu --results-path "$SAVE/generate_$SPLIT" \
    > "$SAVE.generate_$SPLIT.log" 2>&1
  echo "$SPLIT:"
  "$BIN/echostream-score" --results-path "$SAVE/generate_$SPLIT" --data "$DATA" --split "$SPLIT" \
    --json "$SAVE/scores_$SPLIT.json"
done
