"""``--lr-scheduler inverse_sqrt_anneal``: fairseq's inverse square root, annealed to zero at the
end of the training budget.

A run whose budget is wall-clock time (``--stop-time-hours``) stops wherever the clock says, at a
learning rate that is still high under ``inverse_sqrt``; the updates made while the rate falls to
zero are where a short run gains most. This schedule is ``inverse_sqrt`` (the same warm-up and the
same rate) until ``1 - anneal_fraction`` of the budget has passed, then multiplies that rate by a
factor that falls linearly to zero at the budget's end::

    progress = max(train_seconds / (3600 * stop_time_hours), num_updates / max_update)
    lr = inverse_sqrt(num_updates) * min(1, (1 - progress) / anneal_fraction)

where either term is left out when its limit is 0 (unset). ``train_seconds`` is this scheduler's
own clock: it starts when fairseq builds the scheduler (with the optimiser, before the first
update) and is saved in the checkpoint, so a resumed run continues it, as fairseq's
``--stop-time-hours`` counts the time of earlier runs. With a time budget, two runs of one seed
differ once the annealing starts: the rate depends on the machine's speed, as the number of
updates in the budget does.
"""

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Callable

from fairseq.optim.lr_scheduler import register_lr_scheduler
from fairseq.optim.lr_scheduler.inverse_square_root_schedule import (
    InverseSquareRootLRScheduleConfig,
    InverseSquareRootSchedule,
)
from omegaconf import II


@dataclass
class InverseSqrtAnnealConfig(InverseSquareRootLRScheduleConfig):
    anneal_fraction: float = field(
        default=0.3,
        metadata={
            "help": "the last fraction of the budget (--stop-time-hours, --max-update) over which the "
            "learning rate falls linearly to zero"
        },
    )
    max_update: int = II("optimization.max_update")
    stop_time_hours: float = II("optimization.stop_time_hours")


def anneal_factor(progress: float, anneal_fraction: float) -> float:
    """The multiplier of the inverse-square-root rate at ``progress`` (0 to 1) through the budget."""
    return max(0.0, min(1.0, (1.0 - progress) / anneal_fraction))


@register_lr_scheduler("inverse_sqrt_anneal", dataclass=InverseSqrtAnnealConfig)
class InverseSqrtAnnealSchedule(InverseSquareRootSchedule):
    """fairseq's ``inverse_sqrt``, then linearly to zero over the last ``anneal_fraction`` of the budget."""

    def __init__(self, cfg: InverseSqrtAnnealConfig, optimizer, clock: Callable[[], float] = time.monotonic):
        if isinstance(cfg.lr, Collection) and len(cfg.lr) > 1:
            raise ValueError(f"--lr-scheduler inverse_sqrt_anneal takes one --lr, got {list(cfg.lr)}")
        if not 0 < cfg.anneal_fraction <= 1:
            raise ValueError(f"--anneal-fraction must be in (0, 1], got {cfg.anneal_fraction}")
        if cfg.warmup_updates < 1:  # inverse_sqrt divides by it
            raise ValueError(f"--warmup-updates must be >= 1, got {cfg.warmup_updates}")
        self.budget_seconds = 3600.0 * cfg.stop_time_hours if cfg.stop_time_hours and cfg.stop_time_hours > 0 else 0.0
        self.budget_updates = cfg.max_update if cfg.max_update and cfg.max_update > 0 else 0
        if not self.budget_seconds and not self.budget_updates:
            raise ValueError(
                "--lr-scheduler inverse_sqrt_anneal anneals towards the end of the budget: "
                "give --stop-time-hours or --max-update"
            )
        super().__init__(cfg, optimizer)
        self.clock = clock
        self.started = clock()
        self.earlier_seconds = 0.0  # the time of the runs this one resumes

    def train_seconds(self) -> float:
        return self.earlier_seconds + self.clock() - self.started

    def progress(self, num_updates: int) -> float:
        """How far through the budget the run is: 0 at the start, 1 at its end."""
        done = 0.0
        if self.budget_seconds:
            done = max(done, self.train_seconds() / self.budget_seconds)
        if self.budget_updates:
            done = max(done, num_updates / self.budget_updates)
        return done

    def step_update(self, num_updates):
        self.lr = super().step_update(num_updates) * anneal_factor(self.progress(num_updates), self.cfg.anneal_fraction)
        self.optimizer.set_lr(self.lr)
        return self.lr

    def state_dict(self):
        return {**super().state_dict(), "train_seconds": self.train_seconds()}

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.earlier_seconds = float(state_dict.get("train_seconds", 0.0))
        self.started = self.clock()
