#!/usr/bin/env bash
# The main job (`make demo`): from nothing to simultaneous speech-to-speech translation on CPU.
#
#   examples/demo.sh [UPDATES]
#
# 1. the synthetic French->English speech corpus (espeak-ng, log-mel k-means units);
# 2. fairseq-train echostream_emformer_tiny for UPDATES updates (default 1500, resumed if
#    interrupted);
# 3. the training-free Griffin-Lim vocoder (VOCODER_DIR=results/synthetic_tiny/vocoder_tiny uses a
#    HiFi-GAN from examples/vocoder/train_tiny.sh instead);
# 4. simuleval with the speech-to-speech agent on the 100 test utterances at 320 ms and 2000 ms
#    chunks: latency (plain and computation-aware), ASR-BLEU (pocketsphinx with a domain LM from
#    the training-side English) and the text BLEU of the written translation.
# Every step is skipped when its output is already there.
set -euo pipefail
UPDATES=${1:-1500}
BIN=${BIN:-.venv/bin}
DATA=${DATA:-results/synthetic_tiny/corpus}
WORK=${WORK:-results/demo}
SAVE=$WORK/echostream_emformer_tiny
export PYTHONWARNINGS=ignore
mkdir -p "$WORK"

echo "== 1/4 corpus: $DATA"
"$BIN/echostream-prep" synthetic --out "$DATA"

echo "== 2/4 training echostream_emformer_tiny for $UPDATES updates: $SAVE"
if [ -f "$SAVE/.done_$UPDATES" ]; then
  echo "already trained"
else
  "$BIN/fairseq-train" "$DATA" --user-dir echostream_fairseq \
    --task echostream_speech_to_speech --arch echostream_emformer_tiny --criterion echostream_multitask \
    --train-subset train --valid-subset dev --max-tokens 4000 \
    --optimizer adam --adam-betas '(0.9,0.98)' --lr 1e-3 --lr-scheduler inverse_sqrt \
    --warmup-updates 200 --clip-norm 1.0 --dropout 0.1 \
    --max-update "$UPDATES" --validate-interval 5 \
    --cpu --num-workers 0 --seed 1 --save-dir "$SAVE" --no-epoch-checkpoints \
    --log-format tqdm 2>&1 | tee -a "$SAVE.train.log"
  test -f "$SAVE/checkpoint_last.pt" || { echo "training failed: see $SAVE.train.log"; exit 1; }
  touch "$SAVE/.done_$UPDATES"
fi

echo "== 3/4 vocoder"
if [ -n "${VOCODER_DIR:-}" ]; then
  VOCODER=(--vocoder "$VOCODER_DIR/generator.pt" --vocoder-cfg "$VOCODER_DIR/config.json" --dur-prediction)
  echo "CodeHiFiGAN from $VOCODER_DIR"
else
  VOCODER=(--vocoder-type griffin_lim --vocoder "$DATA/units/kmeans.pt" --dur-prediction)
  echo "Griffin-Lim from the unit centroids (no training)"
fi
# the recogniser's language model: the English side of the training split
cut -f3 "$DATA/text/train.tsv" | tail -n +2 > "$WORK/train_english.txt"

echo "== 4/4 simultaneous speech-to-speech translation (simuleval)"
RUNS=()
for SEG in 320 2000; do
  OUT=$WORK/s2st_${SEG}ms
  RUNS+=("$OUT")
  if [ -f "$OUT/scores.tsv" ]; then echo "$SEG ms: done before"; continue; fi
  rm -rf "$OUT"
  "$BIN/simuleval" --agent agents/echostream_s2st_agent.py \
    --user-dir echostream_fairseq/evaluation/asr_bleu \
    --source "$DATA/simuleval/test.source" --target "$DATA/simuleval/test.target" \
    --source-segment-size "$SEG" --model-path "$SAVE/checkpoint_last.pt" --data-bin "$DATA" \
    "${VOCODER[@]}" --output "$OUT" --extra-output-dir "$OUT/text" \
    --quality-metrics ASR_BLEU_OFFLINE --asr-bleu-lm-text "$WORK/train_english.txt" \
    --latency-metrics AL AP DAL StartOffset EndOffset ATD --computation-aware --threads 2 \
    2>&1 | tee "$OUT.log" | grep --line-buffered -v -E "INFO|Warning|warn\(" || true
  test -f "$OUT/scores.tsv" || { echo "simuleval failed: see $OUT.log"; exit 1; }
done

"$BIN/echostream-simul-report" "${RUNS[@]}" --labels "320 ms" "2000 ms" \
  --reference "$DATA/simuleval/test.target" --json "$WORK/report.json" | tee "$WORK/report.md"
echo
echo "Output speech: $WORK/s2st_320ms/wavs/ and $WORK/s2st_2000ms/wavs/ ({N}_pred.wav, N = test line)."
echo "Text: .../text/asr.txt, translation.txt, units.txt. Per-instance delays: .../instances.log."
