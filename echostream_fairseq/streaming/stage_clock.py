"""Per-stage wall time of a translator step (``TranslatorConfig.time_stages``).

A stage that runs as one batch for several streams credits each of them an equal share of its time.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence

__all__ = ["STAGES", "StageClock"]

STAGES = ("encoder", "mt", "units", "vocoder")


class StageClock:
    """The stage times of ``streams`` streams stepped together; off (``enabled=False``), the clock
    is never read."""

    __slots__ = ("enabled", "seconds")

    def __init__(self, streams: int, enabled: bool) -> None:
        self.enabled = enabled
        self.seconds: List[Dict[str, float]] = [dict.fromkeys(STAGES, 0.0) if enabled else {} for _ in range(streams)]

    @contextmanager
    def stage(self, name: str, rows: Optional[Sequence[int]] = None) -> Iterator[None]:
        """Credit the time of the ``with`` block to stage ``name`` of ``rows`` (default: every
        stream), in equal shares."""
        if not self.enabled:
            yield
            return
        started = time.perf_counter()
        yield
        rows = range(len(self.seconds)) if rows is None else rows
        share = (time.perf_counter() - started) / max(len(rows), 1)
        for i in rows:
            self.seconds[i][name] += share
