#!/usr/bin/env bash
# The causal vocoder study of docs/vocoders.md and docs/server.md, as it ran (2026-12-06): three
# causal tiny HiFi-GANs at the demo's vocoder budget, the test split's reference units through
# each (ASR-BLEU), then the vocoders under the load of 32 streams. Needs `make demo` done first
# (its corpus, its model and its vocoder). The runs quoted in the docs used the learning study's
# t_emformer_conv15 model (the same recipe on one thread) in place of the demo's, before make demo ran.
set -euo pipefail
BIN=${BIN:-.venv/bin}
DATA=results/synthetic/corpus
W=results/vocoder_study
mkdir -p "$W"
cut -f3 "$DATA/text/train.tsv" | tail -n +2 > "$W/train_english.txt"
cut -f2 "$DATA/units/test.tsv" | tail -n +2 > "$W/test_units.txt"
for ahead in 0 2 3; do
  name=tiny_causal$([ "$ahead" = 0 ] || echo "_la$ahead")
  "$BIN/echostream-train-vocoder" --data "$DATA" --save-dir "$W/$name" --preset tiny --causal \
    --lookahead-frames "$ahead" --max-updates 2000 --train-utterances 1000 --threads 2 --no-progress
done
for name in tiny_causal tiny_causal_la2 tiny_causal_la3; do
  "$BIN/echostream-vocode" --in-code-file "$W/test_units.txt" --vocoder "$W/$name/generator.pt" \
    --vocoder-cfg "$W/$name/config.json" --dur-prediction --results-path "$W/ceil_$name/units_wavs" > /dev/null
  "$BIN/echostream-asr-bleu" --wav-dir "$W/ceil_$name/units_wavs" --reference "$DATA/simuleval/test.target" \
    --lm-text "$W/train_english.txt" --json "$W/ceil_$name/units.json" > /dev/null
done
# the same load replayed to the demo's vocoder and the causal one with 2 frames of lookahead
"$BIN/python" examples/vocoder/replay_requests.py 32 results/demo/vocoder_tiny "$W/tiny_causal_la2"
# the whole system, each vocoder in turn, twice
for run in 1 2; do
  for v in results/demo/vocoder_tiny "$W/tiny_causal_la2"; do
    "$BIN/echostream-bench-batch" --data "$DATA" --model results/demo/echostream_emformer_conv_tiny/checkpoint_last.pt \
      --vocoder "$v/generator.pt" --vocoder-cfg "$v/config.json" --streams 1 16 32 --full-size-streams --threads 2 \
      --out "$W/bench_$(basename "$v")_run$run"
  done
done
