"""Reference loops the optimizer tests compare LCAM against.

Each reference is plain ``torch.optim.SGD`` driven the way the paper or the authors'
demo scripts drive it (see docs/PAPER.md), written out step by step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

# LCAM implementation -> the torch.optim.SGD flags of the matching torch implementation.
IMPLEMENTATIONS: dict[str, dict[str, bool]] = {
    "forloop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}
SGD_FLAGS_FOR_DEFAULT = {"fused": True}  # LCAM's default path is the fused kernel

Batches = list[tuple[torch.Tensor, torch.Tensor]]


def make_problem(
    dtype: torch.dtype = torch.float32, seed: int = 0, batches: int = 10
) -> tuple[nn.Module, Batches]:
    """A small MLP classifier and fixed mini-batches whose losses vary from batch to batch."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)).to(dtype)
    data = []
    for _ in range(batches):
        x = torch.randn(16, 8, generator=gen, dtype=dtype)
        y = torch.randint(0, 3, (16,), generator=gen)
        data.append((x, y))
    return model, data


def batch_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def run_lcam(
    model: nn.Module, opt: torch.optim.Optimizer, batches: Batches, epochs: int,
    statistics: list | None = None,
) -> list[float]:
    """Train with LCAM: step(loss=...) every batch, end_epoch() between epochs.

    If ``statistics`` is a list, each epoch's ``opt.statistics()`` is appended to it.
    """
    losses = []
    for _ in range(epochs):
        for batch in batches:
            opt.zero_grad()
            loss = batch_loss(model, batch)
            loss.backward()
            opt.step(loss=loss)
            losses.append(loss.item())
        if statistics is not None:
            statistics.append(opt.statistics())  # type: ignore[attr-defined]
        opt.end_epoch()  # type: ignore[attr-defined]
    return losses


def run_demo_loop(
    model: nn.Module, sgd: torch.optim.SGD, batches: Batches, epochs: int,
    *, below: float, above: float,
) -> list[float]:
    """The authors' demo loop: the decision taken after step i sets step i+1's momentum.

    Running mean of this epoch's losses, the current one included (sum / (i + 1)),
    reset every epoch; loss strictly below the mean -> ``below``, otherwise ``above``.
    """
    losses = []
    for _ in range(epochs):
        total = 0.0
        for i, batch in enumerate(batches):
            sgd.zero_grad()
            loss = batch_loss(model, batch)
            loss.backward()
            sgd.step()
            total += loss.item()
            mean = total / (i + 1)
            sgd.param_groups[0]["momentum"] = below if loss.item() < mean else above
            losses.append(loss.item())
    return losses


def run_eq9_loop(
    model: nn.Module, sgd: torch.optim.SGD, batches: Batches, epochs: int,
    *, below: float, above: float,
) -> list[float]:
    """Eq. (9) of the paper: this step's loss against the mean including it picks this
    step's momentum; strictly above -> ``above``, ties -> ``below``."""
    losses = []
    for _ in range(epochs):
        total = 0.0
        for i, batch in enumerate(batches):
            sgd.zero_grad()
            loss = batch_loss(model, batch)
            loss.backward()
            total += loss.item()
            mean = total / (i + 1)
            sgd.param_groups[0]["momentum"] = above if loss.item() > mean else below
            sgd.step()
            losses.append(loss.item())
    return losses


def run_recurrence_loop(
    model: nn.Module, batches: Batches, epochs: int, *, lr: float, below: float, above: float,
    dampening: float = 0.0, weight_decay: float = 0.0,
) -> list[float]:
    """LCAM's documented recurrence written with plain tensor arithmetic (eq. 9 decision):
    ``buf = m * buf + (1 - tau) * d`` with ``tau = 0`` when ``m == 0``; ``buf = d`` at
    the first step. Used where torch's SGD has no counterpart (a zero-momentum side)."""
    params = [p for p in model.parameters()]
    bufs: list[torch.Tensor | None] = [None] * len(params)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for i, batch in enumerate(batches):
            model.zero_grad()
            loss = batch_loss(model, batch)
            loss.backward()
            total += loss.item()
            m = above if loss.item() > total / (i + 1) else below
            with torch.no_grad():
                for k, p in enumerate(params):
                    d = p.grad.add(p, alpha=weight_decay) if weight_decay else p.grad
                    buf = bufs[k]
                    if buf is None:
                        buf = bufs[k] = d.clone()
                    else:
                        buf.mul_(m).add_(d, alpha=1.0 if m == 0 else 1.0 - dampening)
                    p.add_(buf, alpha=-lr)
            losses.append(loss.item())
    return losses


def twin(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def same_parameters(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def max_abs_difference(a: nn.Module, b: nn.Module) -> float:
    return max(
        (x - y).abs().max().item() for x, y in zip(a.parameters(), b.parameters(), strict=True)
    )


Trainer = Callable[..., list[float]]
