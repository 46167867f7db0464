"""Sinusoidal positions, the one formula every Transformer stack downstream of the encoder uses.

The rows are fairseq's (``SinusoidalPositionalEmbedding``: sines then cosines, frequencies
``10000^(-i / (half - 1))``), computed for any positions directly, so an incremental step pays
for the positions it feeds and not for a table as long as the stream.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["sinusoidal_rows", "token_positions"]


def sinusoidal_rows(positions: Tensor, dim: int) -> Tensor:
    """Rows for integer ``positions`` ``[N]`` -> ``[N, dim]`` (float32)."""
    half = dim // 2
    scale = math.log(10000) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float, device=positions.device) * -scale)
    angles = positions.float().unsqueeze(1) * freqs.unsqueeze(0)
    rows = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2 == 1:
        rows = torch.cat([rows, rows.new_zeros(rows.size(0), 1)], dim=1)
    return rows


def token_positions(tokens: Tensor, padding_idx: int, dim: int) -> Tensor:
    """fairseq's position embedding of right-padded ``tokens`` ``[B, T]`` -> ``[B, T, dim]``: the
    ``t``-th real token sits at ``padding_idx + 1 + t``; padding gets a zero row."""
    real = tokens.ne(padding_idx)
    positions = torch.cumsum(real, dim=1) * real + padding_idx
    rows = sinusoidal_rows(positions.flatten(), dim).view(*tokens.shape, dim)
    return rows * real.unsqueeze(-1)
