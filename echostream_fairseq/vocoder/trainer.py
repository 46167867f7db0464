"""Training a unit HiFi-GAN (``echostream-train-vocoder``) on an ``echostream-prep`` corpus.

The generator is fairseq's ``CodeGenerator`` (unit embeddings -> HiFi-GAN, plus the duration
predictor); the discriminators and losses are in this package. Each update:

1. a batch of frame-aligned crops of target speech and their frame-level units;
2. after ``adversarial_start_step`` updates (``None``: never), one discriminator step (MPD + MSD,
   least squares);
3. one generator step on ``mel_loss_weight * mel L1 + dur_prediction_weight * duration MSE``
   plus, once adversarial, ``adversarial + feature_matching_weight * feature matching``.

``save_dir`` holds ``config.json`` and ``generator.pt`` (``{"generator": state_dict}``, the
fairseq format ``echostream-vocode`` and fairseq's ``CodeHiFiGANVocoder`` load), ``checkpoint_last.pt``
(everything needed to resume: all weights, optimisers, schedulers, random states, the step)
and ``log.jsonl`` (one JSON object per log line). Rerunning the same command resumes.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import torch

from echostream_fairseq.common.files import atomic_open
from echostream_fairseq.data.units import load_unit_model
from echostream_fairseq.vocoder.code_hifigan import build_generator
from echostream_fairseq.vocoder.config import VocoderError, check_vocoder_config, frame_hop
from echostream_fairseq.vocoder.dataset import UnitAudio, load_unit_audio, sample_batch
from echostream_fairseq.vocoder.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from echostream_fairseq.vocoder.losses import (
    MelLoss,
    discriminator_loss,
    duration_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)

__all__ = ["TrainOptions", "VocoderTrainer", "train_vocoder"]

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint_last.pt"
GENERATOR = "generator.pt"
CONFIG = "config.json"
LOG = "log.jsonl"


@dataclass
class TrainOptions:
    data: str
    save_dir: str
    max_updates: int
    train_subset: str = "train"
    valid_subset: str = "dev"
    save_interval: int = 500
    log_interval: int = 50
    valid_utterances: int = 16
    train_limit: Optional[int] = None  # use only the first N train utterances (tests)
    progress: bool = True


def init_embeddings_from_centroids(generator: torch.nn.Module, unit_model_path: str) -> None:
    """Set the generator's unit embeddings to the k-means centroids, standardised per dimension.

    Log-mel units carry their spectrum in their centroid; starting there, the generator's first
    updates learn to render spectra instead of first having to discover what each unit sounds like.
    """
    unit_model = load_unit_model(unit_model_path)
    if unit_model.get("extractor") != "logmel":
        raise VocoderError(
            f"{unit_model_path}: embedding_init 'centroids' needs log-mel units, these are "
            f"{unit_model.get('extractor')!r} (use embedding_init 'random')"
        )
    centroids = unit_model["centroids"].float()
    table = generator.dict.weight
    if tuple(centroids.shape) != tuple(table.shape):
        raise VocoderError(
            f"{unit_model_path}: centroids are {tuple(centroids.shape)}, the embedding table "
            f"{tuple(table.shape)} (num_embeddings x embedding_dim must match)"
        )
    standardised = (centroids - centroids.mean(0)) / centroids.std(0).clamp(min=1e-5)
    with torch.no_grad():
        table.copy_(standardised)


def _save(obj: Any, path: str) -> None:
    buffer = io.BytesIO()  # torch.save names the archive after the file: keep temporary names out
    torch.save(obj, buffer)
    with atomic_open(path, "wb") as f:
        f.write(buffer.getvalue())


class VocoderTrainer:
    """Holds the networks, optimisers and data of one run; :meth:`train` runs it to ``max_updates``."""

    def __init__(self, config: Mapping[str, Any], options: TrainOptions) -> None:
        self.config = check_vocoder_config(config, where="vocoder training config")
        self.options = options
        c = self.config
        self.hop = frame_hop(c)
        if c["segment_size"] % self.hop:
            raise VocoderError(
                f"segment_size {c['segment_size']} must be a multiple of the {self.hop} samples per unit frame"
            )
        self._prepare_save_dir()
        torch.manual_seed(int(c["seed"]))
        self.generator = build_generator(c)
        if c.get("embedding_init") == "centroids":
            init_embeddings_from_centroids(self.generator, os.path.join(options.data, "units", "kmeans.pt"))
        self.mpd = MultiPeriodDiscriminator(c["mpd_periods"], c["mpd_channels"])
        self.msd = MultiScaleDiscriminator(c["msd_scales"], c["msd_channels"])
        betas = (c["adam_b1"], c["adam_b2"])
        self.optim_g = torch.optim.AdamW(self.generator.parameters(), c["learning_rate"], betas=betas)
        self.optim_d = torch.optim.AdamW(
            [*self.mpd.parameters(), *self.msd.parameters()], c["learning_rate"], betas=betas
        )
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.optim_g, c["lr_decay"])
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, c["lr_decay"])
        self.mel_loss = MelLoss(c)
        self.batch_rng = torch.Generator().manual_seed(int(c["seed"]))
        self.step = 0
        self._resume()
        self.train_examples = self._load(options.train_subset, options.train_limit)
        self.valid_examples = self._load(options.valid_subset, options.valid_utterances, required=False)

    # -- files ----------------------------------------------------------------------------------
    def path(self, name: str) -> str:
        return os.path.join(self.options.save_dir, name)

    def _prepare_save_dir(self) -> None:
        os.makedirs(self.options.save_dir, exist_ok=True)
        if os.path.isfile(self.path(CONFIG)):
            with open(self.path(CONFIG), encoding="utf-8") as f:
                saved = json.load(f)
            if saved != json.loads(json.dumps(self.config)):
                changed = sorted(k for k in set(saved) | set(self.config) if saved.get(k) != self.config.get(k))
                raise VocoderError(
                    f"{self.path(CONFIG)}: this save dir holds a run with another config (differs in "
                    f"{', '.join(changed)}); resume with the same options or use another --save-dir"
                )
        else:
            with atomic_open(self.path(CONFIG)) as f:
                json.dump(self.config, f, indent=2)

    def _resume(self) -> None:
        if not os.path.isfile(self.path(CHECKPOINT)):
            return
        state = torch.load(self.path(CHECKPOINT), map_location="cpu", weights_only=True)
        self.generator.load_state_dict(state["generator"])
        self.mpd.load_state_dict(state["mpd"])
        self.msd.load_state_dict(state["msd"])
        self.optim_g.load_state_dict(state["optim_g"])
        self.optim_d.load_state_dict(state["optim_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        self.batch_rng.set_state(state["batch_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        logger.info("resumed %s at update %d", self.path(CHECKPOINT), self.step)

    def save(self) -> None:
        _save(
            {
                "generator": self.generator.state_dict(),
                "mpd": self.mpd.state_dict(),
                "msd": self.msd.state_dict(),
                "optim_g": self.optim_g.state_dict(),
                "optim_d": self.optim_d.state_dict(),
                "sched_g": self.sched_g.state_dict(),
                "sched_d": self.sched_d.state_dict(),
                "batch_rng": self.batch_rng.get_state(),
                "torch_rng": torch.get_rng_state(),
                "step": self.step,
            },
            self.path(CHECKPOINT),
        )
        _save({"generator": self.generator.state_dict(), "step": self.step}, self.path(GENERATOR))

    def _log(self, record: Dict[str, Any]) -> None:
        with open(self.path(LOG), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _load(self, split: str, limit: Optional[int], required: bool = True) -> List[UnitAudio]:
        if not required and not os.path.isfile(os.path.join(self.options.data, f"{split}.tsv")):
            return []
        return load_unit_audio(self.options.data, split, self.hop, limit=limit, progress=self.options.progress)

    # -- one update -----------------------------------------------------------------------------
    def update(self) -> Dict[str, float]:
        c = self.config
        batch = sample_batch(
            self.train_examples, c["batch_size"], c["segment_size"] // self.hop, self.hop, self.batch_rng
        )
        real = batch["audio"]
        self.generator.train()
        generated = self.generator(code=batch["frames"])  # [B, 1, segment_size]
        log_duration = self.generator.dur_predictor(self.generator.dict(batch["units"]))
        losses = {
            "mel": self.mel_loss(generated, real),
            "dur": duration_loss(log_duration, batch["durations"], batch["unit_mask"]),
        }
        start = c["adversarial_start_step"]
        adversarial = start is not None and self.step >= start
        if adversarial:
            self.optim_d.zero_grad(set_to_none=True)
            (mpd_real, _), (mpd_fake, _) = self.mpd(real), self.mpd(generated.detach())
            (msd_real, _), (msd_fake, _) = self.msd(real), self.msd(generated.detach())
            loss_d = discriminator_loss(mpd_real, mpd_fake) + discriminator_loss(msd_real, msd_fake)
            loss_d.backward()
            self.optim_d.step()
            losses["disc"] = loss_d.detach()
            with torch.no_grad():
                _, mpd_real_features = self.mpd(real)
                _, msd_real_features = self.msd(real)
            mpd_fake, mpd_fake_features = self.mpd(generated)
            msd_fake, msd_fake_features = self.msd(generated)
            losses["adv"] = generator_adversarial_loss(mpd_fake) + generator_adversarial_loss(msd_fake)
            losses["fm"] = feature_matching_loss(mpd_real_features, mpd_fake_features) + feature_matching_loss(
                msd_real_features, msd_fake_features
            )
        loss_g = c["mel_loss_weight"] * losses["mel"] + c["dur_prediction_weight"] * losses["dur"]
        if adversarial:
            loss_g = loss_g + losses["adv"] + c["feature_matching_weight"] * losses["fm"]
        self.optim_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.optim_g.step()
        self.step += 1
        if self.step % c["lr_decay_every"] == 0:
            self.sched_g.step()
            self.sched_d.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def validate(self) -> Optional[float]:
        """Mean log-mel L1 of whole validation utterances synthesised from their frame-level units."""
        if not self.valid_examples:
            return None
        self.generator.eval()
        total = 0.0
        for ex in self.valid_examples:
            generated = self.generator(code=ex.frames[None])
            total += float(self.mel_loss(generated, ex.audio[None, None]))
        return total / len(self.valid_examples)

    def train(self) -> Dict[str, Any]:
        """Run to ``max_updates`` (from wherever the save dir left off); returns the last log record."""
        o = self.options
        if self.step >= o.max_updates:
            logger.info("%s is already at update %d >= --max-updates %d", o.save_dir, self.step, o.max_updates)
            return {"step": self.step, "valid_mel_l1": self.validate()}
        bar = None
        if o.progress:
            from tqdm import tqdm

            bar = tqdm(total=o.max_updates, initial=self.step, desc="vocoder", unit="upd", dynamic_ncols=True)
        sums: Dict[str, float] = {}
        count = 0
        started = time.time()
        record: Dict[str, Any] = {"step": self.step}
        while self.step < o.max_updates:
            losses = self.update()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
            last = self.step == o.max_updates
            if self.step % o.log_interval == 0 or last:
                record = {
                    "step": self.step,
                    **{k: round(v / count, 5) for k, v in sums.items()},
                    "lr": self.optim_g.param_groups[0]["lr"],
                    "seconds": round(time.time() - started, 1),
                }
                sums, count = {}, 0
                if self.step % o.save_interval == 0 or last:
                    record["valid_mel_l1"] = self.validate()
                    self.save()
                self._log(record)
            elif self.step % o.save_interval == 0:
                self.save()
        if bar is not None:
            bar.close()
        return record


def train_vocoder(config: Mapping[str, Any], options: TrainOptions) -> Dict[str, Any]:
    return VocoderTrainer(config, options).train()
