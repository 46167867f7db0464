"""Per-chunk timing of a translator: one timed system's records (the translator's own per-stage
times, ``time_stages``), warm-up, and the real-time lag simulation."""

from __future__ import annotations

import time
from typing import Dict, List, Sequence

import torch

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.streaming.translator import STAGES

__all__ = ["STAGES", "Timed", "warm_up", "simulate_lag"]


class Timed:
    """One system's translator (timing its stages), stream state and per-chunk records."""

    def __init__(self, translator) -> None:
        self.translator = translator.with_config(time_stages=True)
        self.state = translator.initial_state(SAMPLE_RATE)
        self.chunk_s: List[float] = []
        self.stages: Dict[str, List[float]] = {s: [] for s in STAGES}
        self.subwords: List[int] = []
        self.units: List[int] = []
        self.audio: List[int] = []

    def step(self, samples: torch.Tensor, record: bool = True) -> float:
        t0 = time.perf_counter()
        out, self.state = self.translator.step(samples, self.state)
        elapsed = time.perf_counter() - t0
        if record:
            self.chunk_s.append(elapsed)
            for s in STAGES:
                self.stages[s].append(out.stage_seconds[s])
            self.subwords.append(len(out.target_tokens))
            self.units.append(len(out.units))
            self.audio.append(int(out.audio.numel()))
        return elapsed


def warm_up(translator, stream: torch.Tensor, segment: int, chunks: int = 8) -> None:
    """A throwaway stream first, so one-off allocations do not land in the measurements."""
    state = translator.initial_state(SAMPLE_RATE)
    for k in range(min(chunks, stream.numel() // segment)):
        _, state = translator.step(stream[k * segment : (k + 1) * segment], state)


def simulate_lag(chunk_cost_s: Sequence[float], segment_s: float) -> List[float]:
    """Real-time simulation: chunk ``k`` arrives at ``(k + 1) * segment_s`` and is processed from
    ``max(arrival, previous finish)`` for its cost; returns each chunk's ``finish - arrival`` (s)."""
    lags, finish = [], 0.0
    for k, cost in enumerate(chunk_cost_s):
        arrival = (k + 1) * segment_s
        finish = max(arrival, finish) + cost
        lags.append(finish - arrival)
    return lags
