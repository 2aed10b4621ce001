"""What the framework tests share: a tiny classifier, fixed batches, an LCAM that keeps
a trace of its statistics after every step, and the hand-written loop they compare
against.

The trace is one ``LCAM.statistics()`` snapshot per optimizer step (steps above/below
in the window, the loss average, the window index), so two equal traces mean the same
above/below decision at every step and the same running average.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from lcam import LCAM, LossStatistics

SAMPLES, FEATURES, CLASSES, BATCH = 40, 8, 3, 8  # 5 batches per epoch


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels whose batch losses vary enough that both momenta are used."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(SAMPLES, FEATURES, generator=gen)
    x[torch.arange(SAMPLES) % 3 == 0] *= 3.0
    return x, torch.randint(0, CLASSES, (SAMPLES,), generator=gen)


def batches(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = data(seed)
    return [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, SAMPLES, BATCH)]


def network(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.Tanh(), nn.Linear(16, CLASSES))


class TracingLCAM(LCAM):
    """LCAM that appends ``statistics()`` after each step to ``self.trace`` (tests only:
    it reads the device every step)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trace: list[LossStatistics] = []

    def step(self, closure=None, *, loss=None):  # type: ignore[override]
        returned = super().step(closure, loss=loss)
        self.trace.append(self.statistics())
        return returned


def decisions(trace: list[LossStatistics]) -> str:
    """``"A"``/``"B"`` per step: momentum_above / momentum_below."""
    out, previous = [], None
    for stats in trace:
        same_window = previous is not None and previous.window_index == stats.window_index
        above_before = previous.steps_above if same_window else 0
        out.append("A" if stats.steps_above > above_before else "B")
        previous = stats
    return "".join(out)


def autocast(precision: str) -> contextlib.AbstractContextManager:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=dtype)


def reference_loop(
    model: nn.Module,
    opt: TracingLCAM,
    *,
    epochs: int,
    accumulation: int = 1,
    precision: str = "fp32",
    max_grad_norm: float | None = None,
    loss_fn: Any = nn.functional.cross_entropy,
    short_cycle_divisor: str = "accumulation",
) -> None:
    """The hand-written loop: micro-batch losses / accumulation backpropagated,
    ``step(loss=mean of the micro-batch losses)`` (float64 mean), ``end_epoch()`` after
    each epoch; GradScaler with ``precision="fp16"``.

    An epoch's last cycle may hold fewer micro-batches: Lightning and Accelerate still
    divide its losses by ``accumulation``; the Hugging Face Trainer divides them by the
    cycle's own length (``short_cycle_divisor="cycle"``).
    """
    scaler = torch.amp.GradScaler("cpu") if precision == "fp16" else None
    data_batches = batches()
    for _ in range(epochs):
        for start in range(0, len(data_batches), accumulation):
            opt.zero_grad()
            losses = []
            cycle = data_batches[start : start + accumulation]
            divisor = len(cycle) if short_cycle_divisor == "cycle" else accumulation
            for x, y in cycle:
                with autocast(precision):
                    loss = loss_fn(model(x), y)
                scaled = loss / divisor
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
                losses.append(loss.detach())
            mean = torch.stack(losses).double().mean()
            if scaler is not None:
                scaler.unscale_(opt)
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            if scaler is not None:
                scaler.step(opt, loss=mean)
                scaler.update()
            else:
                opt.step(loss=mean)
        opt.end_epoch()
