#!/usr/bin/env bash
# The three encoders compared once trained (docs/results/2026-12-06-encoder-comparison.md): offline decoding on test and
# test_heldout, then simuleval's speech-to-speech agent at 160, 320, 640 and 2000 ms chunks on
# test. The Emformer and Zipformer run incrementally (a source chunk longer than the encoder's
# trained chunk is encoded in steps of it); the Conformer re-encodes the prefix at every
# chunk, as StreamSpeech's agent does (--reencode, the only mode its encoder has).
#
#   examples/learning_study/compare_encoders.sh
#
# NAME=CHECKPOINT pairs in MODELS (default: the recipe's three 3354-update runs of study.sh and the
# demo's Emformer); CORPUS the corpus they trained on; OUT the results folder. Steps already done
# are skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
CORPUS=${CORPUS:-results/study/corpus}
OUT=${OUT:-results/study/compare}
R=results/study/runs
MODELS=${MODELS:-"emformer=$R/g_lr2e-3/checkpoint_last.pt conformer=$R/k_conformer/checkpoint_last.pt zipformer=$R/k_zipformer/checkpoint_last.pt"}
CHUNKS=${CHUNKS:-"160 320 640 2000"}
export PYTHONWARNINGS=ignore
mkdir -p "$OUT"
cut -f3 "$CORPUS/text/train.tsv" | tail -n +2 > "$OUT/train_english.txt"  # the recogniser's LM text
VOCODER=(--vocoder-type griffin_lim --vocoder "$CORPUS/units/kmeans.pt" --dur-prediction)

RUNS=(); LABELS=()
for PAIR in $MODELS; do
  NAME=${PAIR%%=*}; CKPT=${PAIR#*=}
  MODE=(); [ "$NAME" = conformer ] && MODE=(--reencode)
  mkdir -p "$OUT/$NAME"
  for SPLIT in test test_heldout; do
    GEN=$OUT/$NAME/generate_$SPLIT
    if [ ! -f "$GEN/scores.json" ]; then
      "$BIN/fairseq-generate" "$CORPUS" --user-dir echostream_fairseq --task echostream_speech_to_speech \
        --path "$CKPT" --gen-subset "$SPLIT" --max-tokens 8000 --beam 5 --cpu --results-path "$GEN" \
        > "$GEN.log" 2>&1 || { echo "fairseq-generate failed: see $GEN.log"; exit 1; }
      "$BIN/echostream-score" --results-path "$GEN" --data "$CORPUS" --split "$SPLIT" --json "$GEN/scores.json" > /dev/null
    fi
    echo "$NAME $SPLIT offline: $(cat "$GEN/scores.json")"
  done
  for CHUNK in $CHUNKS; do
    RUN=$OUT/$NAME/s2st_test_${CHUNK}ms
    RUNS+=("$RUN"); LABELS+=("$NAME${MODE:+ (re-encode)} $CHUNK ms")
    [ -f "$RUN/scores.tsv" ] && continue
    rm -rf "$RUN"
    "$BIN/simuleval" --agent agents/echostream_s2st_agent.py --user-dir echostream_fairseq/evaluation/asr_bleu \
      --source "$CORPUS/simuleval/test.source" --target "$CORPUS/simuleval/test.target" \
      --source-segment-size "$CHUNK" --model-path "$CKPT" --data-bin "$CORPUS" "${MODE[@]}" \
      "${VOCODER[@]}" --output "$RUN" --extra-output-dir "$RUN/text" \
      --quality-metrics ASR_BLEU_OFFLINE --asr-bleu-lm-text "$OUT/train_english.txt" \
      --latency-metrics AL StartOffset EndOffset --computation-aware --threads 1 > "$RUN.log" 2>&1 \
      || { echo "simuleval failed: see $RUN.log"; exit 1; }
    echo "$NAME $CHUNK ms: done"
  done
done
"$BIN/echostream-simul-report" "${RUNS[@]}" --labels "${LABELS[@]}" \
  --reference "$CORPUS/simuleval/test.target" --json "$OUT/report.json" | tee "$OUT/report.md"
