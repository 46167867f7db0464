#!/usr/bin/env bash
# The latency-quality curve of the demo's model (make demo first), speech to speech on test at
# 160, 320, 640 and 2000 ms: the agents' defaults of the day the 320 ms gap was first measured
# (subwords as they come below 640 ms, every sentence-end mark) against today's (whole words, a
# mark ends a sentence after 200 ms of silence), and --lagging-k1 1 and --stride-n 2 at 320 ms.
#
#   examples/longform/policy_curve.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
DATA=results/synthetic/corpus
M=results/demo/echostream_emformer_conv_tiny
V=results/demo/vocoder_istft_tiny
W=results/policy_curve
VOCODER=(--vocoder "$V/generator.pt" --vocoder-cfg "$V/config.json" --dur-prediction)
export PYTHONWARNINGS=ignore
mkdir -p "$W"
cut -f3 "$DATA/text/train.tsv" | tail -n +2 > "$W/train_english.txt"
source examples/s2st_simul.sh
RUNS=(); LABELS=()
simul() {  # simul SEG NAME LABEL [agent flags...]
  RUNS+=("$W/$2"); LABELS+=("$3")
  s2st_simul "$W/$2" test "$1" "$M/checkpoint_last.pt" "$W/train_english.txt" "${@:4}"
}
for SEG in 160 320 640 2000; do
  simul "$SEG" "before_${SEG}ms" "$SEG ms, before" --whole-word auto --sentence-mark-pause-ms 0
  simul "$SEG" "after_${SEG}ms" "$SEG ms, now"
done
simul 320 after_320ms_k1 "320 ms, now, --lagging-k1 1" --lagging-k1 1
simul 320 after_320ms_k1_subwords "320 ms, now, --lagging-k1 1 --whole-word off" --lagging-k1 1 --whole-word off
simul 320 after_320ms_n2 "320 ms, now, --stride-n 2" --stride-n 2
"$BIN/echostream-simul-report" "${RUNS[@]}" --labels "${LABELS[@]}" --reference "$DATA/simuleval/test.target" \
  --json "$W/report.json" | tee "$W/report.md"
