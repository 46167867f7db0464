#!/usr/bin/env bash
# The main job (`make demo`): from nothing to simultaneous speech-to-speech translation on CPU.
#
#   examples/demo.sh [UPDATES]
#
# 1. the synthetic French->English speech corpus (espeak-ng, 29 source voices, log-mel k-means
#    units, fbank precomputed, a held-out-voice test split, and test_room: the test sentences in
#    reverberant rooms with noise that training never draws);
# 2. fairseq-train DEMO_ARCH (the recipe's, echostream_emformer_conv_tiny) with the recipe of
#    examples/synthetic_tiny/recipe.sh, in two steps within the recipe's budget of RECIPE_MINUTES
#    minutes of training: the single sentences (resumed if interrupted) until RECIPE_MINUTES -
#    RECIPE_LONGFORM_MINUTES (at most RECIPE_UPDATES updates; given UPDATES, for UPDATES updates),
#    then the long-form fine-tune on sentences and their concatenations (echostream-prep concat),
#    which teaches the ASR CTC head to mark sentence ends (RECIPE_LONGFORM_UPDATES updates at most,
#    until RECIPE_MINUTES in all; started over if interrupted); TRAIN_HOURS, if set, is the whole
#    budget instead;
# 3. offline decoding (fairseq-generate, echostream-score) of test and test_heldout;
# 4. the unit vocoder: the tiny iSTFT generator, trained for VOCODER_UPDATES updates (6000, about
#    4-5 minutes on 2 cores; VOCODER=hifigan trains the tiny CodeHiFiGAN instead, 2000 updates in
#    6-8 minutes; VOCODER=griffin_lim uses the training-free fallback, VOCODER_DIR another trained
#    one), and the ceilings of speech output: the reference target speech, and the reference units
#    through the vocoder, transcribed by the same recogniser;
# 5. simuleval with the speech-to-speech agent at 320 ms and 2000 ms chunks on test, test_heldout
#    and test_room, and at 320 ms with --lagging-k1 1 and with --whole-word off on test: latency
#    (plain and computation-aware), ASR-BLEU (pocketsphinx with a domain LM from the training-side
#    English) and the text BLEU of the written translation;
# 6. a 3-minute stream of new sentences (echostream-prep longform) translated continuously at
#    320 ms (echostream-longform): its resegmented BLEU against that of its sentences one by one.
# Every step is skipped when its output is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
source examples/synthetic_tiny/recipe.sh
UPDATES=${1:-$RECIPE_UPDATES}
# fairseq's --stop-time-hours (0: no time limit): the recipe's minutes unless UPDATES is given;
# the single sentences stop RECIPE_LONGFORM_MINUTES earlier (fairseq counts a restored run's time),
# or halfway through a TRAIN_HOURS shorter than that
TRAIN_HOURS=${TRAIN_HOURS:-$([ $# -ge 1 ] && echo 0 || awk "BEGIN { printf \"%.4f\", $RECIPE_MINUTES / 60 }")}
SENTENCES_HOURS=$(awk "BEGIN { h = $TRAIN_HOURS - $RECIPE_LONGFORM_MINUTES / 60; printf \"%.4f\", ($TRAIN_HOURS == 0 ? 0 : (h > 0 ? h : $TRAIN_HOURS / 2)) }")
BIN=${BIN:-.venv/bin}
DATA=${DATA:-results/synthetic/corpus}
DEMO_ARCH=${DEMO_ARCH:-$RECIPE_ARCH}
case $DEMO_ARCH in echostream_*) ;; *) echo "DEMO_ARCH=$DEMO_ARCH is not an echostream architecture"; exit 1;; esac
# another architecture runs in its own folder: the simultaneous runs are named by split and chunk
WORK=${WORK:-results/demo$([ "$DEMO_ARCH" = "$RECIPE_ARCH" ] || echo "_$DEMO_ARCH")}
SAVE=$WORK/$DEMO_ARCH  # the demo's model (after the long-form fine-tune)
SENTENCES=${SAVE}_sentences  # the model of the first step
# a run cut by TRAIN_HOURS is another run than one of UPDATES updates
DONE=$([ "$TRAIN_HOURS" = 0 ] || echo "_${TRAIN_HOURS}h")
DONE_SENTENCES=$SENTENCES/.done_$UPDATES$DONE
DONE=$SAVE/.done_${UPDATES}_$RECIPE_LONGFORM_UPDATES$DONE
export PYTHONWARNINGS=ignore
mkdir -p "$WORK"

echo "== 1/6 corpus: $DATA"
"$BIN/echostream-prep" synthetic --out "$DATA" "${RECIPE_PREP[@]}"

echo "== 2/6 training $DEMO_ARCH on single sentences for $UPDATES updates$([ "$TRAIN_HOURS" = 0 ] || echo " or $SENTENCES_HOURS hours"): $SENTENCES"
if [ -f "$DONE_SENTENCES" ]; then
  echo "already trained"
else
  "$BIN/fairseq-train" "$DATA" --user-dir echostream_fairseq --arch "$DEMO_ARCH" \
    "${RECIPE_TRAIN[@]}" --max-update "$UPDATES" --stop-time-hours "$SENTENCES_HOURS" --save-dir "$SENTENCES" \
    --log-format tqdm 2>&1 | tee -a "$SENTENCES.train.log"
  test -f "$SENTENCES/checkpoint_last.pt" || { echo "training failed: see $SENTENCES.train.log"; exit 1; }
  touch "$DONE_SENTENCES"
fi
echo "   the long-form fine-tune: $RECIPE_LONGFORM_UPDATES updates$([ "$TRAIN_HOURS" = 0 ] || echo " or until $TRAIN_HOURS hours in all"): $SAVE"
if [ -f "$DONE" ]; then
  echo "already trained"
else
  if [ ! -f "$DATA/train_concat_mix.tsv" ]; then
    "$BIN/echostream-prep" concat --corpus "$DATA" "${RECIPE_LONGFORM_CONCAT[@]}"
  fi
  rm -rf "$SAVE"  # an interrupted fine-tune starts over from the first step's model
  "$BIN/fairseq-train" "$DATA" --user-dir echostream_fairseq --arch "$DEMO_ARCH" \
    "${RECIPE_LONGFORM[@]}" --restore-file "$SENTENCES/checkpoint_last.pt" --max-update "$RECIPE_LONGFORM_UPDATES" \
    --stop-time-hours "$TRAIN_HOURS" --save-dir "$SAVE" --log-format tqdm 2>&1 | tee "$SAVE.train.log"
  test -f "$SAVE/checkpoint_last.pt" || { echo "the long-form fine-tune failed: see $SAVE.train.log"; exit 1; }
  touch "$DONE"
fi

echo "== 3/6 offline decoding (fairseq-generate, beam 5)"
for SPLIT in test test_heldout test_room; do
  GEN=$SAVE/generate_$SPLIT
  if [ ! -f "$GEN/scores.json" ]; then
    "$BIN/fairseq-generate" "$DATA" --user-dir echostream_fairseq --task echostream_speech_to_speech \
      --path "$SAVE/checkpoint_last.pt" --gen-subset "$SPLIT" --max-tokens 8000 --beam 5 --asr-beam 16 --cpu \
      --results-path "$GEN" > "$GEN.log" 2>&1 || { echo "fairseq-generate failed: see $GEN.log"; exit 1; }
    "$BIN/echostream-score" --results-path "$GEN" --data "$DATA" --split "$SPLIT" --json "$GEN/scores.json" > /dev/null
  fi
  echo "$SPLIT: $(cat "$GEN/scores.json")"
done

echo "== 4/6 the vocoder, and the ceilings of the speech output (the recogniser on reference speech and on vocoded reference units)"
VOCODER=${VOCODER:-istft}
case "$VOCODER" in
  istft) VOCODER_UPDATES=${VOCODER_UPDATES:-6000} ;;
  hifigan) VOCODER_UPDATES=${VOCODER_UPDATES:-2000} ;;
  griffin_lim) ;;
  *) echo "VOCODER must be istft, hifigan or griffin_lim, got $VOCODER"; exit 2 ;;
esac
if [ "$VOCODER" = griffin_lim ]; then
  VOCODER_DIR=griffin_lim
  VOCODER=(--vocoder-type griffin_lim --vocoder "$DATA/units/kmeans.pt" --dur-prediction)
  echo "Griffin-Lim from the unit centroids (no training)"
else
  if [ -z "${VOCODER_DIR:-}" ]; then
    VOCODER_DIR=$WORK/vocoder_$([ "$VOCODER" = istft ] && echo istft_tiny || echo tiny)
    if [ ! -f "$VOCODER_DIR/.done_$VOCODER_UPDATES" ]; then
      "$BIN/echostream-train-vocoder" --data "$DATA" --save-dir "$VOCODER_DIR" --preset tiny --generator "$VOCODER" \
        --max-updates "$VOCODER_UPDATES" --train-utterances 1000 --threads 2 --no-progress \
        > "$VOCODER_DIR.log" 2>&1 || { echo "vocoder training failed: see $VOCODER_DIR.log"; exit 1; }
      touch "$VOCODER_DIR/.done_$VOCODER_UPDATES"
    fi
  fi
  VOCODER=(--vocoder "$VOCODER_DIR/generator.pt" --vocoder-cfg "$VOCODER_DIR/config.json" --dur-prediction)
  echo "unit vocoder from $VOCODER_DIR ($(grep -q '"generator": "istft"' "$VOCODER_DIR/config.json" && echo iSTFT || echo HiFi-GAN))"
fi
# what the reused outputs below were made with: the vocoder's folder and its weights
VOCODER_ID=$VOCODER_DIR$([ -f "$VOCODER_DIR/generator.pt" ] && echo " $(cksum < "$VOCODER_DIR/generator.pt" | cut -d' ' -f1)")
# the recogniser's language model: the English side of the training split
cut -f3 "$DATA/text/train.tsv" | tail -n +2 > "$WORK/train_english.txt"
CEIL=$WORK/ceilings_$(basename "$VOCODER_DIR")
mkdir -p "$CEIL"
if [ ! -f "$CEIL/units.json" ] || [ "$(cat "$CEIL/vocoder.id" 2>/dev/null)" != "$VOCODER_ID" ]; then
  cut -f2 "$DATA/units/test.tsv" | tail -n +2 > "$CEIL/test_units.txt"
  "$BIN/echostream-vocode" --in-code-file "$CEIL/test_units.txt" "${VOCODER[@]}" --results-path "$CEIL/units_wavs" > /dev/null
  "$BIN/echostream-asr-bleu" --wav-dir "$CEIL/units_wavs" --reference "$DATA/simuleval/test.target" \
    --lm-text "$WORK/train_english.txt" --json "$CEIL/units.json" > /dev/null
  echo "$VOCODER_ID" > "$CEIL/vocoder.id"
fi
if [ ! -f "$CEIL/speech.json" ]; then
  cut -f1 "$DATA/text/test.tsv" | tail -n +2 | sed "s|^|$PWD/$DATA/audio/tgt/|; s|$|.wav|" > "$CEIL/test_speech.txt"
  "$BIN/echostream-asr-bleu" --wav-list "$CEIL/test_speech.txt" --reference "$DATA/simuleval/test.target" \
    --lm-text "$WORK/train_english.txt" --json "$CEIL/speech.json" > /dev/null
fi

echo "== 5/6 simultaneous speech-to-speech translation (simuleval)"
# what a run and the stream are reused with: the same vocoder, model and translator code (a change
# of the agents' defaults, or a retrained model, redoes them)
CODE_ID=$(find echostream_fairseq agents -name '*.py' -print0 | sort -z | xargs -0 cat | cksum | cut -d' ' -f1)
RUN_ID="$VOCODER_ID; model $(cksum < "$SAVE/checkpoint_last.pt" | cut -d' ' -f1); code $CODE_ID"
RUNS=(); LABELS=()
simul() {  # simul SPLIT SEG NAME LABEL [agent flags...]
  local SPLIT=$1 SEG=$2 OUT=$WORK/${3:?a run name}
  RUNS+=("$OUT"); LABELS+=("$4")
  if [ -f "$OUT/scores.tsv" ] && [ "$(cat "$OUT.inputs" 2>/dev/null)" = "$RUN_ID" ]; then echo "$4: done before"; return; fi
  rm -rf "$OUT" "$OUT.inputs" "$OUT.vocoder"
  "$BIN/simuleval" --agent agents/echostream_s2st_agent.py \
    --user-dir echostream_fairseq/evaluation/asr_bleu \
    --source "$DATA/simuleval/$SPLIT.source" --target "$DATA/simuleval/$SPLIT.target" \
    --source-segment-size "$SEG" --model-path "$SAVE/checkpoint_last.pt" --data-bin "$DATA" \
    "${VOCODER[@]}" --output "$OUT" --extra-output-dir "$OUT/text" \
    --quality-metrics ASR_BLEU_OFFLINE --asr-bleu-lm-text "$WORK/train_english.txt" \
    --latency-metrics AL AP DAL StartOffset EndOffset ATD --computation-aware --threads 2 "${@:5}" \
    2>&1 | tee "$OUT.log" | grep --line-buffered -v -E "INFO|Warning|warn\(" || true
  test -f "$OUT/scores.tsv" || { echo "simuleval failed: see $OUT.log"; exit 1; }
  echo "$RUN_ID" > "$OUT.inputs"
}
for SPLIT in test test_heldout test_room; do
  for SEG in 320 2000; do
    simul "$SPLIT" "$SEG" "s2st_${SPLIT}_${SEG}ms" "$SPLIT $SEG ms"
  done
done
# the policy holding one subword back: later by about 130 ms, the words it writes heard first
simul test 320 s2st_test_320ms_k1 "test 320 ms, --lagging-k1 1" --lagging-k1 1
# the words as they come (StreamSpeech's rule below 640 ms): what whole words gain, and cost
simul test 320 s2st_test_320ms_subwords "test 320 ms, --whole-word off" --whole-word off

echo "== 6/6 a 3-minute stream of new sentences, translated continuously at 320 ms (echostream-longform)"
STREAMS=$WORK/longform_streams
if [ ! -f "$STREAMS/stream_3min.wav" ]; then
  "$BIN/echostream-prep" longform --corpus "$DATA" --out "$STREAMS" --minutes 3 > /dev/null
fi
LONG=$WORK/longform_3min
if [ ! -f "$LONG/stream_3min.json" ] || [ "$(cat "$LONG.inputs" 2>/dev/null)" != "$RUN_ID" ]; then
  rm -f "$LONG.inputs"
  "$BIN/echostream-longform" --model-path "$SAVE/checkpoint_last.pt" --data-bin "$DATA" --streams "$STREAMS" \
    --out "$LONG" --sentence-level --threads 2 > "$LONG.md" 2> "$LONG.log" \
    || { echo "echostream-longform failed: see $LONG.log"; exit 1; }
  echo "$RUN_ID" > "$LONG.inputs"
fi
cat "$LONG.md"

# test, test_heldout and test_room hold the same sentences, so one reference serves all three
"$BIN/echostream-simul-report" "${RUNS[@]}" --labels "${LABELS[@]}" \
  --reference "$DATA/simuleval/test.target" --json "$WORK/report.json" | tee "$WORK/report.md"
"$BIN/python" - "$SENTENCES" "$SAVE" "$CEIL" <<'EOF' | tee -a "$WORK/report.md"
import json, sys
import torch
from echostream_fairseq.tasks.checkpoint_configs import allow_fairseq_checkpoint_configs
sentences, save, ceil = sys.argv[1:]
allow_fairseq_checkpoint_configs()
first, ckpt = (torch.load(f"{d}/checkpoint_last.pt", map_location="cpu", weights_only=True) for d in (sentences, save))
model = ckpt['cfg']['model']
conv = getattr(model, "emformer_conv_kernel_size", 0) or 0  # a flag beside the arch's name
updates = [c['optimizer_history'][-1]['num_updates'] for c in (first, ckpt)]
print(f"\nModel: {model.arch}{f' with --emformer-conv-kernel-size {conv}' if conv and 'conv' not in model.arch else ''}, "
      f"{updates[0]} updates on single sentences and {updates[1]} of the long-form fine-tune in "
      f"{ckpt['extra_state']['previous_training_time'] / 60:.1f} minutes of training "
      f"({first['extra_state']['previous_training_time'] / 60:.1f} for the first).")
print("\n| offline (fairseq-generate, beam 5; ASR: lexicon and trigram, beam 16) | ASR WER % | MT BLEU | ST CTC BLEU | unit error % |\n|---|---|---|---|---|")
for split in ("test", "test_heldout", "test_room"):
    s = json.load(open(f"{save}/generate_{split}/scores.json"))
    print(f"| {split} | {s['asr_wer']:.1f} | {s['mt_bleu']:.1f} | {s['st_ctc_bleu']:.1f} | {s['unit_er']:.1f} |")
units, speech = (json.load(open(f"{ceil}/{n}.json"))["bleu"] for n in ("units", "speech"))
print(f"\nCeilings of ASR-BLEU on test: reference units through the vocoder {units:.1f}; reference target speech {speech:.1f}.")
EOF
echo "
The 3-minute stream (echostream-longform, 320 ms, text):" >> "$WORK/report.md"
cat "$LONG.md" >> "$WORK/report.md"
echo
echo "Output speech: $WORK/s2st_{test,test_heldout,test_room}_{320,2000}ms/wavs/ and $WORK/s2st_test_320ms_{k1,subwords}/wavs/ ({N}_pred.wav, N = line of the source list)."
echo "Text: .../text/asr.txt, translation.txt, units.txt. Per-instance delays: .../instances.log."
