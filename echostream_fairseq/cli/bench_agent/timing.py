"""Per-chunk timing of a translator: the stage timer, one timed system's records, warm-up, the
forced-write stress setting, and the real-time lag simulation."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Dict, List, Sequence

import torch

from echostream_fairseq.cli.bench_agent.inputs import SAMPLE_RATE, BenchError

__all__ = ["STAGES", "StageTimer", "force_writing", "Timed", "warm_up", "simulate_lag"]

STAGES = ("encoder", "mt", "units", "vocoder")


class StageTimer:
    """Exclusive wall time of a translator's stages, chunk by chunk.

    Wraps (on the instance only) the translator methods of each stage and its incremental
    vocoder's ``step``; nested calls are not counted twice. ``take()`` returns the seconds spent in
    each stage since the last call.
    """

    METHODS = {"_encode_increment": "encoder", "_encode_prefix": "encoder", "_extend_mt_memory": "mt",
               "_write": "mt", "_units_for": "units", "_reencode_units": "units", "_reencode_speech": "vocoder"}

    def __init__(self, translator) -> None:
        self.totals: Dict[str, float] = defaultdict(float)
        self._stack: List[float] = []
        for name, stage in self.METHODS.items():
            if hasattr(translator, name):
                setattr(translator, name, self._wrap(getattr(translator, name), stage))
        if getattr(translator, "vocoder", None) is not None:
            translator.vocoder.step = self._wrap(translator.vocoder.step, "vocoder")

    @classmethod
    def of(cls, translator) -> "StageTimer":
        """The translator's timer (installed on first use, then shared)."""
        timer = getattr(translator, "_bench_stage_timer", None)
        if timer is None:
            timer = cls(translator)
            translator._bench_stage_timer = timer
        return timer

    def _wrap(self, fn, stage: str):
        def timed(*a, **kw):
            self._stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                elapsed = time.perf_counter() - t0
                children = self._stack.pop()
                self.totals[stage] += elapsed - children
                if self._stack:
                    self._stack[-1] += elapsed
        return timed

    def take(self) -> Dict[str, float]:
        out = {s: self.totals.get(s, 0.0) for s in STAGES}
        self.totals.clear()
        return out


def force_writing(translator) -> None:
    """Ban the MT decoder's end of sentence and the unit CTC's blank: the decoder then writes
    whatever the policy allows and every written subword becomes units and speech, all along the
    stream (a stress setting for the cost of every stage, not a translation setting)."""
    from echostream_fairseq.modules.ctc import CTC_BLANK

    for name in ("tgt_banned", "unit_banned"):
        if not isinstance(getattr(translator, name, None), list):
            raise BenchError(f"this SimultaneousTranslator has no {name} list: cannot force writing")
    translator.tgt_banned = list(translator.tgt_banned) + [translator.tgt_dict.eos()]
    translator.unit_banned = list(translator.unit_banned) + [CTC_BLANK]


class Timed:
    """One system's translator, stream state, stage timer and per-chunk records."""

    def __init__(self, translator) -> None:
        self.translator = translator
        self.timer = StageTimer.of(translator)
        self.state = translator.initial_state(SAMPLE_RATE)
        self.chunk_s: List[float] = []
        self.stages: Dict[str, List[float]] = {s: [] for s in STAGES}
        self.subwords: List[int] = []
        self.units: List[int] = []
        self.audio: List[int] = []

    def step(self, samples: torch.Tensor, record: bool = True) -> float:
        self.timer.take()
        t0 = time.perf_counter()
        out, self.state = self.translator.step(self.state, samples)
        elapsed = time.perf_counter() - t0
        stages = self.timer.take()
        if record:
            self.chunk_s.append(elapsed)
            for s in STAGES:
                self.stages[s].append(stages[s])
            self.subwords.append(len(out.target_tokens))
            self.units.append(len(out.units))
            self.audio.append(int(out.audio.numel()))
        return elapsed


def warm_up(translator, stream: torch.Tensor, segment: int, chunks: int = 8) -> None:
    """A throwaway stream first, so one-off allocations do not land in the measurements."""
    state = translator.initial_state(SAMPLE_RATE)
    for k in range(min(chunks, stream.numel() // segment)):
        _, state = translator.step(state, stream[k * segment:(k + 1) * segment])


def simulate_lag(chunk_cost_s: Sequence[float], segment_s: float) -> List[float]:
    """Real-time simulation: chunk ``k`` arrives at ``(k + 1) * segment_s`` and is processed from
    ``max(arrival, previous finish)`` for its cost; returns each chunk's ``finish - arrival`` (s)."""
    lags, finish = [], 0.0
    for k, cost in enumerate(chunk_cost_s):
        arrival = (k + 1) * segment_s
        finish = max(arrival, finish) + cost
        lags.append(finish - arrival)
    return lags
