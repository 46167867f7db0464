#!/usr/bin/env bash
# The runs of docs/results/2026-12-07-mark-pause.md: the demo's model (make demo first) with
# --sentence-mark-pause-ms at each given value: the text agent at 320 ms on test and test_heldout,
# and the demo's 3-minute stream (echostream-longform, its sentences one by one too).
#
#   examples/longform/mark_pause_study.sh [MS ...]     (default: 0 120 200 280)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONWARNINGS=ignore
BIN=${BIN:-.venv/bin}
DATA=results/synthetic/corpus
SAVE=results/demo/echostream_emformer_conv_tiny
OUT=results/mark_pause
mkdir -p "$OUT"
VALUES=("$@")
[ ${#VALUES[@]} -gt 0 ] || VALUES=(0 120 200 280)
RUNS=(); LABELS=()
for MS in "${VALUES[@]}"; do
  for SPLIT in test test_heldout; do
    R=$OUT/s2tt_${SPLIT}_320ms_mark${MS}
    RUNS+=("$R"); LABELS+=("$SPLIT, $MS ms")
    [ -f "$R/scores.tsv" ] && continue
    "$BIN/simuleval" --agent agents/echostream_s2tt_agent.py \
      --source "$DATA/simuleval/$SPLIT.source" --target "$DATA/simuleval/$SPLIT.target" --source-segment-size 320 \
      --model-path "$SAVE/checkpoint_last.pt" --data-bin "$DATA" --output "$R" --extra-output-dir "$R/text" \
      --quality-metrics BLEU --latency-metrics AL AP DAL StartOffset EndOffset --threads 1 \
      --sentence-mark-pause-ms "$MS" > "$R.log" 2>&1
  done
  L=$OUT/longform_3min_mark${MS}
  [ -f "$L/stream_3min.json" ] || "$BIN/echostream-longform" --model-path "$SAVE/checkpoint_last.pt" \
    --data-bin "$DATA" --streams results/demo/longform_streams --out "$L" --sentence-level --threads 1 \
    --sentence-mark-pause-ms "$MS" > "$L.md" 2> "$L.log"
  echo "--sentence-mark-pause-ms $MS:"; cat "$L.md"
done
# test and test_heldout hold the same sentences: one reference
"$BIN/echostream-simul-report" "${RUNS[@]}" --labels "${LABELS[@]}" --reference "$DATA/simuleval/test.target"
# the silence after each mark: inside test's sentences, and at the stream's boundaries
"$BIN/python" examples/longform/mark_pauses.py "$SAVE/checkpoint_last.pt" "$DATA" "$DATA/simuleval/test.source" \
  > "$OUT/mark_pauses_test.tsv" 2> /dev/null
echo results/demo/longform_streams/stream_3min.wav > "$OUT/stream.list"
"$BIN/python" examples/longform/mark_pauses.py "$SAVE/checkpoint_last.pt" "$DATA" "$OUT/stream.list" \
  > "$OUT/mark_pauses_stream.tsv" 2> /dev/null
