"""``echostream-train-refiner``: train a unit refiner (Mask-CTC) for a trained model.

::

    echostream-train-refiner --model-path CKPT --data-bin DATA --save refiner.pt
        [--max-updates 2000] [--max-tokens 4000] [--lr 1e-3] [--layers 2] [--embed-dim 144]

The model stays frozen. Each batch runs it teacher-forced to get the T2U states; the reference
units, a random share of them masked, are what the refiner learns to complete (cross-entropy on
the masked units). Half the examples are cut to a prefix of their units and the text states up to
it and one more, as a stream sees them. At the end the refiner is scored on the validation split:
the unit error of the unit CTC's greedy units, and of them refined at several thresholds (the
units at or below the threshold predicted again), the text teacher-forced. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from echostream_fairseq.checkpoint import CheckpointError, load_echostream_model
from echostream_fairseq.data.text import edit_distance
from echostream_fairseq.models.unit_refiner import RefinerSizes, UnitRefiner
from echostream_fairseq.modules.ctc import CTC_BLANK, ctc_best, ctc_collapse, ctc_token_confidences

__all__ = ["build_parser", "main", "masked_examples", "unit_errors"]

THRESHOLDS = (0.5, 0.7, 0.9)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echostream-train-refiner", description=__doc__.split("\n\n")[0])
    files = p.add_argument_group("files")
    files.add_argument("--model-path", required=True, help="the trained echostream checkpoint (frozen)")
    files.add_argument("--data-bin", required=True, help="its corpus folder")
    files.add_argument("--save", required=True, help="the refiner's file (for --unit-refiner)")
    files.add_argument("--train-subset", default="train")
    files.add_argument("--valid-subset", default="dev")
    sizes = p.add_argument_group("sizes")
    d = RefinerSizes(num_units=1, text_dim=1)
    sizes.add_argument("--layers", type=int, default=d.num_layers)
    sizes.add_argument("--embed-dim", type=int, default=d.embed_dim)
    sizes.add_argument("--ffn-dim", type=int, default=d.ffn_dim)
    sizes.add_argument("--heads", type=int, default=d.num_heads)
    training = p.add_argument_group("training")
    training.add_argument("--max-updates", type=int, default=2000)
    training.add_argument("--max-tokens", type=int, default=4000, help="source frames per batch (fairseq's)")
    training.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (linear warm-up, then cosine)")
    training.add_argument("--warmup-updates", type=int, default=100)
    training.add_argument("--dropout", type=float, default=0.1)
    training.add_argument("--seed", type=int, default=1)
    training.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    training.add_argument("--log-interval", type=int, default=100)
    return p


def masked_examples(
    units: Tensor, unit_lengths: Tensor, text_lengths: Tensor, mask_index: int, generator: torch.Generator
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """What the refiner is trained on, from reference units ``[B, U]`` (``unit_lengths`` valid) and
    ``text_lengths`` text states.

    Every other example (at random) is cut to a prefix of its units, with the text states up to
    it and one more; in each example a share drawn from U(0, 1) of the units is masked (at least
    one).

    Returns:
        inputs ``[B, U]`` (masked units = ``mask_index``), the new unit lengths and text lengths
        ``[B]``, and ``[B, U]`` which positions are masked (the loss's).
    """
    B, U = units.shape
    cut = torch.rand(B, generator=generator) < 0.5
    drawn = (torch.rand(B, generator=generator) * unit_lengths.float()).long() + 1  # 1 .. length
    lengths = torch.where(cut, torch.minimum(drawn, unit_lengths), unit_lengths)
    # the text up to the prefix's share of the units, and one state more (a stream's lookahead)
    texts = torch.ceil(lengths.float() * text_lengths.float() / unit_lengths.clamp(min=1).float()).long() + 1
    texts = torch.minimum(texts, text_lengths)
    valid = torch.arange(U).unsqueeze(0) < lengths.unsqueeze(1)
    share = torch.rand(B, 1, generator=generator)
    masked = (torch.rand(B, U, generator=generator) < share) & valid
    # at least one masked unit in each example: its last, if the draw left none
    none = ~masked.any(dim=1)
    masked[none, (lengths[none] - 1).clamp(min=0)] = True
    inputs = units.masked_fill(masked, mask_index)
    return inputs, lengths, texts, masked


def _teacher_forced(model, sample) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The frozen model's T2U states ``[B, L, D]``, text lengths, unit logits and their lengths."""
    net_input = sample["net_input"]
    with torch.no_grad():
        out = model(**net_input)
    text_lengths = net_input["prev_output_tokens"].ne(model.decoder.padding_idx).sum(dim=1)
    return out["t2u_states"], text_lengths, out["unit_logits"], out["unit_lengths"]


def _batches(task, split: str, max_tokens: int, seed: int, epoch: int, shuffle: bool):
    task.load_dataset(split)
    return task.get_batch_iterator(
        dataset=task.dataset(split), max_tokens=max_tokens, seed=seed, num_workers=0, epoch=epoch
    ).next_epoch_itr(shuffle=shuffle)


def unit_errors(
    refiner: UnitRefiner,
    text: Tensor,
    text_lengths: Tensor,
    logits: Tensor,
    logit_lengths: Tensor,
    references: Sequence[Sequence[int]],
    banned: Sequence[int],
    thresholds: Sequence[float] = THRESHOLDS,
) -> Dict[str, Tuple[int, int]]:
    """Edit distance and reference length summed over a batch: ``ctc`` for the unit CTC's greedy
    units, ``refined_{t}`` for them refined at threshold ``t``, and ``masked_{t}`` (units masked,
    units) for the share each threshold masks. ``banned``: what a refined unit never is (the
    CTC chooses among the others and the blank)."""
    frames = logits.float()
    totals = {"ctc": [0, 0]}
    for t in thresholds:
        totals[f"refined_{t}"] = [0, 0]
        totals[f"masked_{t}"] = [0, 0]
    for b, reference in enumerate(references):
        n = int(logit_lengths[b])
        frame_labels, frame_p = ctc_best(frames[b, :n], [i for i in banned if i != CTC_BLANK])
        units, _, _ = ctc_collapse(frame_labels)
        confidences = ctc_token_confidences(frame_labels, frame_p)
        states = text[b : b + 1, : int(text_lengths[b])]
        totals["ctc"][0] += edit_distance(units, reference)
        totals["ctc"][1] += len(reference)
        for t in thresholds:
            masked = [c <= t for c in confidences]
            refined = refiner.refine(units, masked, states, banned) if units else units
            totals[f"refined_{t}"][0] += edit_distance(refined, reference)
            totals[f"refined_{t}"][1] += len(reference)
            totals[f"masked_{t}"][0] += sum(masked)
            totals[f"masked_{t}"][1] += len(units)
    return {k: (v[0], v[1]) for k, v in totals.items()}


def _rate(schedule_update: int, args) -> float:
    if schedule_update < args.warmup_updates:
        return args.lr * (schedule_update + 1) / args.warmup_updates
    progress = (schedule_update - args.warmup_updates) / max(1, args.max_updates - args.warmup_updates)
    return args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _percent(counts: Sequence[int]) -> float:
    return round(100.0 * counts[0] / max(counts[1], 1), 2)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.max_updates < 1:
        print(f"error: --max-updates must be >= 1, got {args.max_updates}", file=sys.stderr)
        return 2
    try:
        model, task = load_echostream_model(args.model_path, args.data_bin)
        sizes = RefinerSizes(
            num_units=len(task.target_dictionary),
            text_dim=model.unit_decoder.embed_dim,
            embed_dim=args.embed_dim,
            ffn_dim=args.ffn_dim,
            num_layers=args.layers,
            num_heads=args.heads,
        )
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    refiner = UnitRefiner(sizes, dropout=args.dropout)
    optimizer = torch.optim.AdamW(refiner.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    d = task.target_dictionary
    banned = [CTC_BLANK, d.pad(), d.eos(), d.unk()]  # what a refined unit never is
    start, update, epoch, running = time.time(), 0, 1, []
    while update < args.max_updates:
        for sample in _batches(task, args.train_subset, args.max_tokens, args.seed, epoch, shuffle=True):
            text, text_lengths, _, _ = _teacher_forced(model, sample)
            units, unit_lengths = sample["target"], sample["target_lengths"]
            inputs, lengths, texts, masked = masked_examples(
                units, unit_lengths, text_lengths, refiner.mask_index, generator
            )
            refiner.train()
            logits = refiner(inputs, lengths, text, texts)
            loss = F.cross_entropy(logits[masked].float(), units[masked])
            for group in optimizer.param_groups:
                group["lr"] = _rate(update, args)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(refiner.parameters(), 1.0)
            optimizer.step()
            running.append(float(loss))
            update += 1
            if update % args.log_interval == 0:
                print(
                    f"update {update}: masked-unit loss {sum(running) / len(running):.3f} nats, "
                    f"{time.time() - start:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
                running = []
            if update >= args.max_updates:
                break
        epoch += 1
    refiner.eval()
    refiner.save(args.save)
    totals: Dict[str, List[int]] = {}
    with torch.no_grad():
        for sample in _batches(task, args.valid_subset, args.max_tokens, args.seed, 1, shuffle=False):
            text, text_lengths, logits, logit_lengths = _teacher_forced(model, sample)
            references = [u[:n] for u, n in zip(sample["target"].tolist(), sample["target_lengths"].tolist())]
            for key, (a, b) in unit_errors(
                refiner, text, text_lengths, logits, logit_lengths, references, banned
            ).items():
                totals.setdefault(key, [0, 0])
                totals[key][0] += a
                totals[key][1] += b
    record = {
        "updates": update,
        "train_seconds": round(time.time() - start, 1),
        "parameters": sum(p.numel() for p in refiner.parameters()),
        "valid_subset": args.valid_subset,
        "unit_error": {k: _percent(v) for k, v in totals.items() if not k.startswith("masked")},
        "masked_share": {k.split("_", 1)[1]: _percent(v) for k, v in totals.items() if k.startswith("masked")},
        "save": args.save,
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
