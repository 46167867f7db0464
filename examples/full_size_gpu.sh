#!/usr/bin/env bash
# The StreamSpeech-sized recipe (CVSS-C Fr->En, one GPU), with StreamSpeech's optimisation settings:
# Adam (0.9, 0.98), lr 1e-3, inverse-sqrt with 10k warm-up, clip 1.0, loss weights from the
# multitask YAML (8 MT, 4 ASR CTC, 4 ST CTC), multi-chunk training and the streaming masks.
#
#   examples/full_size_gpu.sh CV_ROOT CVSS_ROOT [ARCH] [WORK_DIR]
#
# CV_ROOT: Common Voice French (clips/ and {train,dev,test}.tsv); CVSS_ROOT: CVSS-C fr-en.
# ARCH: echostream_emformer (default) or echostream_conformer (the baseline).
# Not run in this repository's CI (no GPU there); the tiny CPU recipe is.
set -euo pipefail
CV_ROOT=$1
CVSS_ROOT=$2
ARCH=${3:-echostream_emformer}
WORK=${4:-results/cvss_fr_en}
BIN=${BIN:-.venv/bin}
DATA=$WORK/corpus

"$BIN/echostream-prep" cvss --cv-root "$CV_ROOT" --cvss-root "$CVSS_ROOT" --out "$DATA"

"$BIN/fairseq-train" "$DATA" --user-dir echostream_fairseq \
  --task echostream_speech_to_speech --arch "$ARCH" --criterion echostream_multitask \
  --train-subset train --valid-subset dev --max-tokens 22000 --update-freq 2 \
  --optimizer adam --adam-betas '(0.9,0.98)' --lr 1e-3 --lr-scheduler inverse_sqrt \
  --warmup-updates 10000 --clip-norm 1.0 --dropout 0.1 --max-update 100000 \
  --num-workers 8 --seed 1 --save-dir "$WORK/$ARCH" --keep-last-epochs 10 \
  --log-format simple --log-interval 100

"$BIN/fairseq-generate" "$DATA" --user-dir echostream_fairseq \
  --task echostream_speech_to_speech --path "$WORK/$ARCH/checkpoint_best.pt" \
  --gen-subset test --max-tokens 50000 --beam 10 --results-path "$WORK/$ARCH/generate"

"$BIN/echostream-score" --results-path "$WORK/$ARCH/generate" --data "$DATA" --split test
