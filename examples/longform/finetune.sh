#!/usr/bin/env bash
# Teach a trained model where sentences end, then score it on long-form streams.
#
#   examples/longform/finetune.sh [CHECKPOINT] [UPDATES]
#
# CHECKPOINT defaults to the demo's single-sentence model, the first step of its training (which
# make demo fine-tunes this way itself: results/demo/DEMO_ARCH_sentences/checkpoint_last.pt; DEMO_ARCH,
# the architecture of CHECKPOINT, to the recipe's),
# UPDATES to RECIPE_LONGFORM_UPDATES of examples/synthetic_tiny/recipe.sh (1000: about 16 minutes
# on one thread of the 2-core machine).
# 1. echostream-prep concat: examples of 2-3 train sentences joined with pauses, and the split
#    train_concat_mix (the single sentences, then them) in the corpus DATA;
# 2. fairseq-train from CHECKPOINT with the recipe's RECIPE_LONGFORM flags (--asr-sentence-ends;
#    the MT decoder and the units learn each concatenation's last sentence);
# 3. echostream-prep longform: 1-, 5- and 10-minute test streams of new sentences;
# 4. echostream-longform: resegmented BLEU, each sentence alone, boundaries and latency.
# Every step is skipped when its output is already there (an interrupted fine-tune starts over).
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/synthetic_tiny/recipe.sh
DEMO_ARCH=${DEMO_ARCH:-$RECIPE_ARCH}
CKPT=${1:-results/demo/${DEMO_ARCH}_sentences/checkpoint_last.pt}
UPDATES=${2:-$RECIPE_LONGFORM_UPDATES}
BIN=${BIN:-.venv/bin}
DATA=${DATA:-results/synthetic/corpus}
WORK=${WORK:-results/longform_finetune}
export PYTHONWARNINGS=ignore
test -f "$CKPT" || { echo "$CKPT: no such checkpoint (run make demo first, or name one)"; exit 1; }
mkdir -p "$WORK"

if [ ! -f "$DATA/train_concat_mix.tsv" ]; then
  "$BIN/echostream-prep" concat --corpus "$DATA" "${RECIPE_LONGFORM_CONCAT[@]}"
fi
if [ ! -f "$WORK/ckpt/.done_$UPDATES" ]; then
  "$BIN/fairseq-train" "$DATA" --user-dir echostream_fairseq --arch "$DEMO_ARCH" \
    "${RECIPE_LONGFORM[@]}" --restore-file "$CKPT" --max-update "$UPDATES" --save-dir "$WORK/ckpt" \
    --log-format simple --log-interval 50 2>&1 | tee -a "$WORK/train.log"
  touch "$WORK/ckpt/.done_$UPDATES"
fi
if [ ! -f "$WORK/streams/stream_10min.wav" ]; then
  "$BIN/echostream-prep" longform --corpus "$DATA" --out "$WORK/streams" --minutes 1 5 10
fi
"$BIN/echostream-longform" --model-path "$WORK/ckpt/checkpoint_last.pt" --data-bin "$DATA" \
  --streams "$WORK/streams" --out "$WORK/eval" --sentence-level --threads 1 | tee "$WORK/eval.md"
