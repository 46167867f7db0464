"""Small numeric helpers shared by the agent benchmark's experiments."""

from __future__ import annotations

from typing import Sequence

__all__ = ["mean"]


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")
