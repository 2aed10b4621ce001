"""Property-based tests (hypothesis) of LCAM against a reference built on torch's SGD.

Random configurations (momenta equal, unequal or zero on one side; weight decay,
dampening, Nesterov, maximize; the three implementations), random param groups (float32
and float64, 0-d and empty tensors, frozen parameters) and random loss sequences (exact
ties with the running average, NaN and +-inf, every way of handing the loss over, window
restarts) are run through LCAM and through the reference below, with ``state_dict``
round trips (``torch.save``/``torch.load(weights_only=True)`` into a *fresh* optimizer
built with other options) at random points, mid-accumulation included.

The reference decides in plain Python floats, following the documentation of
:mod:`lcam.loss_statistics` and ``LCAM.record_loss``/``nonfinite_loss``, and applies the
update with ``torch.optim.SGD`` of the same implementation, its ``momentum`` switched to
the chosen side every step. A zero-momentum step ("exactly plain SGD, restarts the
buffer from d") is SGD's first step: the group's buffers are dropped before it. The
comparison is bit for bit, as in ``test_optimizer_parity.py``, except where that file
allows rounding: a zero-momentum side with dampening on the for-loop/foreach paths (a
tensor dampening factor, see ``_dampening_factor``).

Example counts: four times those of the ``ci`` profile of tests/conftest.py (default); run
``HYPOTHESIS_PROFILE=long pytest tests/test_fuzz_optimizer.py`` for many more.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from hypothesis import given, note, settings
from hypothesis import strategies as st

from lcam import LCAM

# ----------------------------------------------------------------------- strategies

SHAPES = [(), (0,), (3,), (2, 3), (4, 1), (0, 2), (5,)]
DTYPES = [torch.float32, torch.float64]
MOMENTA = [0.0, 0.5, 0.857, 0.9, 0.93, 0.95]
# LCAM flags -> torch.optim.SGD flags of the same implementation (default = fused).
IMPLEMENTATIONS = {
    "default": ({}, {"fused": True}),
    "fused": ({"fused": True}, {"fused": True}),
    "foreach": ({"foreach": True}, {"foreach": True}),
    "forloop": ({"foreach": False}, {"foreach": False}),
}
# Losses: small dyadic values make exact ties with the running mean common; any float32
# (the loss may be handed over as a float32 tensor) and the non-finite ones.
TIE_VALUES = [0.0, 0.25, 0.5, 1.0, 1.0, 2.0, 3.0]
losses = st.one_of(
    st.sampled_from(TIE_VALUES),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.floats(-10.0, 10.0, width=32),
)


@st.composite
def momentum_pairs(draw: st.DrawFn) -> tuple[float, float]:
    kind = draw(st.sampled_from(["equal", "table", "any", "zero-side"]))
    if kind == "equal":
        m = draw(st.sampled_from(MOMENTA) | st.floats(0.0, 0.999))
        return m, m
    if kind == "zero-side":
        m = draw(st.sampled_from(MOMENTA[1:]))
        return (0.0, m) if draw(st.booleans()) else (m, 0.0)
    pool = st.sampled_from(MOMENTA) if kind == "table" else st.floats(0.0, 0.999)
    return draw(pool), draw(pool)


@st.composite
def param_groups(draw: st.DrawFn) -> list[dict[str, Any]]:
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        above, below = draw(momentum_pairs())
        nesterov = above > 0 and below > 0 and draw(st.booleans())
        group = dict(
            shapes=draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3)),
            dtypes=None,
            frozen=None,
            lr=draw(st.sampled_from([0.0, 0.01, 0.1, 0.5]) | st.floats(0.0, 1.0)),
            momentum_above=above,
            momentum_below=below,
            weight_decay=draw(st.sampled_from([0.0, 1e-3, 0.1])),
            dampening=0.0 if nesterov else draw(st.sampled_from([0.0, 0.0, 0.3])),
            nesterov=nesterov,
            maximize=draw(st.booleans()),
            implementation=draw(st.sampled_from(list(IMPLEMENTATIONS))),
        )
        n = len(group["shapes"])
        group["dtypes"] = draw(st.lists(st.sampled_from(DTYPES), min_size=n, max_size=n))
        group["frozen"] = draw(
            st.lists(st.sampled_from([False, False, False, True]), min_size=n, max_size=n)
        )
        groups.append(group)
    return groups


@st.composite
def events(draw: st.DrawFn) -> list[tuple]:
    """A training script: steps with each way of handing the loss over, end_epoch(),
    record_loss() calls and state_dict round trips anywhere (also between records)."""
    out: list[tuple] = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(
            ["step", "step", "step", "step", "record", "end_epoch", "roundtrip"]))
        if kind == "step":
            mode = draw(st.sampled_from(["tensor", "float", "closure", "recorded"]))
            out.append(("step", mode, draw(losses)))
        elif kind == "record":
            out.append(("record", draw(losses)))
        else:
            out.append((kind,))
    return out


@st.composite
def configurations(draw: st.DrawFn) -> dict[str, Any]:
    loss_average = draw(st.sampled_from(["epoch", "ema"]))
    return dict(
        decision=draw(st.sampled_from(["current", "lagged"])),
        loss_average=loss_average,
        ema_decay=draw(st.sampled_from([0.0, 0.5, 0.9]) | st.floats(0.0, 0.999)),
        steps_per_epoch=draw(st.none() | st.integers(1, 5)),
        nonfinite_loss=draw(st.sampled_from(["skip", "skip", "raise"])),
    )


# ------------------------------------------------------------------ the reference


@dataclass
class ReferenceStatistics:
    """The running average and the decision, as documented, in Python floats."""

    decision: str
    loss_average: str
    ema_decay: float
    steps_per_epoch: int | None
    average: float = 0.0  # "epoch": the window's sum; "ema": the average
    count: int = 0
    above: int = 0
    below: int = 0
    nonfinite: int = 0
    pending_above: bool = True
    ema_started: bool = False
    total: int = 0
    window: int = 0

    def new_window(self) -> None:
        if self.loss_average == "epoch":
            self.average = 0.0
        self.count = self.above = self.below = self.nonfinite = 0
        self.window += 1

    def update(self, loss: float) -> bool:
        """This step's side: True for momentum_above."""
        if self.steps_per_epoch is not None and self.above + self.below >= self.steps_per_epoch:
            self.new_window()
        finite = math.isfinite(loss)
        value = loss if finite else 0.0
        if self.loss_average == "epoch":
            self.average += value
            self.count += finite
            mean = self.average / max(self.count, 1)
        else:
            if finite:
                self.average = (
                    self.average * self.ema_decay + value * (1.0 - self.ema_decay)
                    if self.ema_started else value
                )
                self.ema_started = True
            self.count += finite
            mean = self.average
        if self.decision == "current":  # ties -> below, non-finite -> above
            use_above = loss > mean or not finite
        else:  # the previous step's decision; ties -> above; non-finite keeps it
            use_above = self.pending_above
            if finite:
                self.pending_above = not loss < mean
        self.above += use_above
        self.below += not use_above
        self.nonfinite += not finite
        self.total += 1
        return use_above

    def snapshot(self) -> dict[str, Any]:
        if self.loss_average == "epoch":
            average = self.average / self.count if self.count else None
        else:
            average = self.average if self.ema_started else None
        return dict(steps=self.above + self.below, steps_above=self.above,
                    steps_below=self.below, nonfinite_losses=self.nonfinite,
                    loss_average=average, total_steps=self.total, window_index=self.window)


@dataclass
class Reference:
    """torch.optim.SGD driven with the reference decision, one momentum per group."""

    sgd: torch.optim.SGD
    specs: list[dict[str, Any]]
    stats: ReferenceStatistics
    recorded: list[float] = field(default_factory=list)

    def step(self, loss: float) -> None:
        use_above = self.stats.update(loss)
        for group, spec in zip(self.sgd.param_groups, self.specs, strict=True):
            m = spec["momentum_above"] if use_above else spec["momentum_below"]
            other = spec["momentum_below"] if use_above else spec["momentum_above"]
            if m == 0.0 and other != 0.0:
                # Plain SGD, buffer restarted from d: SGD's first step (any momentum).
                for p in group["params"]:
                    self.sgd.state[p].pop("momentum_buffer", None)
                m = other
            group["momentum"] = m
        self.sgd.step()


def _build(spec_groups: list[dict[str, Any]], seed: int):
    """Two identical sets of parameters and the LCAM/SGD param-group lists over them."""
    gen = torch.Generator().manual_seed(seed)
    lcam_groups, sgd_groups, pairs = [], [], []
    for spec in spec_groups:
        mine, theirs = [], []
        for shape, dtype, frozen in zip(spec["shapes"], spec["dtypes"], spec["frozen"],
                                        strict=True):
            p = torch.randn(shape, generator=gen, dtype=dtype).requires_grad_(True)
            q = p.detach().clone().requires_grad_(True)
            mine.append(p)
            theirs.append(q)
            pairs.append((p, q, frozen))
        options = {k: spec[k] for k in ("lr", "momentum_above", "momentum_below",
                                         "weight_decay", "dampening", "nesterov", "maximize")}
        lcam_flags, sgd_flags = IMPLEMENTATIONS[spec["implementation"]]
        lcam_groups.append(dict(params=mine, **options, **lcam_flags))
        sgd_options = {k: v for k, v in options.items()
                       if k not in ("momentum_above", "momentum_below")}
        sgd_groups.append(dict(
            params=theirs, momentum=max(spec["momentum_above"], spec["momentum_below"]),
            **sgd_options, **sgd_flags))
    return lcam_groups, sgd_groups, pairs


def _roundtrip(opt: LCAM, lcam_groups: list[dict[str, Any]], config: dict[str, Any]) -> LCAM:
    """A fresh LCAM (other options) over the same parameters, loaded from a saved state."""
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    other_decision = "lagged" if config["decision"] == "current" else "current"
    fresh = LCAM([{"params": g["params"]} for g in lcam_groups], lr=0.0123,
                 momentum_above=0.5, momentum_below=0.25, decision=other_decision,
                 loss_average="ema", ema_decay=0.3, steps_per_epoch=None)
    fresh.load_state_dict(saved)
    return fresh


def _tolerance(specs: list[dict[str, Any]]) -> bool:
    """True where test_optimizer_parity.py also allows rounding (see the module doc)."""
    return any(
        (spec["momentum_above"] == 0.0) != (spec["momentum_below"] == 0.0)
        and spec["dampening"] != 0.0
        and spec["implementation"] in ("foreach", "forloop")
        for spec in specs
    )


def _same(a: torch.Tensor, b: torch.Tensor, approx: bool) -> bool:
    if torch.equal(a, b):
        return True
    if not approx:
        return False
    rtol = 1e-12 if a.dtype == torch.float64 else 1e-5
    return torch.allclose(a, b, rtol=rtol, atol=rtol)


def _statistics(opt: LCAM) -> dict[str, Any]:
    s = opt.statistics()
    return dict(steps=s.steps, steps_above=s.steps_above, steps_below=s.steps_below,
                nonfinite_losses=s.nonfinite_losses, loss_average=s.loss_average,
                total_steps=s.total_steps, window_index=s.window_index)


def _same_statistics(mine: dict[str, Any], theirs: dict[str, Any]) -> bool:
    a, b = mine.pop("loss_average"), theirs.pop("loss_average")
    same_average = (a is None and b is None) or (
        a is not None and b is not None and (a == b or (math.isnan(a) and math.isnan(b))))
    return mine == theirs and same_average


# Cheap examples (about 30 ms): four times the profile's count.
@settings(max_examples=4 * settings.default.max_examples)
@given(config=configurations(), specs=param_groups(), script=events(),
       seed=st.integers(0, 2**16))
def test_lcam_follows_the_reference_through_random_scripts(config, specs, script, seed):
    lcam_groups, sgd_groups, pairs = _build(specs, seed)
    opt = LCAM(lcam_groups, lr=0.1, momentum_above=0.9, momentum_below=0.9, **config)
    sgd = torch.optim.SGD(sgd_groups, lr=0.1)
    stats = ReferenceStatistics(config["decision"], config["loss_average"],
                                config["ema_decay"], config["steps_per_epoch"])
    ref = Reference(sgd, specs, stats)
    gen = torch.Generator().manual_seed(seed + 1)
    raising = config["nonfinite_loss"] == "raise"

    def set_gradients() -> None:
        for p, q, frozen in pairs:
            if frozen:
                continue
            g = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.grad, q.grad = g.clone(), g.clone()

    for number, event in enumerate(script):
        note(f"event {number}: {event}")
        if event[0] == "end_epoch":
            assert _same_statistics(_statistics(opt), stats.snapshot())
            opt.end_epoch()
            stats.new_window()
        elif event[0] == "roundtrip":
            opt = _roundtrip(opt, lcam_groups, config)
        elif event[0] == "record":
            opt.record_loss(torch.tensor(event[1], dtype=torch.float32))
            ref.recorded.append(event[1])
        else:
            _, mode, value = event
            set_gradients()
            if mode == "recorded" and not ref.recorded:
                mode = "float"
            if ref.recorded and mode in ("tensor", "float"):
                # Two hand-offs for one step: ValueError, nothing changed.
                before = [p.detach().clone() for p, _, _ in pairs]
                with pytest.raises(ValueError, match="record_loss"):
                    opt.step(loss=value)
                assert all(torch.equal(a, p) for a, (p, _, _) in zip(before, pairs, strict=True))
                mode = "recorded"
            if ref.recorded:  # the mean of the recorded losses decides (float64)
                total = 0.0
                for v in ref.recorded:
                    total += v
                decided = total / len(ref.recorded)
            else:
                decided = value
            if raising and not math.isfinite(decided):
                before = [p.detach().clone() for p, _, _ in pairs]
                with pytest.raises(ValueError, match="non-finite loss"):
                    _step(opt, mode, value)
                assert all(torch.equal(a, p) for a, (p, _, _) in zip(before, pairs, strict=True))
                continue  # nothing changed; the recorded losses stay
            _step(opt, mode, value)
            ref.recorded.clear()
            ref.step(decided)
        assert opt.recorded_loss_count == len(ref.recorded)

    approx = _tolerance(specs)
    assert _same_statistics(_statistics(opt), stats.snapshot())
    for p, q, _ in pairs:
        assert _same(p.detach(), q.detach(), approx), (p, q)
        mine = opt.state[p].get("momentum_buffer")
        theirs = sgd.state[q].get("momentum_buffer")
        assert (mine is None) == (theirs is None)  # none with momentum 0 (both sides)
        if mine is not None:
            assert _same(mine, theirs, approx), (mine, theirs)


def _step(opt: LCAM, mode: str, value: float) -> None:
    if mode == "tensor":
        opt.step(loss=torch.tensor(value, dtype=torch.float32))
    elif mode == "float":
        opt.step(loss=value)
    elif mode == "closure":
        opt.step(lambda: torch.tensor(value, dtype=torch.float32))
    else:
        opt.step()
