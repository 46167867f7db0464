"""Discrete target units: frame features of the target speech, clustered with k-means.

Two extractors give one feature vector per 20 ms (320 samples at 16 kHz, the hop of unit HiFi-GAN
vocoders):

* :class:`LogMelUnitFeatures` (default): 80-bin log-mel spectrogram. Its k-means centroids are
  log-mel frames themselves, so centroids plus mean unit durations are enough for a training-free
  Griffin-Lim vocoder.
* :class:`HubertUnitFeatures`: layer ``N`` of a user-supplied fairseq HuBERT checkpoint, clustered
  with a user-supplied k-means model (StreamSpeech's mHuBERT layer-11 units).

Unit sequences are de-duplicated (runs of one unit merged), as in CVSS/StreamSpeech "reduced"
units; :func:`deduplicate` also returns the run lengths, whose per-unit mean over the train split
is stored in the unit model as ``mean_duration``.

The unit model file (``units/kmeans.pt``) is a plain dict loadable with
``torch.load(path, weights_only=True)``::

    extractor: "logmel" | "hubert"
    num_units: K
    centroids: [K, D] float32
    mean_duration: [K] float32, mean run length (frames) of each unit before de-duplication on
        train; units never seen there get the mean over all runs
    unit_runs: [K] int64, number of runs of each unit on train
    frame_hop: 320 (samples per unit frame), sample_rate: 16000
    feature_config: the LogMelConfig fields (logmel), or {checkpoint, layer, normalize} (hubert)
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torchaudio
from torch import Tensor

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.common.units_kind import UnitsKind
from echostream_fairseq.data.kmeans import nearest_centroid

__all__ = [
    "UnitError",
    "LogMelConfig",
    "LogMelUnitFeatures",
    "HubertUnitFeatures",
    "deduplicate",
    "frame_units",
    "load_kmeans_centroids",
    "unit_model_dict",
    "load_unit_model",
    "unit_features_for",
    "units_kind_of",
    "convert_pickled_kmeans",
    "UNIT_FRAME_HOP",
]

UNIT_FRAME_HOP = 320  # samples per unit at 16 kHz (50 Hz)


class UnitError(ValueError):
    """A unit extractor or k-means model that cannot be used; the message names the file."""


@dataclass(frozen=True)
class LogMelConfig:
    """Log-mel frames for units: magnitude (power 1) slaney mel, natural log of (mel + log_offset).

    ``center=True`` with constant padding gives ``1 + num_samples // hop_length`` frames for any
    length, so every utterance has at least one unit.
    """

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = UNIT_FRAME_HOP
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    power: float = 1.0
    mel_scale: str = "slaney"
    mel_norm: str = "slaney"
    center: bool = True
    pad_mode: str = "constant"
    log_offset: float = 1e-5

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "LogMelConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class LogMelUnitFeatures:
    """Log-mel frame features of a 16 kHz waveform: ``[num_samples] -> [1 + num_samples // 320, 80]``."""

    name = "logmel"

    def __init__(self, config: LogMelConfig = LogMelConfig()) -> None:
        self.config = config
        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            f_min=config.f_min,
            f_max=config.f_max,
            n_mels=config.n_mels,
            power=config.power,
            center=config.center,
            pad_mode=config.pad_mode,
            norm=config.mel_norm,
            mel_scale=config.mel_scale,
        )

    @property
    def dim(self) -> int:
        return self.config.n_mels

    def describe(self) -> Dict[str, Any]:
        return self.config.to_dict()

    @torch.no_grad()
    def __call__(self, waveform: Tensor) -> Tensor:
        """``[num_samples]`` float in [-1, 1] -> ``[num_frames, n_mels]`` float32."""
        mel = self._mel(waveform.float())  # [n_mels, frames]
        return torch.log(mel + self.config.log_offset).T.contiguous()


def _hubert_label_dictionary_rows(state: Dict[str, Any]) -> Optional[int]:
    weights = state.get("model", {})
    embeddings = weights.get("label_embs_concat")
    return None if embeddings is None else int(embeddings.shape[0])


class HubertUnitFeatures:
    """Features from one transformer layer of a fairseq HuBERT checkpoint (one vector per 320 samples).

    The checkpoint is loaded with ``fairseq.checkpoint_utils.load_model_ensemble_and_task``. A
    pre-training checkpoint names label dictionaries (``dict.km.txt``) in the folder it was trained
    from; when that folder is missing here and the checkpoint has one label set, a stand-in
    dictionary of the right size is written to a temporary folder (only its size matters for
    feature extraction).
    """

    name = "hubert"

    def __init__(self, checkpoint: str, layer: int) -> None:
        from fairseq import checkpoint_utils

        if not os.path.isfile(checkpoint):
            raise UnitError(f"{checkpoint}: HuBERT checkpoint not found")
        try:
            state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
        except Exception as e:  # noqa: BLE001  (torch/pickle raise many types for a bad file)
            raise UnitError(f"{checkpoint}: cannot load the HuBERT checkpoint ({type(e).__name__}: {e})") from None
        self._stand_in_dir = self._provide_label_dictionaries(checkpoint, state)
        try:
            models, _, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], state=state)
        except Exception as e:  # noqa: BLE001
            raise UnitError(f"{checkpoint}: cannot build the model ({type(e).__name__}: {e})") from None
        model = models[0].eval()
        if not hasattr(model, "extract_features"):
            raise UnitError(f"{checkpoint}: model {type(model).__name__} has no extract_features (not HuBERT?)")
        num_layers = len(getattr(getattr(model, "encoder", None), "layers", []))
        if num_layers and not 1 <= layer <= num_layers:
            raise UnitError(f"{checkpoint}: --hubert-layer must be in 1..{num_layers}, got {layer}")
        self.model = model
        self.layer = int(layer)
        self.checkpoint = os.path.abspath(checkpoint)
        self.normalize = bool(getattr(task.cfg, "normalize", False))
        self.dim = int(model.encoder.embedding_dim)

    @staticmethod
    def _provide_label_dictionaries(checkpoint: str, state: Dict[str, Any]) -> Optional[tempfile.TemporaryDirectory]:
        task_cfg = state.get("cfg", {}).get("task") if state.get("cfg") is not None else None
        if task_cfg is None or task_cfg.get("_name") != "hubert_pretraining" or task_cfg.get("fine_tuning", False):
            return None
        labels = list(task_cfg.get("labels", []))
        label_dir = task_cfg.get("label_dir") or task_cfg.get("data")
        if all(os.path.isfile(os.path.join(str(label_dir), f"dict.{label}.txt")) for label in labels):
            return None
        rows = _hubert_label_dictionary_rows(state)
        if len(labels) != 1 or rows is None:
            raise UnitError(
                f"{checkpoint}: its label dictionaries {[f'dict.{label}.txt' for label in labels]} "
                f"are not in {label_dir}; "
                "copy them there (needed to build a HuBERT model with several label sets)"
            )
        folder = tempfile.TemporaryDirectory(prefix="echostream-hubert-")
        with open(os.path.join(folder.name, f"dict.{labels[0]}.txt"), "w") as f:
            for i in range(rows - 4):  # fairseq's Dictionary adds <s>, <pad>, </s>, <unk>
                f.write(f"{i} 1\n")
        task_cfg["label_dir"] = folder.name
        task_cfg["data"] = folder.name
        return folder

    def describe(self) -> Dict[str, Any]:
        return {"checkpoint": self.checkpoint, "layer": self.layer, "normalize": self.normalize}

    @torch.no_grad()
    def __call__(self, waveform: Tensor) -> Tensor:
        """``[num_samples]`` float at 16 kHz -> ``[num_frames, D]`` float32."""
        source = waveform.float().unsqueeze(0)
        if self.normalize:
            source = torch.nn.functional.layer_norm(source, source.shape)
        features, _ = self.model.extract_features(source, padding_mask=None, mask=False, output_layer=self.layer)
        return features.squeeze(0).float()


def deduplicate(units: Sequence[int]) -> Tuple[List[int], List[int]]:
    """Merge runs of the same unit: ``[5, 5, 7, 5] -> ([5, 7, 5], [2, 1, 1])``."""
    reduced: List[int] = []
    runs: List[int] = []
    for u in units:
        u = int(u)
        if reduced and reduced[-1] == u:
            runs[-1] += 1
        else:
            reduced.append(u)
            runs.append(1)
    return reduced, runs


def frame_units(features: Tensor, centroids: Tensor) -> Tensor:
    """Nearest-centroid unit of every frame: ``[T, D], [K, D] -> [T]`` int64."""
    if features.shape[1] != centroids.shape[1]:
        raise UnitError(
            f"features have {features.shape[1]} dimensions but the k-means centroids have {centroids.shape[1]}"
        )
    return nearest_centroid(features, centroids)[0]


def load_kmeans_centroids(path: str) -> Tensor:
    """Centroids ``[K, D]`` from a k-means model file.

    Accepted: ``.npy`` (an array ``[K, D]``); ``.pt``/``.pth`` that ``torch.load(weights_only=True)``
    reads (a tensor, or a dict with ``centroids`` or ``cluster_centers_``). A pickled sklearn
    k-means (fairseq's and StreamSpeech's ``km.bin`` / ``mhubert.km1000.layer11.pt``) is never
    unpickled here: :func:`convert_pickled_kmeans` (``echostream-prep convert-kmeans``) turns it
    into a ``.npy`` once, saying that it unpickles.
    """
    if not os.path.isfile(path):
        raise UnitError(f"{path}: k-means model not found")
    lower = path.lower()
    convert = (
        f"{path}: not a .npy or a weights-only .pt; if it is a pickled sklearn k-means (fairseq's and "
        "StreamSpeech's are), convert it once with `echostream-prep convert-kmeans --kmeans-model "
        f"{path} --out KMEANS.npy` (it unpickles the file: only for files you trust)"
    )
    try:
        if lower.endswith(".npy"):
            centroids = np.load(path, allow_pickle=False)
        elif lower.endswith((".pt", ".pth")):
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                obj = obj.get("centroids", obj.get("cluster_centers_"))
            centroids = obj
        else:
            raise UnitError(convert)
    except UnitError:
        raise
    except pickle.UnpicklingError:
        raise UnitError(convert) from None
    except Exception as e:  # noqa: BLE001  (numpy and torch raise many types)
        raise UnitError(f"{path}: cannot read the k-means model ({type(e).__name__}: {e})") from None
    if centroids is None:
        raise UnitError(
            f"{path}: no centroids found (expected an array [K, D], a dict with 'centroids', or an sklearn KMeans)"
        )
    centroids = torch.as_tensor(np.asarray(centroids), dtype=torch.float32)
    if centroids.dim() != 2 or centroids.shape[0] < 1:
        raise UnitError(f"{path}: centroids must be [K, D], got shape {list(centroids.shape)}")
    if not torch.isfinite(centroids).all():
        raise UnitError(f"{path}: centroids contain NaN or inf")
    return centroids.contiguous()


def convert_pickled_kmeans(path: str, out: str) -> Tensor:
    """Unpickle an sklearn ``KMeans``/``MiniBatchKMeans`` (joblib or pickle; it runs code from the
    file, so only for files you trust) and write its centroids ``[K, D]`` to ``out`` (``.npy``),
    which :func:`load_kmeans_centroids` reads without unpickling. Returns the centroids."""
    if not os.path.isfile(path):
        raise UnitError(f"{path}: k-means model not found")
    if not out.lower().endswith(".npy"):
        raise UnitError(f"{out}: the converted centroids are written as .npy")
    try:
        try:
            import joblib

            obj = joblib.load(path)
        except ImportError:
            with open(path, "rb") as f:
                obj = pickle.load(f)
    except Exception as e:  # noqa: BLE001  (unpickling raises many types)
        raise UnitError(f"{path}: cannot unpickle the k-means model ({type(e).__name__}: {e})") from None
    centroids = getattr(obj, "cluster_centers_", None)
    if centroids is None:
        raise UnitError(f"{path}: unpickled a {type(obj).__name__}, which has no cluster_centers_")
    centroids = np.asarray(centroids, dtype=np.float32)
    if centroids.ndim != 2 or not np.isfinite(centroids).all():
        raise UnitError(f"{path}: cluster_centers_ must be a finite [K, D] array, got shape {list(centroids.shape)}")
    tmp = f"{out}.partial.npy"
    np.save(tmp, centroids)
    os.replace(tmp, out)
    return torch.from_numpy(centroids)


def units_kind_of(unit_model: Dict[str, Any]) -> UnitsKind:
    """The kind of units a unit model (``units/kmeans.pt``) gives."""
    config = unit_model.get("feature_config") or {}
    if unit_model["extractor"] == "hubert":
        checkpoint = config.get("checkpoint")
        model = os.path.basename(checkpoint) if isinstance(checkpoint, str) else None
        return UnitsKind("hubert", int(unit_model["num_units"]), int(config["layer"]), model)
    return UnitsKind(str(unit_model["extractor"]), int(unit_model["num_units"]))


def unit_model_dict(
    extractor: str,
    centroids: Tensor,
    feature_config: Dict[str, Any],
    run_lengths: Sequence[Tuple[int, int]],
    seed: int,
) -> Dict[str, Any]:
    """The ``units/kmeans.pt`` dict (see the module docstring).

    Args:
        run_lengths: ``(unit, run length)`` for every run on the train split.
    """
    k = centroids.shape[0]
    total = torch.zeros(k, dtype=torch.float64)
    runs = torch.zeros(k, dtype=torch.int64)
    if run_lengths:
        pairs = torch.tensor(run_lengths, dtype=torch.int64)
        total.index_add_(0, pairs[:, 0], pairs[:, 1].double())
        runs.index_add_(0, pairs[:, 0], torch.ones(len(pairs), dtype=torch.int64))
    overall = float(total.sum() / runs.sum()) if int(runs.sum()) else 1.0
    mean_duration = torch.where(runs > 0, total / runs.clamp(min=1).double(), torch.full_like(total, overall))
    return {
        "extractor": extractor,
        "num_units": int(k),
        "centroids": centroids.float().contiguous(),
        "mean_duration": mean_duration.float(),
        "unit_runs": runs,
        "frame_hop": UNIT_FRAME_HOP,
        "sample_rate": SAMPLE_RATE,
        "feature_config": dict(feature_config),
        "seed": int(seed),
    }


def load_unit_model(path: str) -> Dict[str, Any]:
    """Load ``units/kmeans.pt`` safely (``weights_only=True``) and check its fields."""
    model = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("extractor", "num_units", "centroids", "mean_duration", "feature_config"):
        if key not in model:
            raise UnitError(f"{path}: unit model lacks {key!r}")
    return model


def unit_features_for(unit_model: Dict[str, Any]):
    """The feature extractor a unit model was fitted on, rebuilt from its ``feature_config``."""
    config = unit_model["feature_config"]
    if unit_model["extractor"] == "logmel":
        return LogMelUnitFeatures(LogMelConfig.from_dict(config))
    if unit_model["extractor"] == "hubert":
        return HubertUnitFeatures(config["checkpoint"], int(config["layer"]))
    raise UnitError(f"unknown unit extractor {unit_model['extractor']!r}")
