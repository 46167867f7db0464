"""A tiny corpus in the task's layout, written without espeak-ng (for model and task tests).

Each utterance's source audio is a sequence of tones, one per source word, so the text is
learnable from the audio; targets are the words mapped through a fixed lexicon, and the units are
a fixed function of the target words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import soundfile as sf

from echostream_fairseq.data.audio import num_fbank_frames

SRC_WORDS = ["le", "chat", "noir", "mange", "un", "poisson", "rouge", "petit"]
TGT_WORDS = {
    "le": "the",
    "chat": "cat",
    "noir": "black",
    "mange": "eats",
    "un": "a",
    "poisson": "fish",
    "rouge": "red",
    "petit": "small",
}
NUM_UNITS = 20


def _units_of(word: str) -> List[int]:
    seed = sum(ord(c) for c in word)
    return [(seed * (i + 3)) % NUM_UNITS for i in range(3)]


def _dedup(units: List[int]) -> List[int]:
    return [u for i, u in enumerate(units) if i == 0 or u != units[i - 1]]


def write_toy_corpus(root: Path, num_train: int = 16, num_dev: int = 4, seed: int = 0) -> Path:
    """Write ``train`` and ``dev`` splits under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for d in ("src_unigram", "tgt_unigram", "units"):
        (root / d).mkdir(exist_ok=True)
    sr = 16000
    freqs = {w: 300.0 + 150.0 * i for i, w in enumerate(SRC_WORDS)}
    splits: Dict[str, int] = {"train": num_train, "dev": num_dev}
    for split, n in splits.items():
        main = ["id\tsrc_audio\tsrc_n_frames\ttgt_audio\ttgt_n_frames"]
        src = ["id\ttgt_text"]
        tgt = ["id\ttgt_text"]
        for k in range(n):
            uid = f"{split}_{k:03d}"
            words = list(rng.choice(SRC_WORDS, size=int(rng.integers(2, 5))))
            t = np.arange(int(0.25 * sr)) / sr
            wav = np.concatenate([0.3 * np.sin(2 * np.pi * freqs[w] * t) for w in words]).astype(np.float32)
            wav += 0.01 * rng.standard_normal(wav.shape).astype(np.float32)
            path = root / "audio" / f"{uid}.wav"
            sf.write(path, wav, sr, subtype="PCM_16")
            n_frames = num_fbank_frames(len(wav))
            units = _dedup([u for w in words for u in _units_of(TGT_WORDS[w])])
            main.append(f"{uid}\taudio/{uid}.wav\t{n_frames}\t{' '.join(map(str, units))}\t{len(units)}")
            src.append(f"{uid}\t" + " ".join("\u2581" + w for w in words))
            tgt.append(f"{uid}\t" + " ".join("\u2581" + TGT_WORDS[w] for w in words))
        (root / f"{split}.tsv").write_text("\n".join(main) + "\n", encoding="utf-8")
        (root / "src_unigram" / f"{split}.tsv").write_text("\n".join(src) + "\n", encoding="utf-8")
        (root / "tgt_unigram" / f"{split}.tsv").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    (root / "src_unigram" / "dict.txt").write_text("".join(f"\u2581{w} 1\n" for w in SRC_WORDS), encoding="utf-8")
    (root / "tgt_unigram" / "dict.txt").write_text(
        "".join(f"\u2581{w} 1\n" for w in TGT_WORDS.values()), encoding="utf-8"
    )
    (root / "units" / "dict.txt").write_text("".join(f"{u} 1\n" for u in range(NUM_UNITS)), encoding="utf-8")
    (root / "config.yaml").write_text(
        "input_feat_per_channel: 80\ninput_channels: 1\nsample_rate: 16000\n"
        f"units: {{dict: units/dict.txt, num_units: {NUM_UNITS}}}\n",
        encoding="utf-8",
    )
    (root / "config_multitask.yaml").write_text(
        "source_unigram:\n  decoder_type: ctc\n  dict: src_unigram/dict.txt\n  data: src_unigram\n  loss_weight: 4.0\n"
        "ctc_target_unigram:\n  decoder_type: ctc\n  dict: tgt_unigram/dict.txt\n  data: tgt_unigram\n"
        "  loss_weight: 4.0\n"
        "target_unigram:\n  decoder_type: transformer\n  dict: tgt_unigram/dict.txt\n  data: tgt_unigram\n"
        "  loss_weight: 8.0\n  label_smoothing: 0.1\n",
        encoding="utf-8",
    )
    return root


def toy_training_task(root: Path, *extra: str):
    """``(args, task)`` as ``fairseq-train`` would build them on the toy corpus at ``root`` (the
    tiny Emformer, the multitask criterion, no dropout, ``extra`` flags last), with ``train`` loaded."""
    from fairseq import options, tasks

    import echostream_fairseq  # noqa: F401  (registers the plugin)

    args = options.parse_args_and_arch(
        options.get_training_parser(),
        [str(root), "--task", "echostream_speech_to_speech", "--arch", "echostream_emformer_tiny"]
        + ["--criterion", "echostream_multitask", "--max-tokens", "4000", "--dropout", "0", *extra],
    )
    task = tasks.setup_task(args)
    task.load_dataset("train")
    return args, task
