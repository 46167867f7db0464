"""What each step of ``echostream-prep`` writes (:class:`Pipeline`), and the corpus statistics.

:mod:`~echostream_fairseq.data.prep` decides which steps run, in which order and with which
parameters; each step then calls one method of :class:`Pipeline`, which writes that step's outputs
into the output folder (atomically, file by file) from the corpus and the options:

========== ==============================================================================
text       ``text/{split}.tsv``: ids and raw text
audio      ``audio/src/{id}.wav``, ``audio/tgt/{id}.wav``: 16 kHz 16-bit mono (synthesised,
           or read, downmixed and resampled)
features   ``features/{id}.npy``: the source fbank ``[frames, 80]``
gcmvn      ``gcmvn.npz``: mean and std of the source fbank over (a sample of) train
subwords   ``{src,tgt}_unigram/``: sentencepiece model, fairseq ``dict.txt``, ``{split}.tsv``
units      ``units/``: k-means unit model ``kmeans.pt``, ``dict.txt``, ``{split}.tsv`` (units)
manifests  ``{split}.tsv``: :data:`MANIFEST_COLUMNS`
configs    ``config.yaml``, ``config_multitask.yaml``
simuleval  ``simuleval/{split}.{source,target,src_text}`` for :data:`SIMULEVAL_SPLITS`
stats      ``stats.json``: :func:`corpus_stats`
========== ==============================================================================
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import logging
import os
import random
import statistics
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch
import yaml
from tqdm import tqdm

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.common.files import atomic_open, atomic_path, remove_stale_temp_files
from echostream_fairseq.data.audio import AudioError, audio_format_hint, fbank, num_fbank_frames, read_audio, write_wav
from echostream_fairseq.data.corpus import HELD_OUT_SPLIT, ROOM_SPLIT, Corpus, Utterance
from echostream_fairseq.data.kmeans import fit_kmeans
from echostream_fairseq.data.manifest import write_tsv
from echostream_fairseq.data.prep_options import PrepOptions
from echostream_fairseq.data.steps import PrepError
from echostream_fairseq.data.text import encode_pieces, normalize_text, train_sentencepiece, write_fairseq_dict
from echostream_fairseq.data.units import (
    HubertUnitFeatures,
    LogMelUnitFeatures,
    UnitError,
    deduplicate,
    frame_units,
    load_kmeans_centroids,
    unit_model_dict,
    units_kind_of,
)

__all__ = ["Pipeline", "corpus_stats", "MANIFEST_COLUMNS", "SIMULEVAL_SPLITS", "SPECAUGMENT"]

logger = logging.getLogger("echostream.prep")

MANIFEST_COLUMNS = ("id", "src_audio", "src_n_frames", "tgt_audio", "tgt_n_frames")
SIMULEVAL_SPLITS = ("dev", "test", HELD_OUT_SPLIT, ROOM_SPLIT)
# other utterances whose speech makes a room's babble: training rooms take train utterances, test
# rooms dev ones (voices and sentences no training babble holds)
BABBLE_POOL_SIZE = 8
BABBLE_SPLIT = {"training": "train", "test": "dev"}
# a 40-frame (0.4 s) time mask: the synthetic utterances last about 2 s, so a 1 s mask would erase half
SPECAUGMENT = {
    "freq_mask_F": 27,
    "freq_mask_N": 1,
    "time_mask_N": 1,
    "time_mask_T": 40,
    "time_mask_p": 1.0,
    "time_warp_W": 0,
}


@contextlib.contextmanager
def _torch_threads(count: int):
    """Run a block with ``count`` torch intra-op threads (restored after).

    Per-utterance work (resampling, fbank, log-mel of a few seconds) gains nothing from several
    threads and, on a busy machine, loses up to 10x to threads waiting for each other; only the
    k-means matrix products and HuBERT keep torch's default.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Pipeline:
    """The work of each step of one run, sharing the corpus, the options and the output folder."""

    def __init__(self, corpus: Corpus, options: PrepOptions) -> None:
        self.corpus = corpus
        self.options = options
        self.out = os.path.abspath(options.out_dir)
        self._babble: Dict[str, List[np.ndarray]] = {}  # room kind -> the clean speech of its babble

    # -- paths ----------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)

    def wav(self, side: str, uid: str) -> str:
        return self.path("audio", side, f"{uid}.wav")

    def _bar(self, items, desc: str, total: Optional[int] = None):
        return tqdm(items, desc=desc, total=total, unit="utt", disable=not self.options.progress, leave=False)

    # -- text -----------------------------------------------------------------------------------
    def text(self, resume: bool) -> None:
        for split, utterances in self.corpus.splits.items():
            write_tsv(
                self.path("text", f"{split}.tsv"),
                ("id", "src_text", "tgt_text"),
                ({"id": u.id, "src_text": u.src_text, "tgt_text": u.tgt_text} for u in utterances),
            )

    def check_audio_headers(self) -> None:
        """Read every input file's header before anything is written (fast: no decoding)."""
        utterances = self.corpus.all()
        for u in self._bar(utterances, "checking audio"):
            for what, path in (("source", u.src_audio), ("target", u.tgt_audio)):
                try:
                    info = sf.info(path)
                except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
                    hint = audio_format_hint(path)
                    raise AudioError(f"{u.where}: {what} audio {path}: cannot read audio ({e}){hint}") from None
                if info.frames == 0 or info.channels == 0:
                    raise AudioError(f"{u.where}: {what} audio {path}: audio has no samples")
                if info.samplerate <= 0:
                    raise AudioError(f"{u.where}: {what} audio {path}: invalid sample rate {info.samplerate}")

    # -- audio ----------------------------------------------------------------------------------
    def audio(self, resume: bool) -> None:
        for side in ("src", "tgt"):
            os.makedirs(self.path("audio", side), exist_ok=True)
            remove_stale_temp_files(self.path("audio", side))
        todo = [
            u
            for u in self.corpus.all()
            if not (resume and os.path.isfile(self.wav("src", u.id)) and os.path.isfile(self.wav("tgt", u.id)))
        ]
        if resume:
            logger.info("audio: %d of %d utterances left from the interrupted run", len(todo), len(self.corpus.all()))
        self._prepare_rooms(todo)
        if self.corpus.mode == "synthetic":
            with _torch_threads(1):
                self._synthesize(todo)
            write_tsv(
                self.path("audio", "src_voices.tsv"),
                ("id", "variant", "rate", "pitch", "pitch_range"),
                (
                    {
                        "id": u.id,
                        "variant": u.src_voice.variant,
                        "rate": u.src_voice.rate,
                        "pitch": u.src_voice.pitch,
                        "pitch_range": u.src_voice.pitch_range,
                    }
                    for u in self.corpus.all()
                ),
            )
        else:
            with _torch_threads(1):  # parallel over files instead (--jobs)
                self._convert(todo)

    def _write_wav(self, path: str, waveform: torch.Tensor) -> None:
        with atomic_path(path) as temp:
            write_wav(temp, waveform)

    def _clean_source(self, u: Utterance) -> torch.Tensor:
        """``u``'s source speech as synthesised or read, before any room."""
        if self.corpus.mode == "synthetic":
            from echostream_fairseq.data.tts import get_synthesizer

            return get_synthesizer().synthesize(u.src_text, u.src_voice, SAMPLE_RATE)
        return read_audio(u.src_audio, SAMPLE_RATE)

    def _prepare_rooms(self, todo: Sequence[Utterance]) -> None:
        """The babble pools the rooms of ``todo`` may need (seeded picks of other utterances), and
        ``audio/rooms.tsv``: every room utterance's draw."""
        from echostream_fairseq.data.rooms import TEST_ROOMS, TRAINING, draw

        roomed = [u for u in self.corpus.all() if u.room is not None]
        if not roomed:
            return
        acoustics = {"training": TRAINING, "test": TEST_ROOMS}
        talkers: Dict[str, int] = {}  # room kind -> the most talkers one of its babbles needs
        for u in todo:
            if u.room is not None:
                talkers[u.room] = max(talkers.get(u.room, 0), draw(u.id, acoustics[u.room]).talkers)
        for kind, needed in sorted(talkers.items()):
            if not needed:
                continue
            split = BABBLE_SPLIT[kind]
            pool = sorted(self.corpus.splits.get(split, []), key=lambda u: u.id)
            if len(pool) < needed:
                raise PrepError(
                    f"a {kind} room's babble needs {needed} other utterances from {split}; this corpus has "
                    f"{len(pool)} (a larger --num-{split}, or fewer rooms)"
                )
            picks = np.random.default_rng(self.options.seed).choice(
                len(pool), size=max(needed, min(BABBLE_POOL_SIZE, len(pool))), replace=False
            )
            self._babble[kind] = [self._clean_source(pool[i]).numpy() for i in sorted(picks)]
        rows = []
        for u in roomed:
            described = draw(u.id, acoustics[u.room]).describe()
            cells = {k: v if isinstance(v, str) else json.dumps(v) for k, v in described.items()}
            rows.append({"id": u.id, "room": u.room, **cells})
        write_tsv(self.path("audio", "rooms.tsv"), ("id", "room", *described), rows)

    def _in_room(self, u: Utterance, source: torch.Tensor) -> torch.Tensor:
        """``u``'s source speech in its room with its noise (as it is without one)."""
        if u.room is None:
            return source
        from echostream_fairseq.data.rooms import TEST_ROOMS, TRAINING, apply_room, draw

        room = draw(u.id, TRAINING if u.room == "training" else TEST_ROOMS)
        return torch.from_numpy(apply_room(source.numpy(), room, SAMPLE_RATE, self._babble.get(u.room)))

    def _synthesize(self, utterances: Sequence[Utterance]) -> None:
        from echostream_fairseq.data.tts import TARGET_VOICE, get_synthesizer

        synthesizer = get_synthesizer()
        for u in self._bar(utterances, "synthesising"):
            source = self._in_room(u, synthesizer.synthesize(u.src_text, u.src_voice, SAMPLE_RATE))
            self._write_wav(self.wav("src", u.id), source)
            self._write_wav(self.wav("tgt", u.id), synthesizer.synthesize(u.tgt_text, TARGET_VOICE, SAMPLE_RATE))

    def _convert_one(self, u: Utterance) -> None:
        for what, side, path in (("source", "src", u.src_audio), ("target", "tgt", u.tgt_audio)):
            try:
                waveform = read_audio(path, SAMPLE_RATE)
            except AudioError as e:
                raise AudioError(f"{u.where}: {what} audio {e}") from None
            if side == "src" and num_fbank_frames(waveform.numel()) == 0:
                raise AudioError(f"{u.where}: {what} audio {path}: shorter than one 25 ms fbank window")
            if side == "src":
                waveform = self._in_room(u, waveform)
            self._write_wav(self.wav(side, u.id), waveform)

    def _convert(self, utterances: Sequence[Utterance]) -> None:
        # threads: libsndfile and torch release the GIL while decoding and resampling
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.options.jobs) as pool:
            futures = [pool.submit(self._convert_one, u) for u in utterances]
            try:
                for future in self._bar(
                    concurrent.futures.as_completed(futures), "converting audio", total=len(futures)
                ):
                    future.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    # -- features -------------------------------------------------------------------------------
    def feature_path(self, uid: str) -> str:
        return self.path("features", f"{uid}.npy")

    def features(self, resume: bool) -> None:
        os.makedirs(self.path("features"), exist_ok=True)
        remove_stale_temp_files(self.path("features"))
        todo = [u for u in self.corpus.all() if not (resume and os.path.isfile(self.feature_path(u.id)))]
        with _torch_threads(1):
            for u in self._bar(todo, "fbank"):
                feats = np.asarray(fbank(read_audio(self.wav("src", u.id))).numpy(), dtype=np.float32)
                with atomic_open(self.feature_path(u.id), "wb") as f:
                    np.save(f, feats)

    # -- gcmvn ----------------------------------------------------------------------------------
    def gcmvn(self, resume: bool) -> None:
        train = list(self.corpus.splits["train"])
        if len(train) > self.options.cmvn_max_utterances:
            train = random.Random(self.options.seed).sample(train, self.options.cmvn_max_utterances)
        total = torch.zeros(80, dtype=torch.float64)
        total_sq = torch.zeros(80, dtype=torch.float64)
        frames = 0
        with _torch_threads(1):
            for u in self._bar(train, "global CMVN"):
                feats = fbank(read_audio(self.wav("src", u.id))).double()
                total += feats.sum(0)
                total_sq += feats.pow(2).sum(0)
                frames += feats.shape[0]
        if frames == 0:
            raise PrepError("no fbank frames in the train split: cannot compute global CMVN")
        mean = total / frames
        std = (total_sq / frames - mean.pow(2)).clamp(min=1e-10).sqrt()
        with atomic_open(self.path("gcmvn.npz"), "wb") as f:
            np.savez(f, mean=mean.float().numpy(), std=std.float().numpy())

    # -- subwords -------------------------------------------------------------------------------
    def subwords(self, resume: bool) -> None:
        for side, field_name in (("src", "src_text"), ("tgt", "tgt_text")):
            folder = self.path(f"{side}_unigram")
            normalized = {
                split: [normalize_text(getattr(u, field_name)) for u in us] for split, us in self.corpus.splits.items()
            }
            # every character of every split gets a piece, so dev/test text never maps to <unk>
            characters = sorted({c for texts in normalized.values() for t in texts for c in t if not c.isspace()})
            model = train_sentencepiece(normalized["train"], folder, self.options.vocab_size, required_chars=characters)
            pieces = {split: [encode_pieces(model, t) for t in texts] for split, texts in normalized.items()}
            write_fairseq_dict(model, pieces["train"], os.path.join(folder, "dict.txt"))
            for split, us in self.corpus.splits.items():
                write_tsv(
                    os.path.join(folder, f"{split}.tsv"),
                    ("id", "tgt_text"),
                    ({"id": u.id, "tgt_text": " ".join(p)} for u, p in zip(us, pieces[split])),
                )

    # -- units ----------------------------------------------------------------------------------
    def _unit_features(self) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.options.unit_extractor == "hubert":
            return HubertUnitFeatures(self.options.hubert_checkpoint, self.options.hubert_layer)
        return LogMelUnitFeatures()

    def units(self, resume: bool) -> None:
        extractor = self._unit_features()
        if self.options.unit_extractor == "hubert":
            centroids = load_kmeans_centroids(self.options.kmeans_model)
            if centroids.shape[1] != extractor.dim:
                raise UnitError(
                    f"{self.options.kmeans_model}: centroids have {centroids.shape[1]} dimensions but HuBERT layer "
                    f"{self.options.hubert_layer} gives {extractor.dim}"
                )
            if self.options.num_units is not None and self.options.num_units != centroids.shape[0]:
                raise PrepError(
                    f"--num-units {self.options.num_units} but {self.options.kmeans_model} "
                    f"has {centroids.shape[0]} centroids"
                )
        else:
            centroids = self._fit_logmel_kmeans(extractor)
        k = centroids.shape[0]
        run_lengths: List[Tuple[int, int]] = []
        threads = torch.get_num_threads() if self.options.unit_extractor == "hubert" else 1
        for split, utterances in self.corpus.splits.items():
            rows = []
            with _torch_threads(threads):
                for u in self._bar(utterances, f"units {split}"):
                    unit_ids = frame_units(extractor(read_audio(self.wav("tgt", u.id))), centroids).tolist()
                    reduced, runs = deduplicate(unit_ids)
                    if split == "train":
                        run_lengths.extend(zip(reduced, runs))
                    rows.append({"id": u.id, "units": " ".join(map(str, reduced))})
            write_tsv(self.path("units", f"{split}.tsv"), ("id", "units"), rows)
        model = unit_model_dict(extractor.name, centroids, extractor.describe(), run_lengths, self.options.seed)
        buffer = io.BytesIO()  # torch.save names the archive after the file: keep temp names out of it
        torch.save(model, buffer)
        with atomic_open(self.path("units", "kmeans.pt"), "wb") as f:
            f.write(buffer.getvalue())
        with atomic_open(self.path("units", "dict.txt")) as f:
            f.writelines(f"{i} 1\n" for i in range(k))

    def _fit_logmel_kmeans(self, extractor: LogMelUnitFeatures) -> torch.Tensor:
        train = list(self.corpus.splits["train"])
        random.Random(self.options.seed).shuffle(train)
        chunks, frames = [], 0
        with _torch_threads(1):
            for u in self._bar(train, "k-means frames"):
                feats = extractor(read_audio(self.wav("tgt", u.id)))
                chunks.append(feats)
                frames += feats.shape[0]
                if frames >= self.options.kmeans_max_frames:
                    break
        points = torch.cat(chunks)[: self.options.kmeans_max_frames]
        if points.shape[0] < self.options.num_units:
            raise PrepError(
                f"the train split has {points.shape[0]} target frames, fewer than --num-units {self.options.num_units}"
            )
        logger.info(
            "units: k-means K=%d on %d frames of %d utterances", self.options.num_units, points.shape[0], len(chunks)
        )
        result = fit_kmeans(
            points,
            self.options.num_units,
            seed=self.options.seed,
            max_iterations=self.options.kmeans_iterations,
            progress=self.options.progress,
        )
        logger.info("units: k-means converged in %d iterations, inertia %.4g", result.iterations, result.inertia)
        return result.centroids

    # -- manifests ------------------------------------------------------------------------------
    def manifests(self, resume: bool) -> None:
        for split, utterances in self.corpus.splits.items():
            units = {row["id"]: row["units"] for row in _read_simple_tsv(self.path("units", f"{split}.tsv"))}
            rows = []
            for u in utterances:
                n_samples = sf.info(self.wav("src", u.id)).frames
                unit_text = units[u.id]
                source = (
                    os.path.join("features", f"{u.id}.npy")
                    if self.options.precompute_fbank
                    else os.path.join("audio", "src", f"{u.id}.wav")
                )
                rows.append(
                    {
                        "id": u.id,
                        "src_audio": source,
                        "src_n_frames": num_fbank_frames(n_samples),
                        "tgt_audio": unit_text,
                        "tgt_n_frames": len(unit_text.split()),
                    }
                )
            write_tsv(self.path(f"{split}.tsv"), MANIFEST_COLUMNS, rows)

    # -- configs --------------------------------------------------------------------------------
    def configs(self, resume: bool) -> None:
        unit_model = torch.load(self.path("units", "kmeans.pt"), weights_only=True)
        num_units = int(unit_model["num_units"])
        config = {
            "input_feat_per_channel": 80,
            "input_channels": 1,
            "sample_rate": SAMPLE_RATE,
            "global_cmvn": {"stats_npz_path": "gcmvn.npz"},
            "specaugment": dict(SPECAUGMENT),
            "transforms": {
                "*": ["global_cmvn"],
                "_train": ["global_cmvn", "specaugment"] if self.options.specaugment else ["global_cmvn"],
            },
            "units": {
                "kmeans": "units/kmeans.pt",
                "num_units": num_units,
                "dict": "units/dict.txt",
                "deduplicated": True,
                "kind": units_kind_of(unit_model).to_dict(),
            },
        }
        multitask = {
            "source_unigram": {
                "decoder_type": "ctc",
                "dict": "src_unigram/dict.txt",
                "data": "src_unigram",
                "loss_weight": 4.0,
            },
            "ctc_target_unigram": {
                "decoder_type": "ctc",
                "dict": "tgt_unigram/dict.txt",
                "data": "tgt_unigram",
                "loss_weight": 4.0,
            },
            "target_unigram": {
                "decoder_type": "transformer",
                "dict": "tgt_unigram/dict.txt",
                "data": "tgt_unigram",
                "loss_weight": 8.0,
                "label_smoothing": 0.1,
            },
        }
        for name, content in (("config.yaml", config), ("config_multitask.yaml", multitask)):
            with atomic_open(self.path(name)) as f:
                yaml.safe_dump(content, f, sort_keys=False, default_flow_style=False)

    # -- simuleval ------------------------------------------------------------------------------
    def simuleval(self, resume: bool) -> None:
        os.makedirs(self.path("simuleval"), exist_ok=True)
        for split in SIMULEVAL_SPLITS:
            utterances = self.corpus.splits.get(split)
            if not utterances:
                continue
            for suffix, lines in (
                ("source", [self.wav("src", u.id) for u in utterances]),
                ("target", [u.tgt_text for u in utterances]),
                ("src_text", [u.src_text for u in utterances]),
            ):
                with atomic_open(self.path("simuleval", f"{split}.{suffix}")) as f:
                    f.writelines(line + "\n" for line in lines)

    # -- stats ----------------------------------------------------------------------------------
    def stats(self, resume: bool) -> None:
        stats = corpus_stats(self.out, list(self.corpus.splits))
        with atomic_open(self.path("stats.json")) as f:
            json.dump(stats, f, indent=1)


def _read_simple_tsv(path: str) -> List[Dict[str, str]]:
    """A TSV that prep itself wrote (header + rows)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    columns = lines[0].split("\t")
    return [dict(zip(columns, line.split("\t"))) for line in lines[1:] if line]


def corpus_stats(out_dir: str, splits: Sequence[str]) -> Dict[str, Any]:
    """Statistics of a prepared folder: per split counts, durations, sequence lengths, vocabularies."""
    result: Dict[str, Any] = {"splits": {}}
    train_words = {"src": set(), "tgt": set()}
    for split in splits:
        manifest = _read_simple_tsv(os.path.join(out_dir, f"{split}.tsv"))
        text = _read_simple_tsv(os.path.join(out_dir, "text", f"{split}.tsv"))
        src_pieces = _read_simple_tsv(os.path.join(out_dir, "src_unigram", f"{split}.tsv"))
        tgt_pieces = _read_simple_tsv(os.path.join(out_dir, "tgt_unigram", f"{split}.tsv"))
        src_seconds = [
            sf.info(os.path.join(out_dir, "audio", "src", f"{row['id']}.wav")).frames / SAMPLE_RATE for row in manifest
        ]
        tgt_seconds = [
            sf.info(os.path.join(out_dir, "audio", "tgt", f"{row['id']}.wav")).frames / SAMPLE_RATE for row in manifest
        ]
        for row in text:
            if split == "train":
                train_words["src"].update(normalize_text(row["src_text"]).split())
                train_words["tgt"].update(normalize_text(row["tgt_text"]).split())
        mean = lambda values: round(statistics.fmean(values), 3) if values else 0.0  # noqa: E731
        result["splits"][split] = {
            "utterances": len(manifest),
            "src_hours": round(sum(src_seconds) / 3600, 4),
            "src_seconds_mean": mean(src_seconds),
            "tgt_seconds_mean": mean(tgt_seconds),
            "src_fbank_frames_mean": mean([int(r["src_n_frames"]) for r in manifest]),
            "tgt_units_mean": mean([int(r["tgt_n_frames"]) for r in manifest]),
            "src_words_mean": mean([len(normalize_text(r["src_text"]).split()) for r in text]),
            "tgt_words_mean": mean([len(normalize_text(r["tgt_text"]).split()) for r in text]),
            "src_subwords_mean": mean([len(r["tgt_text"].split()) for r in src_pieces]),
            "tgt_subwords_mean": mean([len(r["tgt_text"].split()) for r in tgt_pieces]),
        }
    result["train_vocabulary_words"] = {side: len(words) for side, words in train_words.items()}
    for side in ("src", "tgt"):
        with open(os.path.join(out_dir, f"{side}_unigram", "dict.txt"), encoding="utf-8") as f:
            result[f"{side}_subword_vocabulary"] = sum(1 for _ in f) + 4
    unit_model = torch.load(os.path.join(out_dir, "units", "kmeans.pt"), weights_only=True)
    result["num_units"] = int(unit_model["num_units"])
    result["units_used_in_train"] = int((unit_model["unit_runs"] > 0).sum())
    result["unit_mean_duration_frames"] = round(float(unit_model["mean_duration"].mean()), 3)
    return result
