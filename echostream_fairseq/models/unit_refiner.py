"""A Mask-CTC refiner of the unit decoder's output: the units the CTC is unsure of are masked and
predicted again from the units around them and the T2U states.

The unit decoder is non-autoregressive: each unit is chosen without seeing the others. The
refiner is a small bidirectional Transformer over a unit sequence in which some units are replaced
by a mask token; each position cross-attends to the T2U states of the text, and the masked
positions are predicted from both. It keeps the CTC's number of units (it fixes substitutions,
not insertions or deletions). In a stream, the units of a chunk are refined before they are
voiced, with the sentence's earlier units as context (``streaming/units.py``).

Trained apart from the model (``echostream-train-refiner``), on the frozen model's teacher-forced
T2U states and the reference units with random masks; saved in its own file with the sizes it
was built with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from echostream_fairseq.modules.positions import sinusoidal_rows
from echostream_fairseq.modules.transformer_layer import TransformerLayer

__all__ = ["RefinerSizes", "UnitRefiner"]


@dataclass(frozen=True)
class RefinerSizes:
    """Attributes:
    num_units: the unit dictionary's size (the mask token is one more).
    text_dim: size of the T2U states it reads.
    embed_dim, ffn_dim, num_layers, num_heads: its Transformer's sizes.
    """

    num_units: int
    text_dim: int
    embed_dim: int = 144
    ffn_dim: int = 576
    num_layers: int = 2
    num_heads: int = 4

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 1:
                raise ValueError(f"refiner {name} must be >= 1, got {value}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"refiner embed_dim {self.embed_dim} is not a multiple of num_heads {self.num_heads}")


class UnitRefiner(nn.Module):
    """Masked units + T2U states -> unit logits at every position.

    Args:
        sizes: :class:`RefinerSizes`.
        dropout: residual dropout in training.
    """

    def __init__(self, sizes: RefinerSizes, dropout: float = 0.1) -> None:
        super().__init__()
        self.sizes = sizes
        self.mask_index = sizes.num_units
        self.embed = nn.Embedding(sizes.num_units + 1, sizes.embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(sizes.embed_dim, sizes.num_heads, sizes.ffn_dim, dropout, memory_dim=sizes.text_dim)
            for _ in range(sizes.num_layers)
        )
        self.final_norm = nn.LayerNorm(sizes.embed_dim)
        self.proj = nn.Linear(sizes.embed_dim, sizes.num_units)

    def forward(self, units: Tensor, unit_lengths: Tensor, text: Tensor, text_lengths: Tensor) -> Tensor:
        """Args:
            units: ``[B, U]`` unit indices, ``mask_index`` where masked (padding: any index).
            unit_lengths: ``[B]`` valid units.
            text: ``[B, L, text_dim]`` T2U states.
            text_lengths: ``[B]`` valid states.

        Returns:
            logits ``[B, U, num_units]`` (rows past a sequence's length are meaningless).
        """
        U, L = units.size(1), text.size(1)
        x = self.embed(units) * self.sizes.embed_dim**0.5
        x = x + sinusoidal_rows(torch.arange(U, device=units.device), self.sizes.embed_dim).to(x.dtype)
        x = self.dropout(x)
        unit_valid = torch.arange(U, device=units.device).unsqueeze(0) < unit_lengths.unsqueeze(1)  # [B, U]
        text_valid = torch.arange(L, device=text.device).unsqueeze(0) < text_lengths.unsqueeze(1)  # [B, L]
        self_mask, cross_mask = unit_valid.unsqueeze(1), text_valid.unsqueeze(1)
        for layer in self.layers:
            x, _ = layer(x, self_mask, text, cross_mask)
        return self.proj(self.final_norm(x))

    @torch.no_grad()
    def refine(self, units: Sequence[int], masked: Sequence[bool], text: Tensor, banned: Sequence[int] = ()) -> list:
        """``units`` with the ``masked`` ones predicted again (one pass; ``banned`` indices never
        chosen) from the others and ``text`` ``[1, L, text_dim]``; the others are returned as
        they are."""
        if len(units) != len(masked):
            raise ValueError(f"{len(units)} units but {len(masked)} mask flags")
        if not any(masked):
            return list(units)
        text = text.to(self.proj.weight.dtype)  # the model may run in bf16; the refiner stays fp32
        ids = torch.tensor([self.mask_index if m else u for u, m in zip(units, masked)], device=text.device)
        logits = self(
            ids.unsqueeze(0),
            torch.tensor([len(units)], device=text.device),
            text,
            torch.tensor([text.size(1)], device=text.device),
        )[0].float()
        if banned:
            logits[:, list(banned)] = float("-inf")
        best = logits.argmax(dim=-1).tolist()
        return [b if m else u for u, m, b in zip(units, masked, best)]

    def save(self, path: str) -> None:
        """The weights and the sizes, in one file."""
        torch.save({"sizes": asdict(self.sizes), "model": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str) -> "UnitRefiner":
        """A refiner saved by :meth:`save`, in ``eval()`` mode."""
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ValueError(f"--unit-refiner {path}: no such file") from None
        except Exception as err:  # a file of something else
            raise ValueError(f"--unit-refiner {path}: not a unit refiner ({err.__class__.__name__})") from None
        if not isinstance(saved, dict) or set(saved) != {"sizes", "model"}:
            raise ValueError(f"--unit-refiner {path}: not a unit refiner (echostream-train-refiner writes one)")
        refiner = cls(RefinerSizes(**saved["sizes"]), dropout=0.0)
        refiner.load_state_dict(saved["model"])
        return refiner.eval()
