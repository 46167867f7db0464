#!/usr/bin/env bash
# The runs of docs/results/2026-12-07-rooms-study.md: the demo's recipe trained without and with
# --rooms at an equal count of updates, each scored at 320 and 2000 ms on test and test_room.
#
#   examples/rooms_study/study.sh [UPDATES] [SHARE]
#
# UPDATES (default 4800: what the demo's 40 minutes gave on an AMD EPYC Zen 4) keeps the two runs
# equal whatever else shares the machine; SHARE (default 0.5) is the --rooms share of training
# sources. The two corpora differ only in those sources (and so in their CMVN statistics);
# test_room is the same audio in both. Outputs: results/rooms_study/{clean,rooms}/report.md and
# the breakdown of test_room by noise, SNR and reverberation. A SHARE other than 0.5 has its own
# corpus and run (results/synthetic/corpus_rooms_SHARE, results/rooms_study/rooms_SHARE).
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/synthetic_tiny/recipe.sh
UPDATES=${1:-4800}
SHARE=${2:-0.5}
BIN=${BIN:-.venv/bin}
OUT=results/rooms_study
mkdir -p "$OUT"
export PYTHONWARNINGS=ignore
# RECIPE_PREP carries --test-room
"$BIN/echostream-prep" synthetic --out results/synthetic/corpus "${RECIPE_PREP[@]}"
SUFFIX=$([ "$SHARE" = 0.5 ] || echo "_$SHARE")
ROOMS_DATA=results/synthetic/corpus_rooms$SUFFIX
"$BIN/echostream-prep" synthetic --out "$ROOMS_DATA" "${RECIPE_PREP[@]}" --rooms "$SHARE"

for RUN in clean rooms$SUFFIX; do
  DATA=$([ $RUN = clean ] && echo results/synthetic/corpus || echo "$ROOMS_DATA")
  SAVE=$OUT/$RUN
  if [ ! -f "$SAVE/.done_$UPDATES" ]; then
    "$BIN/fairseq-train" "$DATA" --user-dir echostream_fairseq --arch "$RECIPE_ARCH" "${RECIPE_TRAIN[@]}" \
      --max-update "$UPDATES" --save-dir "$SAVE" --log-format simple --log-interval 100 > "$SAVE.train.log" 2>&1
    touch "$SAVE/.done_$UPDATES"
  fi
  RUNS=(); LABELS=()
  for SPLIT in test test_room; do
    for SEG in 320 2000; do
      RUNS+=("$SAVE/s2tt_${SPLIT}_${SEG}ms"); LABELS+=("$SPLIT $SEG ms")
      [ -f "$SAVE/s2tt_${SPLIT}_${SEG}ms/scores.tsv" ] && continue
      # --whole-word auto: the default when these runs were made (subwords at 320 ms, words at 2000)
      "$BIN/simuleval" --agent agents/echostream_s2tt_agent.py --whole-word auto \
        --source "$DATA/simuleval/$SPLIT.source" --target "$DATA/simuleval/$SPLIT.target" --source-segment-size "$SEG" \
        --model-path "$SAVE/checkpoint_last.pt" --data-bin "$DATA" --output "$SAVE/s2tt_${SPLIT}_${SEG}ms" \
        --extra-output-dir "$SAVE/s2tt_${SPLIT}_${SEG}ms/text" --quality-metrics BLEU \
        --latency-metrics AL AP DAL StartOffset EndOffset --computation-aware --threads 1 > "$SAVE/s2tt_${SPLIT}_${SEG}ms.log" 2>&1
    done
  done
  # test and test_room hold the same sentences: one reference
  "$BIN/echostream-simul-report" "${RUNS[@]}" --labels "${LABELS[@]}" --reference "$DATA/simuleval/test.target" \
    --json "$SAVE/report.json" > "$SAVE/report.md"
  cat "$SAVE/report.md"
done
"$BIN/python" examples/rooms_study/breakdown.py results/synthetic/corpus/audio/rooms.tsv \
  results/synthetic/corpus/simuleval/test.target "$OUT"/clean/s2tt_test_room_320ms "$OUT/rooms$SUFFIX"/s2tt_test_room_320ms
