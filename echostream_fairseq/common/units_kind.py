"""What a set of discrete units is: which features were clustered and into how many units.

A model's units and its vocoder's must be the same kind: log-mel k-means units with K=1000 and
mHuBERT layer-11 units with K=1000 have the same count, and a vocoder of the one voices the other
as wrong sounds, without an error. The data config (``units:``), the unit model
(``units/kmeans.pt``) and a vocoder's config (``"units"``) record it; loading a translator compares
them (:meth:`UnitsKind.mismatch`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

__all__ = ["UnitsKind", "EXTRACTORS"]

EXTRACTORS = ("logmel", "hubert")


@dataclass(frozen=True)
class UnitsKind:
    """Attributes:
    extractor: ``logmel`` (80-bin log-mel frames) or ``hubert`` (a HuBERT layer).
    num_units: K, the k-means clusters.
    layer: the HuBERT layer (``hubert`` only).
    model: the HuBERT checkpoint's file name (``hubert`` only; e.g. StreamSpeech's
        ``mhubert_base_vp_en_es_fr_it3.pt``).
    """

    extractor: str
    num_units: int
    layer: Optional[int] = None
    model: Optional[str] = None

    def __post_init__(self) -> None:
        if self.extractor not in EXTRACTORS:
            raise ValueError(f"units extractor must be one of {EXTRACTORS}, got {self.extractor!r}")
        if self.num_units < 1:
            raise ValueError(f"units num_units must be positive, got {self.num_units}")
        if self.extractor == "hubert" and self.layer is None:
            raise ValueError("hubert units need their layer")

    @classmethod
    def from_dict(cls, record: Dict[str, Any], where: str) -> "UnitsKind":
        """From a config's record (``extractor``, ``num_units``, and ``layer``, ``model`` for HuBERT)."""
        try:
            return cls(
                str(record["extractor"]),
                int(record["num_units"]),
                None if record.get("layer") is None else int(record["layer"]),
                record.get("model"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: units kind {record!r}: {e}") from None

    def to_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        if self.extractor == "logmel":
            return f"log-mel k-means units, K={self.num_units}"
        model = f" of {self.model}" if self.model else ""
        return f"HuBERT layer {self.layer}{model} k-means units, K={self.num_units}"

    def mismatch(self, other: "UnitsKind") -> Optional[str]:
        """Why units of ``other``'s kind are not these (``None``: the same kind). A HuBERT model
        named on one side only is not a mismatch."""
        same = (self.extractor, self.num_units, self.layer) == (other.extractor, other.num_units, other.layer)
        if same and (self.model is None or other.model is None or self.model == other.model):
            return None
        return f"{self} against {other}"
