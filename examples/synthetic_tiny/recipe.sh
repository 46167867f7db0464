# The CPU recipe for the synthetic corpus, sourced by examples/demo.sh and
# examples/synthetic_tiny/train.sh (its one home). docs/results/2026-12-07-learning-study.md measures its choices.
# RECIPE_ARCH: the demo's model, the tiny Emformer with a causal convolution module in every layer:
# in the same 40 minutes it learns more than the plain Emformer, the Conformer and the Zipformer
# (docs/results/2026-12-06-encoder-comparison.md, "With the current recipe, at equal training time").
RECIPE_ARCH=echostream_emformer_conv_tiny
# The budget: RECIPE_MINUTES of training (fairseq's --stop-time-hours, which counts the time of a
# resumed run too), or RECIPE_UPDATES updates if they come first. Machines differ by 1.5x in speed
# (3354 updates took 29 minutes on one 2-core machine, 42.6 on another), so a count of updates is
# no budget; RECIPE_UPDATES is a bound that 2 cores do not reach in 40 minutes.
RECIPE_MINUTES=40
RECIPE_UPDATES=6000
# of which the demo keeps RECIPE_LONGFORM_MINUTES for the long-form fine-tune below (at most
# RECIPE_LONGFORM_UPDATES), so that the model a live user gets holds long streams within the same
# 40 minutes (docs/longform.md, "In the demo")
RECIPE_LONGFORM_MINUTES=8
# echostream-prep synthetic flags: 20000 training utterances, fbank computed once, no SpecAugment,
# 24 generated voices with voice qualities beside the five (docs/results/2026-12-07-learning-study.md, "Held-out voices"),
# and the test_room split (the test sentences in rooms and noise beyond any training draws; docs/data.md)
RECIPE_PREP=(--num-train 20000 --precompute-fbank --no-specaugment --extra-voices 24 --extra-voice-qualities --test-room)
# fairseq-train flags (architecture, budget and save folder are the caller's): the CTC heads first
# (MT ramps in from update 200, units from 400), no dropout, 15 unit-decoder positions per text state,
# 500 warm-up updates (the gentler start leaves the CTC plateau sooner and the higher later rate
# learns faster: docs/results/2026-12-07-learning-more.md, "The MT weight and the warm-up"), then inverse_sqrt annealed
# linearly to zero over the last 30% of the budget (docs/results/2026-12-07-learning-more.md, "The learning rate
# annealed to the budget's end")
RECIPE_TRAIN=(
  --task echostream_speech_to_speech --criterion echostream_multitask
  --train-subset train --valid-subset dev --max-tokens 4000
  --optimizer adam --adam-betas '(0.9,0.98)' --lr 2e-3 --lr-scheduler inverse_sqrt_anneal --anneal-fraction 0.3
  --warmup-updates 500 --clip-norm 1.0 --dropout 0 --ctc-upsample-rate 15
  --loss-schedule mt:200:200 unit_ctc:400:200
  --cpu --num-workers 0 --seed 1 --no-epoch-checkpoints
  --save-interval-updates 500 --keep-interval-updates 1
)
# Long-form fine-tuning (the demo's second step; examples/longform/finetune.sh for any model;
# docs/longform.md): from a model trained with the recipe above, RECIPE_LONGFORM_UPDATES updates on the single sentences mixed with
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
