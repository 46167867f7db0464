#!/usr/bin/env bash
# The 320 ms runs of docs/results/2026-12-07-policy-320ms.md: the rooms study's clean model (the
# demo's recipe, 4800 updates) speaking through the demo's iSTFT vocoder, with the policy's
# variants, and the units ceiling of that vocoder.
#
#   examples/rooms_study/policy_320.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
DATA=results/synthetic/corpus
W=results/rooms_study/clean
V=results/demo/vocoder_istft_tiny
VOCODER=(--vocoder "$V/generator.pt" --vocoder-cfg "$V/config.json" --dur-prediction)
export PYTHONWARNINGS=ignore
cut -f3 "$DATA/text/train.tsv" | tail -n +2 > "$W/train_english.txt"
CEIL=$W/ceiling_units
if [ ! -f "$CEIL/units.json" ]; then
  mkdir -p "$CEIL"
  cut -f2 "$DATA/units/test.tsv" | tail -n +2 > "$CEIL/test_units.txt"
  "$BIN/echostream-vocode" --in-code-file "$CEIL/test_units.txt" "${VOCODER[@]}" --results-path "$CEIL/wavs" > /dev/null
  "$BIN/echostream-asr-bleu" --wav-dir "$CEIL/wavs" --reference "$DATA/simuleval/test.target" \
    --lm-text "$W/train_english.txt" --json "$CEIL/units.json" > /dev/null
fi
echo "units ceiling: $(cat "$CEIL/units.json")"
RUNS=(); LABELS=()
source examples/s2st_simul.sh
simul() {  # simul SPLIT SEG NAME LABEL [agent flags...]
  RUNS+=("$W/$3"); LABELS+=("$4")
  s2st_simul "$W/$3" "$1" "$2" "$W/checkpoint_last.pt" "$W/train_english.txt" "${@:5}"
}
# these runs predate whole words as the default: the plain rows write subwords as they come
simul test 320 s2st_test_320ms "test 320 ms" --whole-word off
simul test 320 s2st_test_320ms_ww "test 320 ms, --whole-word on" --whole-word on
simul test 320 s2st_test_320ms_k1 "test 320 ms, --lagging-k1 1" --lagging-k1 1 --whole-word off
simul test 2000 s2st_test_2000ms "test 2000 ms"
simul test_heldout 320 s2st_test_heldout_320ms "test_heldout 320 ms" --whole-word off
simul test_heldout 320 s2st_test_heldout_320ms_ww "test_heldout 320 ms, --whole-word on" --whole-word on
"$BIN/echostream-simul-report" "${RUNS[@]}" --labels "${LABELS[@]}" --reference "$DATA/simuleval/test.target" \
  --json "$W/policy_320.json" | tee "$W/policy_320.md"
