# The speech-to-speech agent through simuleval on a split, scored by ASR-BLEU and latency, for the
# study scripts (sourced; examples/demo.sh has its own, which also tracks the vocoder's weights).
#
#   s2st_simul OUT SPLIT SEG MODEL LM_TEXT [agent flags...]
#
# Reads BIN, DATA and the array VOCODER (the vocoder's flags); skipped when OUT/scores.tsv exists.
s2st_simul() {
  local OUT=$1 SPLIT=$2 SEG=$3 MODEL=$4 LM_TEXT=$5
  [ -f "$OUT/scores.tsv" ] && return
  "$BIN/simuleval" --agent agents/echostream_s2st_agent.py --user-dir echostream_fairseq/evaluation/asr_bleu \
    --source "$DATA/simuleval/$SPLIT.source" --target "$DATA/simuleval/$SPLIT.target" --source-segment-size "$SEG" \
    --model-path "$MODEL" --data-bin "$DATA" "${VOCODER[@]}" --output "$OUT" --extra-output-dir "$OUT/text" \
    --quality-metrics ASR_BLEU_OFFLINE --asr-bleu-lm-text "$LM_TEXT" \
    --latency-metrics AL AP DAL StartOffset EndOffset ATD --computation-aware --threads 2 "${@:6}" > "$OUT.log" 2>&1
}
