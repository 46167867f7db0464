#!/usr/bin/env bash
# The runs of docs/results/2026-12-07-learning-study.md, two at a time (one thread each) on the 2-core machine.
#
#   examples/learning_study/study.sh
#
# Makes the 20000-utterance corpus and its subsets, the config variant without SpecAugment, then
# the runs, then the tables and plot (results/study/). Each pair takes the stated minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
C=results/study/corpus
S=examples/learning_study/run_variant.sh
"$BIN/echostream-prep" synthetic --out "$C" --num-train 20000 --precompute-fbank
"$BIN/python" examples/learning_study/make_subsets.py "$C" 1000 5000 20000
"$BIN/python" - "$C" <<'PY'
import sys, yaml
path = sys.argv[1]
config = yaml.safe_load(open(f"{path}/config.yaml"))
config["transforms"]["_train"] = ["global_cmvn"]
yaml.safe_dump(config, open(f"{path}/config_nospec.yaml", "w"), sort_keys=False)
PY
SCHED=(--loss-schedule mt:200:200 unit_ctc:400:200)

# early learning, 12 minutes each: the former demo recipe, then one change at a time
$S a_1k 12 1 --train-subset train_1000 & $S c_sched 12 1 --train-subset train_20000 "${SCHED[@]}" & wait
$S d_nospec 12 1 --train-subset train_20000 "${SCHED[@]}" --config-yaml config_nospec.yaml &
$S e_drop0 12 1 --train-subset train_20000 "${SCHED[@]}" --dropout 0 & wait

# the recipe, 40 minutes each: the peak learning rate
R=(--train-subset train_20000 "${SCHED[@]}" --dropout 0 --ctc-upsample-rate 15 --config-yaml config_nospec.yaml
   --validate-interval-updates 250)
SAVE=1 $S g_lr1e-3 40 1 "${R[@]}" & SAVE=1 $S g_lr2e-3 40 1 "${R[@]}" --lr 2e-3 & wait

# on the recipe (lr 2e-3), 40 minutes each, validated on dev and test_heldout: SpecAugment back on,
# and 1000 training utterances instead of 20000 (prep's --no-specaugment makes config.yaml the recipe's)
"$BIN/echostream-prep" synthetic --out "$C" --num-train 20000 --precompute-fbank --no-specaugment --force
"$BIN/python" - "$C" <<'PY'
import sys, yaml
path = sys.argv[1]
config = yaml.safe_load(open(f"{path}/config.yaml"))
config["transforms"]["_train"] = ["global_cmvn", "specaugment"]
yaml.safe_dump(config, open(f"{path}/config_spec.yaml", "w"), sort_keys=False)
PY
H=("${SCHED[@]}" --dropout 0 --ctc-upsample-rate 15 --lr 2e-3 --valid-subset dev,test_heldout --validate-interval-updates 500)
$S h_spec 40 1 --train-subset train_20000 "${H[@]}" --config-yaml config_spec.yaml &
$S h_1k 40 1 --train-subset train_1000 "${H[@]}" & wait

# both of those stayed on the CTC plateau (stopped after about 1500 updates); the recipe with another
# seed, and with MT held off until update 600, 12 minutes each
I=(--train-subset train_20000 --dropout 0 --ctc-upsample-rate 15 --lr 2e-3 --validate-interval-updates 250 --seed 2)
$S i_seed2 12 1 "${I[@]}" "${SCHED[@]}" & $S i_ctc600_seed2 12 1 "${I[@]}" --loss-schedule mt:600:200 unit_ctc:800:200 & wait

# the encoder comparison (docs/results/2026-12-06-encoder-comparison.md): the recipe for 3354 updates on each architecture
# (the Emformer's run is g_lr2e-3 above), and the Emformer with 128 frames of left context
K=(--train-subset train_20000 "${SCHED[@]}" --dropout 0 --ctc-upsample-rate 15 --config-yaml config_nospec.yaml
   --validate-interval-updates 250 --lr 2e-3 --max-update 3354)
SAVE=1 $S k_conformer 70 1 "${K[@]}" --arch echostream_conformer_tiny &
SAVE=1 $S k_zipformer 70 1 "${K[@]}" --arch echostream_zipformer_tiny & wait
SAVE=1 $S k_emformer_left128 70 1 "${K[@]}" --arch echostream_emformer_tiny --left-context-length 128
SAVE=1 $S k_emformer_seed2 38 2 "${K[@]}" --arch echostream_emformer_tiny --seed 2
examples/learning_study/compare_encoders.sh
MODELS="emformer_left128=results/study/runs/k_emformer_left128/checkpoint_last.pt" CHUNKS="320 2000" \
  OUT=results/study/compare_left128 examples/learning_study/compare_encoders.sh

L=results/study/runs
"$BIN/echostream-learning-curves" $L/a_1k.log $L/c_sched.log $L/d_nospec.log $L/e_drop0.log \
  --labels "former recipe, 1k" "+ schedule, 20k" "+ schedule, 20k, no SpecAugment" "+ schedule, 20k, dropout 0" \
  --at 12 --train-at 100 200 300 400 500 --markdown results/study/early.md
"$BIN/echostream-learning-curves" $L/g_lr1e-3.log $L/g_lr2e-3.log --labels "recipe, lr 1e-3" "recipe, lr 2e-3" \
  --at 5 10 20 30 40 --markdown results/study/recipe.md --plot docs/learning_recipe.png --json results/study/recipe.json
for SUBSET in dev test_heldout; do
  "$BIN/echostream-learning-curves" $L/h_spec.log $L/h_1k.log --labels "recipe + SpecAugment" "recipe, 1k" \
    --subset $SUBSET --at 10 20 30 40 --markdown results/study/h_$SUBSET.md
done
for T in 1 2; do "$BIN/python" examples/learning_study/step_cost.py "$C" --subset train_1000 --threads $T; done

# the gate (--loss-schedule-gate): the schedule's clock waits until the running ASR CTC loss is
# below 6 bits (off the plateau; at update 1500 at the latest), then MT ramps in at once and units
# 200 updates later; 40 minutes each, validated on dev and test_heldout: the recipe, and the
# recipe with SpecAugment (which stayed on the plateau above)
J=(--train-subset train_20000 --dropout 0 --ctc-upsample-rate 15 --lr 2e-3 --valid-subset dev,test_heldout
   --validate-interval-updates 500 --loss-schedule mt:0:200 unit_ctc:200:200 --loss-schedule-gate 6.0:1500)
SAVE=1 $S j_gate 40 1 "${J[@]}" --config-yaml config_nospec.yaml &
SAVE=1 $S j_gate_spec 40 1 "${J[@]}" --config-yaml config_spec.yaml & wait
# j_gate_spec was stopped after 1100 updates: CTC alone had not left the plateau with SpecAugment
# (running ASR CTC loss 6.6 bits); a milder SpecAugment (one mask of up to 10 mel bins, one of up
# to 12 frames), with the gate
"$BIN/python" - "$C" <<'PY'
import sys, yaml
path = sys.argv[1]
config = yaml.safe_load(open(f"{path}/config_spec.yaml"))
config["specaugment"].update(freq_mask_F=10, time_mask_T=12)
yaml.safe_dump(config, open(f"{path}/config_spec_mild.yaml", "w"), sort_keys=False)
PY
SAVE=1 $S j_gate_spec_mild 40 1 "${J[@]}" --config-yaml config_spec_mild.yaml
# the other run that stayed on the plateau (1000 training utterances), with the gate; two threads
$S j_gate_1k 25 2 "${J[@]}" --train-subset train_1000 --config-yaml config_nospec.yaml

# the batch size, on the demo's corpus and recipe (examples/synthetic_tiny/recipe.sh), 40 minutes
# each: the recipe's --max-tokens 4000 (about 13 utterances an update) against 2000; dev every
# 250 and every 500 updates, so that both runs validate about as often in minutes
source examples/synthetic_tiny/recipe.sh
D=results/synthetic/corpus
# the recipe had 200 warm-up updates until the p_ runs below measured 500, and inverse_sqrt until
# the s_ runs at the end measured its annealed form; the runs made before keep them (the last flag wins)
W200=(--warmup-updates 200)
ISQRT=(--lr-scheduler inverse_sqrt)
"$BIN/echostream-prep" synthetic --out "$D" "${RECIPE_PREP[@]}"
CORPUS=$D SAVE=1 $S m_recipe 40 1 "${RECIPE_TRAIN[@]}" "${ISQRT[@]}" "${W200[@]}" --validate-interval-updates 250 &
CORPUS=$D SAVE=1 $S m_tokens2000 40 1 "${RECIPE_TRAIN[@]}" "${ISQRT[@]}" "${W200[@]}" --max-tokens 2000 --validate-interval-updates 500 &
# m_tokens2000 was stopped after 13 minutes (2075 updates): both CTC heads still on the plateau
# (dev ASR and ST WER 100%); in its place, the same 2000-token batches from m_recipe's checkpoint
# at update 1000 (10.8 minutes in, the heads off the plateau), to the same 40 minutes in all
sleep 790; pkill -f "fairseq-train.*m_tokens2000"
mkdir -p results/study/runs/m_tokens2000_from1000
cp results/study/runs/m_recipe/checkpoint_1_1000.pt results/study/runs/m_tokens2000_from1000/checkpoint_last.pt
CORPUS=$D SAVE=1 $S m_tokens2000_from1000 40 1 "${RECIPE_TRAIN[@]}" "${ISQRT[@]}" "${W200[@]}" --max-tokens 2000 --validate-interval-updates 500 &
wait
# each model through the demo's evaluation (steps 3-5 of examples/demo.sh, with the demo's tiny
# HiFi-GAN, which `make demo` trains), both at once; the UPDATES argument only names the marker
# that says the copied model is trained
for NAME in m_recipe m_tokens2000_from1000; do
  W=results/study/eval_$NAME
  mkdir -p "$W/$RECIPE_ARCH"
  cp results/study/runs/$NAME/checkpoint_last.pt "$W/$RECIPE_ARCH/"
  touch "$W/$RECIPE_ARCH/.done_$RECIPE_UPDATES"
  WORK=$W VOCODER_DIR=results/demo/vocoder_tiny examples/demo.sh "$RECIPE_UPDATES" > "$W.log" 2>&1 &
done
wait
"$BIN/echostream-learning-curves" $L/m_recipe.log $L/m_tokens2000.log $L/m_tokens2000_from1000.log \
  --labels "recipe, 4000 tokens" "2000 tokens" "2000 tokens from update 1000" \
  --at 10 20 30 --markdown results/study/batch.md --plot docs/learning_batch.png

# the MT weight and the warm-up, one at a time on the recipe, 40 minutes each, two at a time (one
# thread each) on the machine of the m_ runs above, against m_recipe: MT at 4 instead of 8 (the
# multitask YAML's loss_weight), and 500 warm-up updates instead of 200
"$BIN/python" - "$D" <<'PY'
import sys, yaml
path = sys.argv[1]
config = yaml.safe_load(open(f"{path}/config_multitask.yaml"))
config["target_unigram"]["loss_weight"] = 4.0
yaml.safe_dump(config, open(f"{path}/config_multitask_mt4.yaml", "w"), sort_keys=False)
PY
CORPUS=$D SAVE=1 $S p_mt4 40 1 "${RECIPE_TRAIN[@]}" "${ISQRT[@]}" "${W200[@]}" --validate-interval-updates 250 --multitask-config-yaml config_multitask_mt4.yaml &
CORPUS=$D SAVE=1 $S p_warmup500 40 1 "${RECIPE_TRAIN[@]}" "${ISQRT[@]}" --validate-interval-updates 250 --warmup-updates 500 &
wait
offline_test() {  # offline_test NAME: a saved run decoded and scored on test, as examples/demo.sh step 3
  local NAME=$1 G=results/study/runs/$1/generate_test
  "$BIN/fairseq-generate" "$D" --user-dir echostream_fairseq --task echostream_speech_to_speech \
    --path results/study/runs/$NAME/checkpoint_last.pt --gen-subset test --max-tokens 8000 --beam 5 --asr-beam 16 \
    --cpu --results-path "$G" > "$G.log" 2>&1
  "$BIN/echostream-score" --results-path "$G" --data "$D" --split test --json "$G/scores.json"
}
offline_test p_mt4  # (p_warmup500: through the demo's evaluation, below)
"$BIN/echostream-learning-curves" $L/m_recipe.log $L/p_mt4.log $L/p_warmup500.log \
  --labels "recipe" "MT weight 4" "warm-up 500" --at 10 20 30 --markdown results/study/mt_warmup.md --plot docs/learning_mt_warmup.png
# the warm-up run through the demo's evaluation, as the m_ runs above
W=results/study/eval_p_warmup500
mkdir -p "$W/$RECIPE_ARCH"
cp results/study/runs/p_warmup500/checkpoint_last.pt "$W/$RECIPE_ARCH/"
touch "$W/$RECIPE_ARCH/.done_$RECIPE_UPDATES"
WORK=$W VOCODER_DIR=results/demo/vocoder_tiny examples/demo.sh "$RECIPE_UPDATES" > "$W.log" 2>&1
# the streaming ASR agent on test at 320 ms, for the warm-up run and the recipe's (WER on the
# normalised words of instances.log, as examples/precision/compare.sh scores it)
for NAME in p_warmup500 m_recipe; do
  W=results/study/eval_$NAME
  "$BIN/simuleval" --agent agents/echostream_asr_agent.py \
    --source "$D/simuleval/test.source" --target "$D/simuleval/test.src_text" \
    --source-segment-size 320 --model-path "$W/$RECIPE_ARCH/checkpoint_last.pt" --data-bin "$D" --asr-beam 16 \
    --output "$W/asr_test_320ms" --quality-metrics WER --latency-metrics AL StartOffset EndOffset --threads 2 \
    > "$W/asr_test_320ms.log" 2>&1
done
# which half of the warm-up change: under inverse_sqrt the rate after the warm-up is
# LR x sqrt(WARMUP / update), so 500 warm-up updates at a peak of 1.26e-3 keep the recipe's later
# rate (2e-3 x sqrt(200 / update)) with the gentler start, and 200 at 3.16e-3 the warm-up-500
# run's later rate with the recipe's start; 20 minutes each (the gap opened in the first 20)
CORPUS=$D $S q_warmup500_lr1.26e-3 20 1 "${RECIPE_TRAIN[@]}" "${ISQRT[@]}" --validate-interval-updates 250 --warmup-updates 500 --lr 1.26e-3 &
CORPUS=$D $S q_warmup200_lr3.16e-3 20 1 "${RECIPE_TRAIN[@]}" "${ISQRT[@]}" "${W200[@]}" --validate-interval-updates 250 --lr 3.16e-3 &
wait
"$BIN/echostream-learning-curves" $L/m_recipe.log $L/p_warmup500.log $L/q_warmup500_lr1.26e-3.log $L/q_warmup200_lr3.16e-3.log \
  --labels "recipe (200, 2e-3)" "warm-up 500, 2e-3" "warm-up 500, 1.26e-3" "warm-up 200, 3.16e-3" --at 5 10 15 20 \
  --markdown results/study/warmup_halves.md
# longer warm-ups on the recipe (500 since the p_ runs), 40 minutes each, two at a time (one thread
# each), against p_warmup500: 1000 and 2000 warm-up updates (later rate 2e-3 x sqrt(W / update))
CORPUS=$D SAVE=1 $S r_warmup1000 40 1 "${RECIPE_TRAIN[@]}" "${ISQRT[@]}" --validate-interval-updates 250 --warmup-updates 1000 &
CORPUS=$D SAVE=1 $S r_warmup2000 40 1 "${RECIPE_TRAIN[@]}" "${ISQRT[@]}" --validate-interval-updates 250 --warmup-updates 2000 &
wait
offline_test r_warmup1000 & offline_test r_warmup2000 & wait
"$BIN/echostream-learning-curves" $L/p_warmup500.log $L/r_warmup1000.log $L/r_warmup2000.log \
  --labels "warm-up 500" "warm-up 1000" "warm-up 2000" --at 10 20 30 --markdown results/study/warmup_longer.md \
  --plot docs/learning_warmup.png
# the learning rate annealed to zero over the last 30% of the 40 minutes (--lr-scheduler
# inverse_sqrt_anneal, the recipe since) against inverse_sqrt: the demo's training (two threads,
# alone; "make demo" made the first) with each, then the demo's evaluation; and the inverse_sqrt run
# continued to the annealed run's update count, decoded on test
for NAME in s_inverse_sqrt s_anneal; do
  W=results/study/eval_$NAME
  mkdir -p "$W"
  "$BIN/fairseq-train" "$D" --user-dir echostream_fairseq --arch "$RECIPE_ARCH" "${RECIPE_TRAIN[@]}" \
    $([ $NAME = s_inverse_sqrt ] && echo "${ISQRT[@]}") --max-update "$RECIPE_UPDATES" --stop-time-hours 0.6667 \
    --save-dir "$W/$RECIPE_ARCH" --log-format tqdm > "$W/$RECIPE_ARCH.train.log" 2>&1
  touch "$W/$RECIPE_ARCH/.done_${RECIPE_UPDATES}_0.6667h"
  WORK=$W VOCODER_DIR=results/demo/vocoder_tiny examples/demo.sh > "$W.log" 2>&1
done
mkdir -p $L/s_inverse_sqrt_4792
cp results/study/eval_s_inverse_sqrt/$RECIPE_ARCH/checkpoint_last.pt $L/s_inverse_sqrt_4792/
"$BIN/fairseq-train" "$D" --user-dir echostream_fairseq --arch "$RECIPE_ARCH" "${RECIPE_TRAIN[@]}" "${ISQRT[@]}" \
  --max-update 4792 --stop-time-hours 0 --save-dir $L/s_inverse_sqrt_4792 --log-format tqdm > $L/s_inverse_sqrt_4792.train.log 2>&1
offline_test s_inverse_sqrt_4792
"$BIN/echostream-learning-curves" results/study/eval_s_inverse_sqrt/$RECIPE_ARCH.train.log+$L/s_inverse_sqrt_4792.train.log \
  results/study/eval_s_anneal/$RECIPE_ARCH.train.log \
  --labels "inverse_sqrt (the demo, then continued to 4792 updates)" "annealed over the last 30%" \
  --at 10 20 30 35 --markdown results/study/anneal.md --plot docs/learning_anneal.png

# the three encoders with the recipe as it stands (500 warm-up updates, the rate annealed over the
# last 30%), each for the recipe's 40 minutes on one thread, two jobs at a time (docs/results/2026-12-06-encoder-comparison.md,
# "With the current recipe, at equal training time"): the Emformer beside the Conformer, then the
# Zipformer beside a 12-layer Emformer (the Conformer's parameter count), which was stopped after
# 19 minutes on the CTC plateau (dev ASR WER 100% at update 1250); in its place, from the Zipformer's
# 19th minute, an Emformer with a convolution module (kernel 15). The evaluation (compare_encoders.sh,
# Griffin-Lim, one thread) runs beside the last training once the Zipformer is done.
T=("${RECIPE_TRAIN[@]}" --validate-interval-updates 250)
E=(--arch echostream_emformer_tiny)
CORPUS=$D SAVE=1 $S t_emformer 40 1 "${T[@]}" "${E[@]}" &
CORPUS=$D SAVE=1 $S t_conformer 40 1 "${T[@]}" --arch echostream_conformer_tiny & wait
CORPUS=$D SAVE=1 $S t_zipformer 40 1 "${T[@]}" --arch echostream_zipformer_tiny &
CORPUS=$D SAVE=1 $S t_emformer_l12 40 1 "${T[@]}" "${E[@]}" --encoder-layers 12 &
sleep 1140; pkill -f "run_variant.sh t_emformer_l12"; pkill -f "fairseq-train.*encoder-layers 12"
CORPUS=$D SAVE=1 $S t_emformer_conv15 40 1 "${T[@]}" "${E[@]}" --emformer-conv-kernel-size 15 &
while pgrep -f "run_variant.sh t_zipformer" > /dev/null; do sleep 10; done
M=results/study/compare_t
MODELS="emformer=$L/t_emformer/checkpoint_last.pt conformer=$L/t_conformer/checkpoint_last.pt zipformer=$L/t_zipformer/checkpoint_last.pt" \
  CORPUS=$D OUT=$M OMP_NUM_THREADS=1 examples/learning_study/compare_encoders.sh
wait
MODELS="emformer_conv15=$L/t_emformer_conv15/checkpoint_last.pt" CHUNKS="320 2000" CORPUS=$D OUT=$M \
  OMP_NUM_THREADS=1 examples/learning_study/compare_encoders.sh
# then the rest of its curve (160 and 640 ms) and the joint report of the four
MODELS="emformer=$L/t_emformer/checkpoint_last.pt emformer_conv15=$L/t_emformer_conv15/checkpoint_last.pt conformer=$L/t_conformer/checkpoint_last.pt zipformer=$L/t_zipformer/checkpoint_last.pt" \
  CORPUS=$D OUT=$M OMP_NUM_THREADS=1 examples/learning_study/compare_encoders.sh
"$BIN/echostream-learning-curves" $L/t_emformer.log $L/t_conformer.log $L/t_zipformer.log $L/t_emformer_conv15.log \
  $L/t_emformer_l12.log --labels "Emformer" "Conformer" "Zipformer" "Emformer, convolution 15" "Emformer, 12 layers" \
  --at 10 20 30 40 --markdown results/study/encoders_t.md --plot docs/comparison_recipe.png
# the plain and the convolution Emformer through the demo's evaluation (steps 3-5 of
# examples/demo.sh, the demo's tiny HiFi-GAN), both at once
for NAME in t_emformer_conv15 t_emformer; do
  W=results/study/eval_$NAME
  mkdir -p "$W/$RECIPE_ARCH"
  cp $L/$NAME/checkpoint_last.pt "$W/$RECIPE_ARCH/"
  touch "$W/$RECIPE_ARCH/.done_$RECIPE_UPDATES"
  WORK=$W VOCODER_DIR=results/demo/vocoder_tiny examples/demo.sh "$RECIPE_UPDATES" > "$W.log" 2>&1 &
done
wait
