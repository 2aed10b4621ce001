"""Learning-rate schedules of the paper's experiments: step, cdlr, cosine, constant.

Each is a ``torch.optim.lr_scheduler.LRScheduler`` plus the moment it is stepped
(:class:`LrSchedule`): after every iteration or after every epoch. The loop calls
:meth:`LrSchedule.after_iteration` and :meth:`LrSchedule.after_epoch` and never needs
to know which schedule runs.

The two paper schedules reproduce the authors' demo arithmetic exactly:

* ``step`` (Figs. 3 and 4): lr 0.1, x0.2 after epochs 30, 60, 90, i.e. epoch indices
  0-30 run at 0.1, 31-60 at 0.02, 61-90 at 0.004 and 91-149 at 0.0008. The demo sets
  those values as literals, so the value of segment ``k`` is ``lr * gamma**k`` computed
  in decimal and rounded once (``0.02``, not ``0.1 * 0.2 = 0.020000000000000004``).
* ``cdlr`` ("Figure 5" script, Table 1): lr constant, then from epoch index
  ``start_epoch`` (31) on multiplied by ``factor`` (0.99985) *before* every iteration.
  The first iteration of epoch 31 therefore runs at ``0.1 * 0.99985``; the value is a
  running product in float64, exactly as the demo's ``lr = 0.99985 * lr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LRScheduler

from lcam.harness.config import RunSettings, UnknownNameError

__all__ = ["ContinuousDecayLR", "LrSchedule", "StepDecayLR", "build_schedule"]

Interval = Literal["iteration", "epoch"]


class StepDecayLR(LRScheduler):
    """Piecewise-constant lr: ``lr * gamma**k`` from the ``k``-th milestone epoch on.

    Stepped once per epoch (``last_epoch`` = index of the epoch about to run). The
    values are decimal products of the configured numbers, rounded once to float, so
    ``0.1`` and ``0.2`` give exactly ``0.02``, ``0.004``, ``0.0008``.
    """

    def __init__(
        self, optimizer: Optimizer, milestones: Sequence[int], gamma: float, last_epoch: int = -1
    ) -> None:
        self.milestones = tuple(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | torch.Tensor]:
        drops = sum(1 for m in self.milestones if m <= self.last_epoch)
        return [
            float(Decimal(repr(float(base))) * Decimal(repr(self.gamma)) ** drops)
            for base in self.base_lrs
        ]


class ContinuousDecayLR(LRScheduler):
    """The demo's "Cdlr": constant, then ``lr *= factor`` before every iteration.

    Stepped once per iteration (``last_epoch`` = global index of the iteration about to
    run); from iteration ``start_iteration`` on, every step multiplies the current lr
    by ``factor``. Chainable: the lr is a running product, as in the demo.
    """

    def __init__(
        self, optimizer: Optimizer, start_iteration: int, factor: float, last_epoch: int = -1
    ) -> None:
        self.start_iteration = start_iteration
        self.factor = factor
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | torch.Tensor]:
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        if self.last_epoch >= self.start_iteration:
            return [self.factor * lr for lr in lrs]
        return lrs


@dataclass
class LrSchedule:
    """A torch scheduler and when to step it (after each iteration or each epoch)."""

    name: str
    scheduler: LRScheduler
    interval: Interval

    def after_iteration(self) -> None:
        """Call after every ``optimizer.step()``."""
        if self.interval == "iteration":
            self.scheduler.step()

    def after_epoch(self) -> None:
        """Call after the last iteration of every epoch."""
        if self.interval == "epoch":
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


def build_schedule(
    settings: RunSettings, optimizer: Optimizer, *, steps_per_epoch: int
) -> LrSchedule:
    """The schedule named by ``settings.schedule`` on ``optimizer``.

    ``steps_per_epoch`` (optimizer steps in one epoch) places per-iteration schedules
    on the epoch grid: ``cdlr`` starts at iteration ``cdlr_start_epoch * steps_per_epoch``
    and ``cosine`` anneals to zero over ``epochs * steps_per_epoch`` iterations.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"Invalid steps_per_epoch: {steps_per_epoch} (must be >= 1)")
    name = settings.schedule
    if name == "step":
        return LrSchedule(name, StepDecayLR(optimizer, settings.milestones, settings.gamma),
                          "epoch")
    if name == "cdlr":
        start = settings.cdlr_start_epoch * steps_per_epoch
        return LrSchedule(name, ContinuousDecayLR(optimizer, start, settings.cdlr_factor),
                          "iteration")
    if name == "cosine":
        total = settings.epochs * steps_per_epoch
        return LrSchedule(name, CosineAnnealingLR(optimizer, T_max=total), "iteration")
    if name == "constant":
        return LrSchedule(name, ConstantLR(optimizer, factor=1.0, total_iters=0), "epoch")
    raise UnknownNameError("schedule", name, ("step", "cdlr", "cosine", "constant"))
