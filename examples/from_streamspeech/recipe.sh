#!/usr/bin/env bash
# StreamSpeech's model on a streaming encoder: import its decoders, train only the encoder (and
# optionally its ST CTC head), then evaluate with simuleval. Each step is one command; every path is
# a variable (docs/from_streamspeech.md).
#
#   STREAMSPEECH_CKPT=streamspeech.simul-s2st.fr-en.pt DATA=/path/to/cvss-c/fr-en/fbank2unit \
#     bash examples/from_streamspeech/recipe.sh
#
# DATA is the fbank2unit folder StreamSpeech's preprocess_scripts wrote, with its two YAML files
# (StreamSpeech's own, or configs/streamspeech/fr-en/'s copied there). VOCODER and VOCODER_CFG are
# its unit HiFi-GAN (mHuBERT layer 11, K=1000) for speech output; without them the speech-to-text
# agent is evaluated.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
: "${STREAMSPEECH_CKPT:?the StreamSpeech checkpoint to import}"
: "${DATA:?the fbank2unit folder of StreamSpeech preparation}"
CONFIG_YAML=${CONFIG_YAML:-config_gcmvn.yaml}
MULTITASK_YAML=${MULTITASK_YAML:-config_mtl_asr_st_ctcst.yaml}
ARCH=${ARCH:-echostream_emformer}          # the streaming encoder: echostream_emformer or echostream_zipformer
WORK=${WORK:-results/from_streamspeech}
FREEZE=${FREEZE:-asr_ctc,st_ctc,decoder,t2u_encoder,unit_decoder}  # leave st_ctc out to train the ST CTC head too
MAX_UPDATE=${MAX_UPDATE:-50000}
MAX_TOKENS=${MAX_TOKENS:-22000}
SPLIT=${SPLIT:-test}
CHUNK_MS=${CHUNK_MS:-320}
EXTRA_FLAGS=(${EXTRA_FLAGS:-})             # more model flags for the import and the training (sizes)
mkdir -p "$WORK"

echo "== 1/3 import StreamSpeech's decoders into $ARCH"
"$BIN/echostream-import-streamspeech" --checkpoint "$STREAMSPEECH_CKPT" --data-bin "$DATA" \
  --config-yaml "$CONFIG_YAML" --multitask-config-yaml "$MULTITASK_YAML" --arch "$ARCH" \
  --out "$WORK/imported.pt" "${EXTRA_FLAGS[@]}"

echo "== 2/3 train the streaming encoder (frozen: $FREEZE)"
"$BIN/fairseq-train" "$DATA" --user-dir echostream_fairseq --config-yaml "$CONFIG_YAML" \
  --multitask-config-yaml "$MULTITASK_YAML" --task speech_to_speech_ctc --target-code-size "${TARGET_CODE_SIZE:-1000}" \
  --arch "$ARCH" --criterion echostream_multitask --finetune-from-model "$WORK/imported.pt" \
  --st-ctc-layers 0 --unit-decoder-positions streamspeech --freeze-parts "$FREEZE" "${EXTRA_FLAGS[@]}" \
  --train-subset train --valid-subset dev --max-tokens "$MAX_TOKENS" --max-update "$MAX_UPDATE" \
  --optimizer adam --adam-betas "(0.9,0.98)" --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 4000 \
  --clip-norm 1.0 --save-dir "$WORK/checkpoints" --no-epoch-checkpoints ${TRAIN_FLAGS:-}

echo "== 3/3 simuleval at $CHUNK_MS ms on $SPLIT"
if [ -n "${VOCODER:-}" ]; then
  AGENT=(agents/echostream_s2st_agent.py --vocoder "$VOCODER" --vocoder-cfg "$VOCODER_CFG" --dur-prediction)
else
  AGENT=(agents/echostream_s2tt_agent.py)
fi
"$BIN/simuleval" --agent "${AGENT[0]}" "${AGENT[@]:1}" --source "${SOURCE_LIST:?a list of the $SPLIT wav files}" \
  --target "${TARGET_TEXT:?the $SPLIT references, one per line}" --source-segment-size "$CHUNK_MS" \
  --model-path "$WORK/checkpoints/checkpoint_last.pt" --data-bin "$DATA" --config-yaml "$CONFIG_YAML" \
  --multitask-config-yaml "$MULTITASK_YAML" --output "$WORK/simuleval_${SPLIT}_${CHUNK_MS}ms" \
  --latency-metrics AL AP DAL StartOffset EndOffset --computation-aware ${SIMULEVAL_FLAGS:-}
