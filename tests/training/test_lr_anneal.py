"""--lr-scheduler inverse_sqrt_anneal: inverse_sqrt, then linearly to zero at the budget's end."""

import math
from argparse import Namespace

import pytest
import torch
from fairseq.optim import FairseqOptimizer
from fairseq.optim.lr_scheduler import build_lr_scheduler
from fairseq.optim.lr_scheduler.inverse_square_root_schedule import (
    InverseSquareRootLRScheduleConfig,
    InverseSquareRootSchedule,
)

import echostream_fairseq  # noqa: F401  (registers the schedule)
from echostream_fairseq.optim.anneal import InverseSqrtAnnealConfig, InverseSqrtAnnealSchedule


class _SGD(FairseqOptimizer):
    def __init__(self):
        super().__init__(Namespace())
        self._optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _schedule(clock, **kw):
    cfg = InverseSqrtAnnealConfig(
        **{
            "warmup_updates": 500,
            "lr": [2e-3],
            "max_update": 6000,
            "stop_time_hours": 1.0,
            "anneal_fraction": 0.25,
            **kw,
        }
    )
    return InverseSqrtAnnealSchedule(cfg, _SGD(), clock=clock)


def test_equals_inverse_sqrt_until_the_anneal_starts():
    reference = InverseSquareRootSchedule(InverseSquareRootLRScheduleConfig(warmup_updates=500, lr=[2e-3]), _SGD())
    clock = _Clock()
    schedule = _schedule(clock)
    for update in (0, 1, 250, 499, 500, 501, 1000, 2000, 4000):
        clock.now = 100.0 + 3600 * 0.75 * update / 4000  # 75% of the hour at update 4000
        assert schedule.step_update(update) == pytest.approx(reference.step_update(update), rel=1e-12)
        assert schedule.optimizer.get_lr() == pytest.approx(reference.step_update(update), rel=1e-12)


def test_falls_linearly_to_zero_at_the_time_budget():
    clock = _Clock()
    schedule = _schedule(clock)
    base = 2e-3 * math.sqrt(500 / 3000)
    for fraction, factor in ((0.75, 1.0), (0.8125, 0.75), (0.875, 0.5), (0.9375, 0.25), (1.0, 0.0), (1.2, 0.0)):
        clock.now = 100.0 + 3600 * fraction
        assert schedule.step_update(3000) == pytest.approx(base * factor, rel=1e-9, abs=1e-15)


def test_the_update_budget_anneals_without_a_time_limit_and_the_nearer_limit_wins():
    clock = _Clock()
    schedule = _schedule(clock, stop_time_hours=0.0, max_update=4000)
    assert schedule.step_update(3000) == pytest.approx(2e-3 * math.sqrt(500 / 3000))  # 75%: not yet
    assert schedule.step_update(3500) == pytest.approx(2e-3 * math.sqrt(500 / 3500) * 0.5)
    assert schedule.step_update(4000) == 0.0
    both = _schedule(clock, max_update=4000)  # at update 3500 the updates are nearer their end than the clock
    clock.now = 100.0 + 60
    assert both.step_update(3500) == pytest.approx(2e-3 * math.sqrt(500 / 3500) * 0.5)


def test_a_resumed_run_continues_the_clock():
    clock = _Clock()
    first = _schedule(clock)
    clock.now += 3600 * 0.5
    state = first.state_dict()
    assert state["train_seconds"] == pytest.approx(1800.0)
    clock.now += 5000.0  # the pause between the runs does not count
    resumed = _schedule(clock)
    resumed.load_state_dict(state)
    clock.now += 3600 * 0.375  # 87.5% of the budget in all
    assert resumed.step_update(3000) == pytest.approx(2e-3 * math.sqrt(500 / 3000) * 0.5)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"anneal_fraction": 0.0}, "--anneal-fraction must be in (0, 1], got 0.0"),
        ({"anneal_fraction": 1.5}, "--anneal-fraction must be in (0, 1], got 1.5"),
        ({"warmup_updates": 0}, "--warmup-updates must be >= 1, got 0"),
        ({"stop_time_hours": 0.0, "max_update": 0}, "give --stop-time-hours or --max-update"),
        ({"lr": [1e-3, 2e-3]}, "takes one --lr, got [0.001, 0.002]"),
    ],
)
def test_bad_settings_name_the_flag(kw, message):
    with pytest.raises(ValueError) as error:
        _schedule(_Clock(), **kw)
    assert message in str(error.value)


def test_fairseq_builds_it_from_its_flags():
    from fairseq import options

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(
        parser,
        [
            "--task",
            "dummy_lm",
            "--arch",
            "transformer_lm",
            "--optimizer",
            "adam",
            "--lr",
            "2e-3",
            "--lr-scheduler",
            "inverse_sqrt_anneal",
            "--warmup-updates",
            "500",
            "--anneal-fraction",
            "0.3",
            "--stop-time-hours",
            "0.6667",
            "--max-update",
            "6000",
        ],
    )
    schedule = build_lr_scheduler(args, _SGD())
    assert isinstance(schedule, InverseSqrtAnnealSchedule)
    assert schedule.budget_seconds == pytest.approx(2400.12)
    assert schedule.budget_updates == 6000
    assert schedule.cfg.anneal_fraction == 0.3
