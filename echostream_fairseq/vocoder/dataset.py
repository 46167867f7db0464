"""Training examples for a unit vocoder: target speech and its frame-level units.

Reads an ``echostream-prep`` corpus: the ids of ``{split}.tsv``, the 16 kHz target speech in
``audio/tgt/{id}.wav`` and the unit model ``units/kmeans.pt``. Frame-level units are recomputed
from the audio with the unit model's own extractor (the manifests hold de-duplicated units,
which lost their durations); the run lengths of those frames are the duration targets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import Tensor

from echostream_fairseq.data.audio import read_audio
from echostream_fairseq.data.manifest import read_tsv
from echostream_fairseq.data.units import deduplicate, frame_units, load_unit_model, unit_features_for
from echostream_fairseq.vocoder.config import VocoderError

__all__ = ["UnitAudio", "load_unit_audio", "sample_batch"]


@dataclass(frozen=True)
class UnitAudio:
    """One utterance: ``audio`` ``[F * hop]`` float, ``frames`` ``[F]`` int64, de-duplicated
    ``units`` ``[U]`` and their ``durations`` ``[U]`` (frames per unit, summing to ``F``)."""

    id: str
    audio: Tensor
    frames: Tensor
    units: Tensor
    durations: Tensor


def load_unit_audio(
    data: str, split: str, frame_hop: int, limit: Optional[int] = None, progress: bool = False
) -> List[UnitAudio]:
    """Examples of one split of the corpus at ``data``, audio trimmed to whole unit frames."""
    manifest = os.path.join(data, f"{split}.tsv")
    unit_model_path = os.path.join(data, "units", "kmeans.pt")
    for path in (manifest, unit_model_path):
        if not os.path.isfile(path):
            raise VocoderError(f"{path}: not found (is {data} a corpus made by echostream-prep?)")
    unit_model = load_unit_model(unit_model_path)
    if int(unit_model.get("frame_hop", frame_hop)) != frame_hop:
        raise VocoderError(
            f"{unit_model_path}: units are {unit_model['frame_hop']} samples apart, the vocoder "
            f"upsamples each unit to {frame_hop} samples"
        )
    extractor = unit_features_for(unit_model)
    centroids = unit_model["centroids"]
    rows = read_tsv(manifest, ("id",))[:limit]
    if not rows:
        raise VocoderError(f"{manifest}: no utterances")
    if progress:
        from tqdm import tqdm

        rows = tqdm(rows, desc=f"units {split}", unit="utt")
    examples = []
    for row in rows:
        audio = read_audio(os.path.join(data, "audio", "tgt", f"{row['id']}.wav"))
        frames = frame_units(extractor(audio), centroids)
        count = min(frames.numel(), audio.numel() // frame_hop)
        if count == 0:
            continue
        frames = frames[:count].long()
        units, runs = deduplicate(frames.tolist())
        examples.append(
            UnitAudio(row["id"], audio[: count * frame_hop].float(), frames, torch.tensor(units), torch.tensor(runs))
        )
    return examples


def sample_batch(
    examples: List[UnitAudio], batch_size: int, segment_frames: int, frame_hop: int, generator: torch.Generator
) -> Dict[str, Tensor]:
    """A random batch of frame-aligned crops (zero/edge padded when an utterance is shorter).

    Returns:
        ``audio`` ``[B, 1, segment_frames * hop]``, ``frames`` ``[B, segment_frames]``, and for
        the duration predictor the whole utterances' ``units`` ``[B, U]``, ``durations`` ``[B, U]``
        and ``unit_mask`` ``[B, U]`` (True on real units).
    """
    picks = torch.randint(len(examples), (batch_size,), generator=generator).tolist()
    audio = torch.zeros(batch_size, 1, segment_frames * frame_hop)
    frames = torch.zeros(batch_size, segment_frames, dtype=torch.long)
    longest = max(examples[i].units.numel() for i in picks)
    units = torch.zeros(batch_size, longest, dtype=torch.long)
    durations = torch.zeros(batch_size, longest, dtype=torch.long)
    mask = torch.zeros(batch_size, longest, dtype=torch.bool)
    for b, i in enumerate(picks):
        ex = examples[i]
        start = int(torch.randint(max(ex.frames.numel() - segment_frames, 0) + 1, (1,), generator=generator))
        crop = ex.frames[start : start + segment_frames]
        frames[b, : crop.numel()] = crop
        frames[b, crop.numel() :] = crop[-1]
        piece = ex.audio[start * frame_hop : (start + crop.numel()) * frame_hop]
        audio[b, 0, : piece.numel()] = piece
        units[b, : ex.units.numel()] = ex.units
        durations[b, : ex.units.numel()] = ex.durations
        mask[b, : ex.units.numel()] = True
    return {"audio": audio, "frames": frames, "units": units, "durations": durations, "unit_mask": mask}
