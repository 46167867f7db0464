"""``echostream-bench-vocoder``: speed and intelligibility of the unit vocoders on a corpus split.

::

    echostream-bench-vocoder --data DATA [--vocoder SAVE_DIR/generator.pt --vocoder-cfg SAVE_DIR/config.json]
        [--out results/bench_vocoder] [--split test] [--chunk-units 8]

Vocoders: the Griffin-Lim fallback (``DATA/units/kmeans.pt``), a trained CodeHiFiGAN if given,
and, for cost only, a full-size CodeHiFiGAN (the mHuBERT vocoder's sizes) with random weights
(its cost does not depend on the weights).

* Real-time factor (synthesis seconds per audio second) of one-shot synthesis of every
  utterance of the split, and of incremental synthesis in calls of ``--chunk-units`` units.
* Per-call cost against stream position: one long stream (the split's units repeated) fed in
  calls of ``--chunk-units``; the median call time near each position, next to the peer
  StreamSpeech's agent uses, re-synthesising every unit so far at each call, measured in the same
  run.
* Intelligibility: word error rate of pocketsphinx (its US English acoustic model, with a bigram
  LM and dictionary built from the train split's English text) on the original target audio and
  on each vocoder's speech from the split's reference units (de-duplicated, durations predicted).

Writes ``bench_vocoder.md``, ``bench_vocoder.json`` and the vocoded wavs under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

__all__ = ["build_parser", "main", "run"]


def _split_units(data: str, split: str, limit: Optional[int]) -> List[Tuple[str, torch.Tensor, str]]:
    """``(id, de-duplicated units, target text)`` of the split."""
    from echostream_fairseq.data.manifest import read_tsv

    rows = read_tsv(os.path.join(data, f"{split}.tsv"), ("id", "tgt_audio"))[:limit]
    text = {r["id"]: r["tgt_text"] for r in read_tsv(os.path.join(data, "text", f"{split}.tsv"), ("id", "tgt_text"))}
    return [(r["id"], torch.tensor([int(u) for u in r["tgt_audio"].split()]), text[r["id"]]) for r in rows]


def _stream(vocoder, units: torch.Tensor, chunk: int, **kw) -> Tuple[torch.Tensor, List[Tuple[float, float]]]:
    """Incremental synthesis of ``units`` in calls of ``chunk``; returns the audio and, per call,
    ``(stream position in seconds before the call, call seconds)``."""
    from echostream_fairseq.vocoder import IncrementalVocoder

    inc = IncrementalVocoder(vocoder, **kw)
    state, pieces, calls = inc.initial_state(), [], []
    for start in range(0, units.numel(), chunk):
        last = start + chunk >= units.numel()
        position = state.emitted_samples / vocoder.sample_rate
        t0 = time.perf_counter()
        piece, state = inc.step(units[start : start + chunk], state, finish=last)
        calls.append((position, time.perf_counter() - t0))
        pieces.append(piece)
    return torch.cat(pieces), calls


def _median_near(calls: List[Tuple[float, float]], position: float, count: int = 25) -> Optional[float]:
    after = [seconds for pos, seconds in calls if pos >= position][:count]
    return statistics.median(after) * 1e3 if len(after) == count else None


def _peer_call_ms(
    vocoder, frames_per_second: float, all_frames: torch.Tensor, position: float, chunk_frames: int, repeats: int = 3
) -> float:
    """StreamSpeech's agent at ``position``: synthesise every frame so far plus the new chunk."""
    frames = all_frames[: int(position * frames_per_second) + chunk_frames]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        vocoder.synthesize_frames(frames)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _mel_distances(args: argparse.Namespace, vocoders: Dict) -> Dict[str, float]:
    """Log-mel L1 (the vocoder trainer's validation measure: natural log, 80 bins, 1024-point FFT,
    256 hop) between the real target speech and its resynthesis from its own frame-level units,
    so durations are exact and only the rendering is judged."""
    from echostream_fairseq.vocoder.config import PRESETS
    from echostream_fairseq.vocoder.dataset import load_unit_audio
    from echostream_fairseq.vocoder.losses import MelLoss

    examples = load_unit_audio(args.data, args.split, next(iter(vocoders.values())).frame_hop, limit=args.limit)
    mel = MelLoss(PRESETS["tiny"])
    out = {}
    for name, vocoder in vocoders.items():
        total = 0.0
        for ex in examples:
            audio = vocoder.synthesize_frames(ex.frames)[: ex.audio.numel()]
            total += float(mel(audio[None, None], ex.audio[: audio.numel()][None, None]))
        out[name] = total / len(examples)
    return out


def run(args: argparse.Namespace) -> Dict:
    from echostream_fairseq.common.cpu import machine_header
    from echostream_fairseq.common.files import atomic_open
    from echostream_fairseq.data.audio import write_wav
    from echostream_fairseq.data.manifest import read_tsv
    from echostream_fairseq.data.units import load_unit_model
    from echostream_fairseq.vocoder import CodeHiFiGANUnitVocoder, GriffinLimUnitVocoder, build_generator, preset_config

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    utterances = _split_units(args.data, args.split, args.limit)
    num_units = int(load_unit_model(os.path.join(args.data, "units", "kmeans.pt"))["num_units"])
    vocoders = {"griffin_lim": GriffinLimUnitVocoder.from_file(os.path.join(args.data, "units", "kmeans.pt"))}
    if args.vocoder:
        vocoders["hifigan_trained"] = CodeHiFiGANUnitVocoder.from_files(args.vocoder, args.vocoder_cfg)
    if not args.skip_full_size:
        with tempfile.TemporaryDirectory() as tmp:
            config = preset_config("full", num_units)
            torch.save({"generator": build_generator(config).state_dict()}, os.path.join(tmp, "g.pt"))
            vocoders["hifigan_full_random"] = CodeHiFiGANUnitVocoder(os.path.join(tmp, "g.pt"), config)
    results: Dict = {
        "machine": machine_header(),
        "split": args.split,
        "utterances": len(utterances),
        "chunk_units": args.chunk_units,
        "rtf": {},
        "per_call_ms": {},
        "wer": {},
        "mel_distance": _mel_distances(args, {k: v for k, v in vocoders.items() if k != "hifigan_full_random"}),
    }
    positions = [float(p) for p in args.positions.split(",")]
    long_units = torch.cat([u for _, u, _ in utterances])
    for name, vocoder in vocoders.items():
        logging.info("timing %s", name)
        synth = audio_seconds = 0.0
        inc_synth = 0.0
        wav_dirs = {mode: out / "wavs" / f"{name}_{mode}" for mode in ("one_shot", "incremental")}
        intelligibility = name != "hifigan_full_random"
        for uid, units, _ in utterances:
            t0 = time.perf_counter()
            one_shot = vocoder(units, dur_prediction=True)
            synth += time.perf_counter() - t0
            audio_seconds += one_shot.numel() / vocoder.sample_rate
            incremental, calls = _stream(vocoder, units, args.chunk_units)
            inc_synth += sum(seconds for _, seconds in calls)
            if intelligibility:
                for mode, audio in (("one_shot", one_shot), ("incremental", incremental)):
                    wav_dirs[mode].mkdir(parents=True, exist_ok=True)
                    write_wav(str(wav_dirs[mode] / f"{uid}.wav"), audio.clamp(-1, 1), vocoder.sample_rate)
        results["rtf"][name] = {
            "one_shot": synth / audio_seconds,
            "incremental": inc_synth / audio_seconds,
            "audio_seconds": audio_seconds,
        }
        # per-call cost along one long stream (repeat the split's units up to the last position)
        frames_per_second = vocoder.sample_rate / vocoder.frame_hop
        longest = max(positions) if name != "hifigan_full_random" else min(max(positions), args.full_size_max_position)
        needed_frames = int((longest + 10) * frames_per_second)
        repeats = -(-needed_frames // vocoder.expand(long_units).numel())
        stream_units = long_units.repeat(repeats)
        durations = vocoder.durations(stream_units)
        stream_units = stream_units[: int(torch.searchsorted(torch.cumsum(durations, 0), needed_frames))]
        frames = torch.repeat_interleave(stream_units, durations[: stream_units.numel()])
        _, calls = _stream(vocoder, stream_units, args.chunk_units)
        chunk_frames = int(round(frames.numel() / max(stream_units.numel(), 1) * args.chunk_units))
        rows = {}
        for p in positions:
            if p > longest:
                continue
            peer = (
                _peer_call_ms(vocoder, frames_per_second, frames, p, chunk_frames)
                if p <= args.peer_max_position
                else None
            )
            rows[str(p)] = {"incremental_ms": _median_near(calls, p), "peer_ms": peer}
        results["per_call_ms"][name] = rows
    if not args.skip_wer:
        from echostream_fairseq.evaluation.recognizer import PocketsphinxRecognizer
        from echostream_fairseq.evaluation.wer import evaluate_wavs

        train_text = [r["tgt_text"] for r in read_tsv(os.path.join(args.data, "text", "train.tsv"), ("id", "tgt_text"))]
        recognizer = PocketsphinxRecognizer.from_sentences(train_text)
        references = [text for _, _, text in utterances]
        ids = [uid for uid, _, _ in utterances]
        systems = {"original espeak-ng audio": [os.path.join(args.data, "audio", "tgt", f"{i}.wav") for i in ids]}
        for name in vocoders:
            if name == "hifigan_full_random":
                continue
            for mode in ("one_shot", "incremental"):
                systems[f"{name} {mode}"] = [str(out / "wavs" / f"{name}_{mode}" / f"{i}.wav") for i in ids]
        for system, paths in systems.items():
            logging.info("pocketsphinx on %s", system)
            scores = evaluate_wavs(paths, references, recognizer)
            results["wer"][system] = {k: scores[k] for k in ("wer", "errors", "reference_words", "sentence_errors")}
    with atomic_open(out / "bench_vocoder.json") as f:
        json.dump(results, f, indent=2)
    with atomic_open(out / "bench_vocoder.md") as f:
        f.write(render(results, positions))
    return results


def render(results: Dict, positions: Sequence[float]) -> str:
    lines = [
        f"Machine: {results['machine']}. Split: {results['split']} ({results['utterances']} utterances); "
        f"incremental calls of {results['chunk_units']} de-duplicated units.",
        "",
        "| vocoder | RTF one-shot | RTF incremental |",
        "|---|---|---|",
    ]
    for name, r in results["rtf"].items():
        lines.append(f"| {name} | {r['one_shot']:.3f} | {r['incremental']:.3f} |")
    lines += [
        "",
        "Per-call cost (ms, median of 25 calls) against stream position; peer = re-synthesise every unit so far:",
        "",
        "| vocoder | " + " | ".join(f"{p:g} s: ours / peer (ratio)" for p in positions) + " |",
        "|---|" + "---|" * len(positions),
    ]
    for name, rows in results["per_call_ms"].items():
        cells = []
        for p in positions:
            row = rows.get(str(p))
            if row is None or row["incremental_ms"] is None:
                cells.append("not measured")
            elif row["peer_ms"] is None:
                cells.append(f"{row['incremental_ms']:.1f} / not measured")
            else:
                cells.append(
                    f"{row['incremental_ms']:.1f} / {row['peer_ms']:.1f} "
                    f"({row['peer_ms'] / row['incremental_ms']:.1f}x)"
                )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if results.get("mel_distance"):
        lines += [
            "",
            "Log-mel L1 between the real target speech and its resynthesis from its own frame-level units "
            "(lower is closer):",
            "",
            "| vocoder | log-mel L1 |",
            "|---|---|",
        ]
        lines += [f"| {name} | {d:.3f} |" for name, d in results["mel_distance"].items()]
    if results["wer"]:
        lines += [
            "",
            "pocketsphinx WER (US English acoustic model; bigram LM and dictionary from the train split's "
            "English text):",
            "",
            "| audio | WER (%) | word errors / words | sentences with an error |",
            "|---|---|---|---|",
        ]
        for system, r in results["wer"].items():
            lines.append(
                f"| {system} | {r['wer']:.1f} | {r['errors']} / {r['reference_words']} | "
                f"{r['sentence_errors']} / {results['utterances']} |"
            )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echostream-bench-vocoder", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="corpus folder written by echostream-prep")
    p.add_argument("--vocoder", help="a trained CodeHiFiGAN generator (e.g. SAVE_DIR/generator.pt)")
    p.add_argument("--vocoder-cfg", help="its config.json")
    p.add_argument("--out", default="results/bench_vocoder")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None, help="first N utterances of the split")
    p.add_argument("--chunk-units", type=int, default=8, help="de-duplicated units per incremental call")
    p.add_argument("--positions", default="10,60,600", help="stream positions (seconds) for the per-call cost")
    p.add_argument(
        "--peer-max-position",
        type=float,
        default=60.0,
        help="measure the re-synthesising peer up to this position (it grows with the stream)",
    )
    p.add_argument(
        "--full-size-max-position",
        type=float,
        default=60.0,
        help="stream the full-size vocoder only this far (10 minutes of it takes long on a CPU)",
    )
    p.add_argument("--skip-wer", action="store_true", help="timings only")
    p.add_argument("--skip-full-size", action="store_true", help="leave out the full-size random-weight vocoder")
    p.add_argument("--threads", type=int, default=None)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("fairseq", "echostream_fairseq.evaluation"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    if bool(args.vocoder) != bool(args.vocoder_cfg):
        print("error: --vocoder and --vocoder-cfg go together", file=sys.stderr)
        return 2
    from echostream_fairseq.vocoder import VocoderError

    try:
        results = run(args)
    except VocoderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(render(results, [float(p) for p in args.positions.split(",")]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
