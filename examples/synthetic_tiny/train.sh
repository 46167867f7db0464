#!/usr/bin/env bash
# Train a tiny EchoStream model on the synthetic French->English corpus on CPU, then decode the
# test split offline and score it.
#
#   examples/synthetic_tiny/train.sh [ARCH] [UPDATES] [WORK_DIR]
#
# ARCH defaults to echostream_emformer_tiny (echostream_conformer_tiny is the baseline), UPDATES
# (the training budget) to 600, WORK_DIR to results/synthetic_tiny. The corpus is made once
# (echostream-prep skips finished steps) and shared by every ARCH.
set -euo pipefail
ARCH=${1:-echostream_emformer_tiny}
UPDATES=${2:-600}
WORK=${3:-results/synthetic_tiny}
BIN=${BIN:-.venv/bin}
DATA=$WORK/corpus
SAVE=$WORK/$ARCH
export PYTHONWARNINGS=ignore

"$BIN/echostream-prep" synthetic --out "$DATA"

"$BIN/fairseq-train" "$DATA" --user-dir echostream_fairseq \
  --task echostream_speech_to_speech --arch "$ARCH" --criterion echostream_multitask \
  --train-subset train --valid-subset dev --max-tokens 4000 \
  --optimizer adam --adam-betas '(0.9,0.98)' --lr 1e-3 --lr-scheduler inverse_sqrt \
  --warmup-updates 200 --clip-norm 1.0 --dropout 0.1 \
  --max-update "$UPDATES" --validate-interval 5 \
  --cpu --num-workers 0 --seed 1 --save-dir "$SAVE" --no-epoch-checkpoints \
  --log-format simple --log-interval 50 2>&1 | tee "$SAVE.train.log"

"$BIN/fairseq-generate" "$DATA" --user-dir echostream_fairseq \
  --task echostream_speech_to_speech --path "$SAVE/checkpoint_last.pt" \
  --gen-subset test --max-tokens 8000 --beam 5 --cpu --results-path "$SAVE/generate" \
  > "$SAVE.generate.log" 2>&1

"$BIN/echostream-score" --results-path "$SAVE/generate" --data "$DATA" --split test \
  --json "$SAVE/scores.json"
