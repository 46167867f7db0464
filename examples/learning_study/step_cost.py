"""Seconds per training update (forward + backward of the multitask loss) for recipe variants.

    .venv/bin/python examples/learning_study/step_cost.py CORPUS [--threads 1] [--batch 13] [--repeats 5] [--encoders]

One fixed batch of the corpus's first train utterances, the same model seed, the segment length
fixed at 8 frames; each variant's flags are appended to echostream_emformer_tiny's. Prints the CPU
model, its vector extensions and a table with each variant's time relative to the first row.
``--encoders``: the recipe's update (dropout 0, r=15) for each tiny encoder instead.
"""

import argparse
import time

import torch
from fairseq import options, tasks

import echostream_fairseq  # noqa: F401  (registers the plugin)
from echostream_fairseq.common.cpu import machine_header

VARIANTS = [
    ("former recipe (dropout 0.1, r=25)", []),
    ("dropout 0", ["--dropout", "0"]),
    ("unit upsampling r=15", ["--ctc-upsample-rate", "15"]),
    ("dropout 0, r=15", ["--dropout", "0", "--ctc-upsample-rate", "15"]),
]
RECIPE = ["--dropout", "0", "--ctc-upsample-rate", "15"]
ENCODERS = [
    ("echostream_emformer_tiny (the recipe)", RECIPE),
    ("echostream_conformer_tiny", [*RECIPE, "--arch", "echostream_conformer_tiny"]),
    (
        "echostream_zipformer_tiny (its preset's subsampler delay of 1)",
        [*RECIPE, "--arch", "echostream_zipformer_tiny"],
    ),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus")
    p.add_argument("--subset", default="train")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=13, help="utterances per update (the recipe's batches hold about 13)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--encoders", action="store_true", help="the recipe's update for each tiny encoder")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"Machine: {machine_header()}; batch: {args.batch} utterances")
    rows = []
    for label, extra in ENCODERS if args.encoders else VARIANTS:
        parser = options.get_training_parser()
        cfg = options.parse_args_and_arch(
            parser,
            [
                args.corpus,
                "--task",
                "echostream_speech_to_speech",
                "--arch",
                "echostream_emformer_tiny",
                "--criterion",
                "echostream_multitask",
                "--max-tokens",
                "4000",
                *extra,
            ],
        )
        task = tasks.setup_task(cfg)
        task.load_dataset(args.subset)
        torch.manual_seed(0)
        model, criterion = task.build_model(cfg), task.build_criterion(cfg)
        ds = task.datasets[args.subset]
        sample = ds.collater([ds[i] for i in range(args.batch)])
        model.train()
        model.multichunk_lengths = [8]
        criterion(model, sample)[0].backward()  # warm-up
        start = time.perf_counter()
        for _ in range(args.repeats):
            loss, _, _ = criterion(model, sample)
            loss.backward()
        rows.append((label, model.encoder.encoder_type, (time.perf_counter() - start) / args.repeats))
    print("| variant | encoder | s / update | relative |\n|---|---|---|---|")
    for label, encoder, seconds in rows:
        print(f"| {label} | {encoder} | {seconds:.3f} | {seconds / rows[0][2]:.2f} |")


if __name__ == "__main__":
    main()
