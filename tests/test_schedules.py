"""The lr schedules reproduce the paper's values exactly, at chosen epochs and iterations."""

from __future__ import annotations

import math

import pytest
import torch

from lcam.harness.config import RunSettings
from lcam.harness.schedules import build_schedule


def _optimizer(lr: float = 0.1) -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9)


def _lr_per_iteration(settings: RunSettings, epochs: int, steps: int) -> list[list[float]]:
    """The lr each iteration runs at, as ``[epoch][iteration]``, driven like the loop."""
    optimizer = _optimizer(settings.lr)
    schedule = build_schedule(settings, optimizer, steps_per_epoch=steps)
    used = []
    for _ in range(epochs):
        row = []
        for _ in range(steps):
            row.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.after_iteration()
        schedule.after_epoch()
        used.append(row)
    return used


def test_step_schedule_runs_the_demo_values_at_the_boundary_epochs() -> None:
    settings = RunSettings(schedule="step", lr=0.1, epochs=150, milestones=(31, 61, 91),
                           gamma=0.2)
    lrs = _lr_per_iteration(settings, 150, 2)
    expected = {0: 0.1, 30: 0.1, 31: 0.02, 60: 0.02, 61: 0.004, 90: 0.004, 91: 0.0008,
                149: 0.0008}
    for epoch, lr in expected.items():
        assert lrs[epoch] == [lr, lr], epoch  # exact: the demo assigns these literals


def test_step_schedule_is_constant_inside_each_segment() -> None:
    settings = RunSettings(schedule="step", lr=0.1, epochs=150)
    lrs = [row[0] for row in _lr_per_iteration(settings, 150, 1)]
    assert lrs.count(0.1) == 31 and lrs.count(0.02) == 30
    assert lrs.count(0.004) == 30 and lrs.count(0.0008) == 59


def _demo_cdlr(epochs: int, steps: int) -> list[list[float]]:
    """The authors' loop: ``if epoch > 30: lr = 0.99985 * lr`` before every iteration."""
    lr, used = 0.1, []
    for epoch in range(epochs):
        row = []
        for _ in range(steps):
            if epoch > 30:
                lr = 0.99985 * lr
            row.append(lr)
        used.append(row)
    return used


def test_cdlr_matches_the_demo_loop_bitwise() -> None:
    settings = RunSettings(schedule="cdlr", lr=0.1, cdlr_start_epoch=31, cdlr_factor=0.99985)
    assert _lr_per_iteration(settings, 36, 5) == _demo_cdlr(36, 5)


def test_cdlr_pinned_values() -> None:
    settings = RunSettings(schedule="cdlr", lr=0.1)
    steps = 391  # CIFAR: 50,000 / 128, last batch partial
    lrs = _lr_per_iteration(settings, 33, steps)
    assert set(lrs[30]) == {0.1}
    assert lrs[31][0] == 0.99985 * 0.1  # the first iteration of epoch index 31 is decayed
    assert lrs[31][-1] == pytest.approx(0.1 * 0.99985**steps, rel=1e-12)
    assert lrs[32][9] == pytest.approx(0.1 * 0.99985 ** (steps + 10), rel=1e-12)


def test_cdlr_resumed_from_state_dicts_continues_the_same_sequence() -> None:
    settings = RunSettings(schedule="cdlr", lr=0.1, cdlr_start_epoch=1)
    optimizer = _optimizer()
    schedule = build_schedule(settings, optimizer, steps_per_epoch=3)
    for _ in range(5):
        optimizer.step()
        schedule.after_iteration()
    saved_optimizer, saved_schedule = optimizer.state_dict(), schedule.state_dict()
    reference = []
    for _ in range(4):
        reference.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.after_iteration()

    fresh = _optimizer()
    resumed = build_schedule(settings, fresh, steps_per_epoch=3)
    fresh.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved_schedule)
    again = []
    for _ in range(4):
        again.append(fresh.param_groups[0]["lr"])
        fresh.step()
        resumed.after_iteration()
    assert again == reference


def test_cosine_anneals_per_iteration_to_zero() -> None:
    settings = RunSettings(schedule="cosine", lr=0.1, epochs=4)
    lrs = [lr for row in _lr_per_iteration(settings, 4, 5) for lr in row]
    for t, lr in enumerate(lrs):
        assert lr == pytest.approx(0.05 * (1 + math.cos(math.pi * t / 20)), rel=1e-9, abs=1e-15)


def test_constant_schedule_never_changes_the_lr() -> None:
    settings = RunSettings(schedule="constant", lr=1e-4)
    lrs = _lr_per_iteration(settings, 3, 4)
    assert {lr for row in lrs for lr in row} == {1e-4}


def test_schedule_rejects_an_empty_epoch() -> None:
    with pytest.raises(ValueError, match="steps_per_epoch"):
        build_schedule(RunSettings(), _optimizer(), steps_per_epoch=0)
