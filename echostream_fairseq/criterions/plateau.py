"""Whether the ASR CTC head has left the all-blank plateau, from the training loss alone.

A CTC head that has not learnt to read its input can still learn how often each subword occurs:
it then writes blank everywhere and spreads the rest over the subwords by their frequency. Its
loss per subword is then the unigram entropy ``H`` of the targets (the alignment terms of an
input-blind model cancel out, to Stirling's approximation), so a head whose loss stays near ``H``
reads nothing: that is the plateau. :class:`PlateauWatch` keeps the running training loss (an
exponential average over about ten updates) and ``H`` estimated from the subword counts of the
same batches; a head is off the plateau once the running loss is ``margin`` bits below ``H``.
The unit is the bit, as in fairseq's logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

__all__ = ["PLATEAU_MARGIN_BITS", "PlateauWatch", "unigram_entropy_bits"]

# how far below the unigram entropy the running loss must be for a head to count as reading
PLATEAU_MARGIN_BITS = 1.0


def unigram_entropy_bits(counts: Tensor) -> float:
    """The entropy (bits) of the distribution ``counts / counts.sum()``; 0 for no counts."""
    total = float(counts.sum())
    if total <= 0:
        return 0.0
    p = counts[counts > 0].double() / total
    return float(-(p * p.log2()).sum())


@dataclass
class PlateauWatch:
    """The running ASR CTC loss and the unigram entropy it is measured against.

    Args:
        vocab_size: the source dictionary's size (the count vector's length).
        margin: bits below the unigram entropy that count as off the plateau.
    """

    vocab_size: int
    margin: float = PLATEAU_MARGIN_BITS

    def __post_init__(self) -> None:
        self.counts = torch.zeros(self.vocab_size, dtype=torch.float64)
        self.running: Optional[float] = None  # bits per subword

    def count(self, targets: Tensor, lengths: Tensor) -> Tensor:
        """One batch's subword counts ``[V]`` (float64): the first ``lengths`` of each row of
        ``targets`` ``[B, U]``."""
        keep = torch.arange(targets.size(1), device=targets.device)[None, :] < lengths[:, None]
        return torch.bincount(targets[keep].long().cpu(), minlength=self.vocab_size)[: self.vocab_size].double()

    def fold(self, bits: Optional[float], counts: Optional[Tensor] = None) -> None:
        """Fold one update into the watch: its loss (bits per subword; ``None`` if it had no
        subwords) and its subword counts."""
        if counts is not None:
            self.counts += counts
        if bits is not None:
            self.running = bits if self.running is None else 0.9 * self.running + 0.1 * bits

    @property
    def entropy(self) -> float:
        """The unigram entropy (bits per subword) of the subwords counted so far."""
        return unigram_entropy_bits(self.counts)

    @property
    def on_plateau(self) -> bool:
        """True while the running loss is within ``margin`` bits of the unigram entropy (or unknown)."""
        return self.running is None or self.running > self.entropy - self.margin

    def describe(self) -> str:
        running = "n/a" if self.running is None else f"{self.running:.2f}"
        return f"running ASR CTC loss {running} bits per source subword, unigram entropy {self.entropy:.2f} bits"
