# The CPU recipe for the synthetic corpus, sourced by examples/demo.sh and
# examples/synthetic_tiny/train.sh (its one home). docs/learning.md measures its choices.
# RECIPE_ARCH: the demo's model. In the 40 minutes the Zipformer translates the text better but
# speaks no better: docs/learning_more.md, "The demo's encoder, at equal training time".
RECIPE_ARCH=echostream_emformer_tiny
# RECIPE_UPDATES: the updates of the measured run (40-43 minutes of training on the 2-core machines).
RECIPE_UPDATES=3354
# echostream-prep synthetic flags: 20000 training utterances, fbank computed once, no SpecAugment,
# 24 generated voices with voice qualities beside the five (docs/learning.md, "Held-out voices")
RECIPE_PREP=(--num-train 20000 --precompute-fbank --no-specaugment --extra-voices 24 --extra-voice-qualities)
# fairseq-train flags (architecture, budget and save folder are the caller's): the CTC heads first
# (MT ramps in from update 200, units from 400), no dropout, 15 unit-decoder positions per text state
RECIPE_TRAIN=(
  --task echostream_speech_to_speech --criterion echostream_multitask
  --train-subset train --valid-subset dev --max-tokens 4000
  --optimizer adam --adam-betas '(0.9,0.98)' --lr 2e-3 --lr-scheduler inverse_sqrt
  --warmup-updates 200 --clip-norm 1.0 --dropout 0 --ctc-upsample-rate 15
  --loss-schedule mt:200:200 unit_ctc:400:200
  --cpu --num-workers 0 --seed 1 --no-epoch-checkpoints
  --save-interval-updates 500 --keep-interval-updates 1
)
# Long-form fine-tuning (examples/longform/finetune.sh, docs/longform.md): from a model trained
# with the recipe above, RECIPE_LONGFORM_UPDATES updates on the single sentences mixed with
# concatenations of 2-3 (echostream-prep concat), the ASR CTC head taught to mark sentence ends;
# 1000 updates: the best of 500 / 1000 / 1500 on the 5-minute tuning stream (docs/longform.md)
RECIPE_LONGFORM_UPDATES=1000
RECIPE_LONGFORM_CONCAT=(--count 4000 --max-sentences 3)
RECIPE_LONGFORM=(
  --task echostream_speech_to_speech --criterion echostream_multitask --asr-sentence-ends
  --train-subset train_concat_mix --valid-subset dev --max-tokens 4000
  --optimizer adam --adam-betas '(0.9,0.98)' --lr 5e-4 --lr-scheduler inverse_sqrt
  --warmup-updates 50 --clip-norm 1.0 --dropout 0 --ctc-upsample-rate 15
  --reset-optimizer --reset-dataloader --reset-lr-scheduler --reset-meters
  --cpu --num-workers 0 --seed 1 --no-epoch-checkpoints
  --save-interval-updates 500 --keep-interval-updates 1
)
