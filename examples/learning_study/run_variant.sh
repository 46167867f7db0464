#!/usr/bin/env bash
# One variant of the learning-curve study: the demo's former recipe (the baseline) with the given
# fairseq flags appended (later flags win), trained for a fixed wall-clock budget, validated on dev
# every 100 updates (losses, ASR/ST CTC WER, unit error rate, greedy MT BLEU).
#
#   examples/learning_study/run_variant.sh NAME MINUTES THREADS [FAIRSEQ FLAGS...]
#
# CORPUS (default results/study/corpus) holds the corpus with train_{N}.tsv subsets
# (make_subsets.py); OUT (default results/study/runs) gets NAME.log (fairseq's JSON log lines);
# with SAVE=1 the checkpoints go to OUT/NAME/ (checkpoint_last.pt), otherwise nothing is saved.
set -euo pipefail
NAME=$1; MINUTES=$2; THREADS=$3; shift 3
BIN=${BIN:-.venv/bin}
CORPUS=${CORPUS:-results/study/corpus}
OUT=${OUT:-results/study/runs}
mkdir -p "$OUT"
SAVING=(--no-save)
if [ "${SAVE:-0}" = 1 ]; then SAVING=(--save-dir "$OUT/$NAME" --no-epoch-checkpoints); fi
HOURS=$(python3 -c "print($MINUTES / 60)")
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS PYTHONWARNINGS=ignore
"$BIN/fairseq-train" "$CORPUS" --user-dir echostream_fairseq \
  --task echostream_speech_to_speech --arch echostream_emformer_tiny --criterion echostream_multitask \
  --train-subset train_1000 --valid-subset dev --max-tokens 4000 \
  --optimizer adam --adam-betas '(0.9,0.98)' --lr 1e-3 --lr-scheduler inverse_sqrt \
  --warmup-updates 200 --clip-norm 1.0 --dropout 0.1 \
  --cpu --num-workers 0 --seed 1 "${SAVING[@]}" --max-epoch 100000 \
  --validate-interval 100000 --validate-interval-updates 100 \
  --log-format json --log-interval 25 --stop-time-hours "$HOURS" \
  "$@" > "$OUT/$NAME.log" 2>&1
