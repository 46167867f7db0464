#!/usr/bin/env bash
# The iSTFT vocoder study of docs/vocoders.md and docs/server.md, as it ran (2026-12-06): the tiny
# iSTFT generator at the demo's vocoder budget (2000 updates, then resumed to 6000), the test
# split's reference units through it (ASR-BLEU), the demo model at 320 ms under SimulEval with it,
# then many streams with it and with the demo's HiFi-GAN, and the full-size system with a random
# iSTFT generator in each --model-dtype. Needs a `make demo` that trained the HiFi-GAN
# (VOCODER=hifigan: results/demo/vocoder_tiny) and the conv Emformer demo model.
set -euo pipefail
BIN=${BIN:-.venv/bin}
DATA=results/synthetic/corpus
W=results/vocoder_study
MODEL=results/demo/echostream_emformer_conv_tiny/checkpoint_last.pt
mkdir -p "$W"
cut -f3 "$DATA/text/train.tsv" | tail -n +2 > "$W/train_english.txt"
cut -f2 "$DATA/units/test.tsv" | tail -n +2 > "$W/test_units.txt"
train() {  # train SAVE_DIR UPDATES
  "$BIN/echostream-train-vocoder" --data "$DATA" --save-dir "$1" --preset tiny --generator istft \
    --max-updates "$2" --train-utterances 1000 --threads 2 --no-progress
}
train "$W/tiny_istft" 2000
cp -r "$W/tiny_istft" "$W/tiny_istft_6k"
train "$W/tiny_istft_6k" 6000
for name in tiny_istft tiny_istft_6k; do
  "$BIN/echostream-vocode" --in-code-file "$W/test_units.txt" --vocoder "$W/$name/generator.pt" \
    --vocoder-cfg "$W/$name/config.json" --dur-prediction --results-path "$W/ceil_$name/units_wavs" > /dev/null
  "$BIN/echostream-asr-bleu" --wav-dir "$W/ceil_$name/units_wavs" --reference "$DATA/simuleval/test.target" \
    --lm-text "$W/train_english.txt" --json "$W/ceil_$name/units.json" > /dev/null
done
V=$W/tiny_istft_6k
"$BIN/simuleval" --agent agents/echostream_s2st_agent.py --user-dir echostream_fairseq/evaluation/asr_bleu \
  --source "$DATA/simuleval/test.source" --target "$DATA/simuleval/test.target" --source-segment-size 320 \
  --model-path "$MODEL" --data-bin "$DATA" --vocoder "$V/generator.pt" --vocoder-cfg "$V/config.json" \
  --dur-prediction --output "$W/s2st_test_320ms_istft" --extra-output-dir "$W/s2st_test_320ms_istft/text" \
  --quality-metrics ASR_BLEU_OFFLINE --asr-bleu-lm-text "$W/train_english.txt" \
  --latency-metrics AL AP DAL StartOffset EndOffset ATD --computation-aware --threads 2
# many tiny streams, each vocoder in turn, twice (the first iSTFT run also runs 4 full-size streams)
for run in 1 2; do
  for v in results/demo/vocoder_tiny "$V"; do
    name=$(basename "$v")
    counts=(1 16 32); full=(--full-size-streams)
    [ "$name" = tiny_istft_6k ] && counts=(1 16 32 48 64)
    [ "$name" = tiny_istft_6k ] && [ $run = 1 ] && full=(--full-size-streams 1 4 --full-size-vocoder istft)
    [ $run = 2 ] && counts=(1 16 32 48)
    "$BIN/echostream-bench-batch" --data "$DATA" --model "$MODEL" --vocoder "$v/generator.pt" \
      --vocoder-cfg "$v/config.json" --streams "${counts[@]}" "${full[@]}" --threads 2 \
      --out "$W/bench_istft_${name}_run$run"
  done
done
# 4 full-size streams with the iSTFT vocoder in each dtype, in turn, twice; then StreamSpeech's HiFi-GAN
full() {  # full TAG VOCODER DTYPE
  "$BIN/echostream-bench-batch" --data "$DATA" --model "$MODEL" --vocoder "$V/generator.pt" --vocoder-cfg "$V/config.json" \
    --streams 1 --full-size-streams 4 --full-size-vocoder "$2" --model-dtype "$3" --threads 2 --ticks 20 \
    --out "$W/bench_full_$1_$3"
}
for run in 1 2; do
  for dtype in fp32 int8 bf16; do full "istft_t20_r$run" istft "$dtype"; done
done
for dtype in fp32 int8; do full hifigan_t20 hifigan "$dtype"; done
# (the 10-tick column of the full-size table: one more run of each dtype, --full-size-streams 1 4, 10 ticks)
# the sentence ends' last writes decoded together, and 4 frames of vocoder context: each setting in
# turn, twice ("before" ran the commit before that change, from a git worktree)
for run in 1 2; do
  for setting in before after after_lc4; do
    extra=(); [ "$setting" = after_lc4 ] && extra=(--vocoder-left-context 4)
    "$BIN/echostream-bench-batch" --data "$DATA" --model "$MODEL" --vocoder results/demo/vocoder_istft_tiny/generator.pt \
      --vocoder-cfg results/demo/vocoder_istft_tiny/config.json --streams 1 16 32 --full-size-streams --threads 2 \
      "${extra[@]}" --out "$W/bench_ends_${setting}_r$run"
  done
done
