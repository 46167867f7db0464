"""Per-stage wall time of a translator step (``TranslatorConfig.time_stages``).

Stages that run as one batch for several streams credit each stream an equal share of their time.
"""

from __future__ import annotations

import time
from typing import Dict, Optional, Sequence

__all__ = ["STAGES", "StageClock", "credit_share"]

STAGES = ("encoder", "mt", "units", "vocoder")


class StageClock:
    """Credits the time since the previous mark to the stage that just ended."""

    __slots__ = ("seconds", "_last")

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._last = time.perf_counter()

    def restart(self) -> None:
        """Time spent elsewhere (other streams of a batch) is nobody's stage."""
        self._last = time.perf_counter()

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] += now - self._last
        self._last = now


def credit_share(clocks: Sequence[Optional[StageClock]], rows: Sequence[int], stage: str, started: float) -> None:
    """Credit each of ``rows``' clocks an equal share of the time since ``started`` (a batched stage),
    and restart them."""
    share = (time.perf_counter() - started) / max(len(rows), 1)
    for i in rows:
        if clocks[i]:
            clocks[i].seconds[stage] += share
            clocks[i].restart()
