r"""``LCAM``: Loss-Controlled Asymmetric Momentum as a ``torch.optim`` optimizer.

This module holds the class: argument validation, param groups, ``step``,
``state_dict``. The running loss average lives in :mod:`lcam.loss_statistics`, the
update kernels in :mod:`lcam._functional`.

Design, and why (the hot path):

* The decision (``loss`` vs its running average) is made on the parameters' device with
  tensor ops and handed to the update kernels as a 0-dim bool tensor. ``step`` never
  reads a tensor value on the host, so on CUDA it queues work and returns.
* The default implementation is torch's own fused SGD kernel (the one behind
  ``SGD(fused=True)``), called once per momentum side and masked on the device through
  the kernel's ``found_inf`` argument, so that only the chosen side touches memory. It
  is bit for bit ``SGD(fused=True)`` and, on CPU, about as fast (see
  ``benchmarks/step_overhead.py``); ``foreach=True`` and ``foreach=False`` select
  multi-tensor and per-tensor implementations that are bit for bit ``SGD(foreach=True)``
  and ``SGD(foreach=False)``.
* Optimizer-wide statistics are one small float64 vector outside the per-parameter
  state: ``state_dict()`` carries it under the key ``"lcam"``, where torch's dtype
  casting on load cannot reach it.
* Trainers that call ``step()`` without a loss (Hugging Face ``Trainer``, Accelerate,
  GradScaler inside Lightning) hand the loss over with :meth:`LCAM.record_loss`: a
  device-side float64 sum plus a host-side count of the calls, so recording never
  reads the device either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import Tensor
from torch.optim import Optimizer

from ._functional import GroupHyperparameters, lcam_update
from .loss_statistics import (
    DECISIONS,
    LOSS_AVERAGES,
    LossStatistics,
    RunningLoss,
    check_steps_per_epoch,
)

__all__ = ["LCAM"]

_NONFINITE_POLICIES = ("skip", "raise")
_FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")
_FOREACH_DEVICES = ("cuda", "xpu")


def _check_fraction(name: str, value: object, *, closed_high: bool = False) -> None:
    """Validate ``value`` in [0, 1) (or [0, 1]), with a message that says so."""
    bounds = "[0, 1]" if closed_high else "[0, 1)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Invalid {name} value: {value!r} (must be a number in {bounds})")
    ok = 0.0 <= value <= 1.0 if closed_high else 0.0 <= value < 1.0
    if not ok or math.isnan(value):
        raise ValueError(f"Invalid {name} value: {value} (must be in {bounds})")


def _check_group(group: dict[str, Any]) -> None:
    """Validate one param group's hyperparameters; raise before anything is stored."""
    lr = group["lr"]
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise ValueError(f"Invalid lr: a tensor lr must have 1 element, got shape "
                             f"{tuple(lr.shape)}")
        lr_value = float(lr.detach().cpu())  # construction time: reading it is fine
    elif isinstance(lr, (int, float)) and not isinstance(lr, bool):
        lr_value = float(lr)
    else:
        raise TypeError(f"Invalid lr value: {lr!r} (must be a float or a 1-element tensor)")
    if not lr_value >= 0.0:
        raise ValueError(f"Invalid lr value: {lr_value} (must be >= 0)")
    _check_fraction("momentum_above", group["momentum_above"])
    _check_fraction("momentum_below", group["momentum_below"])
    _check_fraction("dampening", group["dampening"], closed_high=True)
    wd = group["weight_decay"]
    if isinstance(wd, bool) or not isinstance(wd, (int, float)) or not wd >= 0.0:
        raise ValueError(f"Invalid weight_decay value: {wd} (must be a number >= 0)")
    if group["nesterov"] and (
        group["momentum_above"] <= 0.0 or group["momentum_below"] <= 0.0 or group["dampening"] != 0
    ):
        raise ValueError(
            "Nesterov momentum requires momentum_above > 0, momentum_below > 0 and "
            f"dampening == 0 (got momentum_above={group['momentum_above']}, "
            f"momentum_below={group['momentum_below']}, dampening={group['dampening']}); "
            "pass nesterov=False or change those values"
        )
    if group["fused"] and group["foreach"]:
        raise ValueError("fused=True and foreach=True cannot be used together: choose one")
    if group["fused"]:
        for p in group["params"]:
            if p.device.type not in _FUSED_DEVICES or not torch.is_floating_point(p):
                raise ValueError(
                    f"fused=True needs floating-point parameters on one of {_FUSED_DEVICES}; "
                    f"got a {p.dtype} parameter on {p.device.type} (complex parameters are "
                    "supported with foreach=True or foreach=False)"
                )


class LCAM(Optimizer):
    r"""SGD with momentum whose coefficient depends on the loss: Loss-Controlled
    Asymmetric Momentum (LCAM).

    .. math::

        \begin{aligned}
        &\bar\ell_t = \text{running average of the losses } \ell_1..\ell_t
            \text{ (this epoch's mean, or an EMA)} \\
        &\textbf{current (eq. 9):}\quad \mu_t = \begin{cases}
            \mu_{above} & \ell_t > \bar\ell_t \\ \mu_{below} & \ell_t \le \bar\ell_t
            \end{cases} \\
        &\textbf{lagged (demo scripts):}\quad \mu_{t+1} = \begin{cases}
            \mu_{below} & \ell_t < \bar\ell_t \\ \mu_{above} & \ell_t \ge \bar\ell_t
            \end{cases} \\
        &d_t = \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1},\quad
         b_t = \mu_t b_{t-1} + (1-\tau) d_t \;(b_1 = d_1),\quad
         \theta_t = \theta_{t-1} - \gamma\,(\text{nesterov}\;?\;d_t + \mu_t b_t : b_t)
        \end{aligned}

    With ``momentum_above == momentum_below`` it is exactly ``torch.optim.SGD``.

    Args:
        params: parameters or param groups (dicts). Groups may set their own ``lr``,
            ``momentum_above``, ``momentum_below``, ``weight_decay``, ``dampening``,
            ``nesterov``, ``maximize``, ``foreach``, ``fused``.
        lr: learning rate (float or 1-element tensor).
        momentum_above: momentum while the loss is above its running average
            (the paper's left / non-sparse phase).
        momentum_below: momentum while the loss is at or below it (right / sparse).
            The authors' run name ``m0.95_0.9`` means ``momentum_below=0.95,
            momentum_above=0.9``.
        weight_decay: L2 penalty added to the gradient, as in SGD.
        dampening: dampening of the momentum buffer, as in SGD (ignored on a step
            whose momentum is 0, like SGD).
        nesterov: Nesterov momentum (needs both momenta > 0 and no dampening).
        decision: ``"current"`` (eq. 9: this step's loss decides this step's momentum,
            ties go to ``momentum_below``) or ``"lagged"`` (the authors' demo scripts:
            step i's loss decides step i+1's momentum, ties go to ``momentum_above``).
        loss_average: ``"epoch"`` (mean of the current window's losses, restarted by
            :meth:`end_epoch` or ``steps_per_epoch``) or ``"ema"`` (exponential moving
            average, see ``ema_decay``; never restarted).
        steps_per_epoch: restart the window by itself after this many optimizer steps
            (at the first step after the window holds that many), for trainers that
            never call :meth:`end_epoch`. ``None`` (default): only :meth:`end_epoch`
            restarts it, and a run that never calls it averages over the whole run
            (``statistics().window_index`` stays 0). Both may be used together:
            :meth:`end_epoch` restarts the count.
        ema_decay: weight of the old average in ``"ema"`` mode, in [0, 1).
        maximize: maximise the objective instead of minimising it.
        foreach: ``True`` selects the multi-tensor implementation, ``False`` the
            per-tensor one; ``None`` (default) picks the fused kernel where torch has it
            (CPU, CUDA, MPS, XPU) and floating-point parameters allow.
        fused: ``True`` forces the fused kernel (floating-point params on a supported
            device, checked at construction). The kernel (``torch._fused_sgd_``, private
            to torch) is probed once per device and dtype; where it is missing or
            computes anything else, the foreach implementation runs instead, bit for
            bit, after one ``RuntimeWarning`` (``docs/COMPAT.md``).
        all_reduce_loss: when ``torch.distributed`` is initialised, average the loss
            over all ranks (one all-reduce of a scalar) before deciding, so every rank
            takes the same decision. Turn off only if you reduce the loss yourself.
        nonfinite_loss: ``"skip"`` (default) leaves a NaN/inf loss out of the average,
            counts it and treats the step as above the average (``"lagged"``: keeps the
            pending decision); ``"raise"`` raises ``ValueError`` instead, before any
            state changes (this reads the loss on the host: one sync per step).

    Every step needs the loss, handed over in exactly one of three ways:
    ``opt.step(loss=loss)``, ``opt.step(closure)``, or ``opt.record_loss(loss)`` for
    each micro-batch followed by ``opt.step()`` (for trainers that call ``step()``
    without arguments; see :meth:`record_loss` for the precedence rule). Pass the
    *unscaled* loss under ``torch.amp.GradScaler`` (``scaler.step(opt, loss=loss)``; a
    skipped step does not reach LCAM and leaves its state untouched), and the mean of
    the micro-batch losses with gradient accumulation (which :meth:`record_loss`
    computes for you).

    Example:
        >>> import torch
        >>> from lcam import LCAM
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = LCAM(model.parameters(), lr=0.1, momentum_above=0.9,
        ...            momentum_below=0.95, weight_decay=5e-4, decision="lagged")
        >>> for epoch in range(2):
        ...     for _ in range(3):
        ...         loss = model(torch.randn(8, 4)).pow(2).mean()
        ...         opt.zero_grad()
        ...         loss.backward()
        ...         _ = opt.step(loss=loss)
        ...     stats = opt.statistics()      # this epoch's steps above/below, average
        ...     opt.end_epoch()
        >>> stats.steps
        3
    """

    # Losses handed over by record_loss() for the next step: float64 sum on the
    # statistics' device, count on the host.
    _recorded_sum: Tensor | None
    _recorded_count: int

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        *,
        momentum_above: float,
        momentum_below: float,
        weight_decay: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        decision: str = "current",
        loss_average: str = "epoch",
        ema_decay: float = 0.9,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        all_reduce_loss: bool = True,
        nonfinite_loss: str = "skip",
        steps_per_epoch: int | None = None,
    ) -> None:
        check_steps_per_epoch(steps_per_epoch)
        if decision not in DECISIONS:
            raise ValueError(f"Invalid decision: {decision!r} (must be one of {DECISIONS})")
        if loss_average not in LOSS_AVERAGES:
            raise ValueError(
                f"Invalid loss_average: {loss_average!r} (must be one of {LOSS_AVERAGES})"
            )
        _check_fraction("ema_decay", ema_decay)
        if nonfinite_loss not in _NONFINITE_POLICIES:
            raise ValueError(
                f"Invalid nonfinite_loss: {nonfinite_loss!r} "
                f"(must be one of {_NONFINITE_POLICIES})"
            )
        defaults = dict(
            lr=lr,
            momentum_above=momentum_above,
            momentum_below=momentum_below,
            weight_decay=weight_decay,
            dampening=dampening,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
        )
        self.all_reduce_loss = bool(all_reduce_loss)
        self.nonfinite_loss = nonfinite_loss
        # Set before super().__init__, which calls add_param_group.
        self._running_loss = RunningLoss(
            decision=decision,
            loss_average=loss_average,
            ema_decay=ema_decay,
            device=torch.device("cpu"),
            steps_per_epoch=steps_per_epoch,
        )
        self._clear_recorded()
        super().__init__(params, defaults)
        first = next((p for g in self.param_groups for p in g["params"]), None)
        if first is not None:
            self._running_loss.to(first.device)

    # ----------------------------------------------------------------- properties
    @property
    def decision(self) -> str:
        """``"current"`` or ``"lagged"`` (see the class docstring)."""
        return self._running_loss.decision

    @property
    def loss_average(self) -> str:
        """``"epoch"`` or ``"ema"``."""
        return self._running_loss.loss_average

    @property
    def steps_per_epoch(self) -> int | None:
        """Steps after which the window restarts by itself (``None``: only end_epoch())."""
        return self._running_loss.steps_per_epoch

    @property
    def recorded_loss_count(self) -> int:
        """How many losses :meth:`record_loss` holds for the next step (host-side count)."""
        return self._recorded_count

    # ------------------------------------------------------------------ param groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its hyperparameters are validated before it is stored."""
        probe = dict(param_group)
        params = probe["params"]
        probe["params"] = [params] if isinstance(params, Tensor) else list(params)
        param_group["params"] = probe["params"]  # a generator can only be read once
        for key, value in self.defaults.items():
            probe.setdefault(key, value)
        _check_group(probe)
        super().add_param_group(param_group)

    def __setstate__(self, state: dict[str, Any]) -> None:
        lcam_state = state.pop("_lcam", None)
        super().__setstate__(state)
        for group in self.param_groups:  # state_dicts saved before these flags existed
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("fused", None)
            group.setdefault("dampening", 0.0)
            group.setdefault("weight_decay", 0.0)
        if lcam_state is not None:  # pickling / deepcopy (load_state_dict passes none)
            self._running_loss = lcam_state["running_loss"]
            self.all_reduce_loss = lcam_state["all_reduce_loss"]
            self.nonfinite_loss = lcam_state["nonfinite_loss"]
            self._recorded_sum = lcam_state.get("recorded_loss_sum")
            self._recorded_count = lcam_state.get("recorded_loss_count", 0)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_lcam"] = {
            "running_loss": self._running_loss,
            "all_reduce_loss": self.all_reduce_loss,
            "nonfinite_loss": self.nonfinite_loss,
            "recorded_loss_sum": self._recorded_sum,
            "recorded_loss_count": self._recorded_count,
        }
        return state

    # ------------------------------------------------------------------ state_dict
    def state_dict(self) -> dict[str, Any]:
        """Torch's state_dict plus ``"lcam"``: the loss statistics and global options.

        It also holds the losses recorded with :meth:`record_loss` that no step has used
        yet (their float64 sum and their count), so a state_dict taken in the middle of
        a gradient-accumulation cycle resumes it bit for bit, provided the accumulated
        ``.grad`` is restored too (no optimizer state_dict holds gradients).
        """
        state = super().state_dict()
        recorded = self._recorded_sum
        state["lcam"] = {
            **self._running_loss.state_dict(),
            "all_reduce_loss": self.all_reduce_loss,
            "nonfinite_loss": self.nonfinite_loss,
            "recorded_loss_sum": None if recorded is None else recorded.detach().clone(),
            "recorded_loss_count": self._recorded_count,
        }
        return state

    @staticmethod
    def _check_recorded(saved: dict[str, Any]) -> None:
        count = saved.get("recorded_loss_count", 0)
        total = saved.get("recorded_loss_sum")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"saved recorded_loss_count {count!r} is not an int >= 0")
        if count and not (isinstance(total, Tensor) and total.numel() == 1):
            raise ValueError(
                f"saved recorded_loss_count is {count} but recorded_loss_sum is not a "
                "1-element tensor: was the state_dict written by LCAM.state_dict()?"
            )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict written by :meth:`state_dict`; nothing changes on error.

        The losses recorded for the next step are replaced by the saved ones (none, if
        the state_dict was saved at a step boundary or before they existed). A
        state_dict without the ``"lcam"`` entry (e.g. from ``torch.optim.SGD`` with the
        same groups) loads the momentum buffers and keeps the loss statistics and the
        recorded losses as they are.
        """
        saved = state_dict.get("lcam")
        if saved is not None:
            RunningLoss.check_state_dict(saved)
            self._check_recorded(saved)
            policy = saved.get("nonfinite_loss", self.nonfinite_loss)
            if policy not in _NONFINITE_POLICIES:
                raise ValueError(f"saved nonfinite_loss {policy!r} is not one of "
                                 f"{_NONFINITE_POLICIES}")
        torch_part = {k: v for k, v in state_dict.items() if k != "lcam"}
        for group in torch_part.get("param_groups", []):
            missing = {"momentum_above", "momentum_below"} - group.keys()
            if missing:
                raise ValueError(
                    f"param group in the state_dict lacks {sorted(missing)}: was it saved "
                    "from a different optimizer? Load only LCAM state_dicts (or set both "
                    "momenta in the saved groups)"
                )
        super().load_state_dict(torch_part)
        if saved is not None:
            self._running_loss.load_state_dict(saved)
            self.all_reduce_loss = bool(saved.get("all_reduce_loss", self.all_reduce_loss))
            self.nonfinite_loss = saved.get("nonfinite_loss", self.nonfinite_loss)
            self._clear_recorded()
            count = saved.get("recorded_loss_count", 0)
            if count:
                stats = self._running_loss.state
                self._recorded_sum = saved["recorded_loss_sum"].detach().reshape(()).to(
                    device=stats.device, dtype=stats.dtype).clone()
                self._recorded_count = count

    # ---------------------------------------------------------------- observability
    def statistics(self) -> LossStatistics:
        """This window's steps above/below, non-finite losses, loss average, window index.

        Reads one small tensor from the device (a host sync): call it once per epoch,
        before :meth:`end_epoch`, not inside the step loop.
        """
        return self._running_loss.snapshot()

    def end_epoch(self) -> None:
        """Start a new averaging window (the next epoch). No host synchronisation.

        In ``loss_average="epoch"`` mode the running mean restarts; in both modes the
        per-window counters of :meth:`statistics` restart and its ``window_index``
        advances. The pending ``"lagged"`` decision carries over, as in the demo
        scripts. Losses recorded for the next step stay recorded.
        """
        self._running_loss.new_window()

    # ------------------------------------------------------------------ loss hand-off
    def record_loss(self, loss: Tensor | float) -> None:
        """Hand over a loss for the next :meth:`step` that is given none; no host sync.

        Call it once per micro-batch (any number of times between two steps); the next
        ``step()`` decides on the mean of the losses recorded since the previous step,
        exactly as ``step(loss=mean)`` would (the mean is taken in float64; under DDP it
        is all-reduced like a passed loss), and then forgets them. Record the loss of
        each micro-batch *before* any division by the number of accumulation steps and
        *before* GradScaler scaling.

        Precedence, one source per step:

        * ``step(loss=...)`` while losses are recorded raises ``ValueError`` and changes
          nothing: two explicit hand-offs for one step are a bug, and silently
          preferring either would hide it.
        * ``step(closure)`` runs the closure (it computes the gradients), but when losses
          are recorded, their mean decides, not the closure's return value: frameworks
          that pass a closure (Lightning) return only the last micro-batch's loss from
          it (divided by the accumulation steps), while the recorded losses cover every
          micro-batch of the step. The closure's return value is still returned and may
          be ``None``.
        * ``step()`` with neither decides on the recorded mean; without any recorded
          loss it raises ``TypeError``.
        * A closure that returns ``None`` with no loss recorded and no gradient left
          (Lightning's way to skip a batch: ``training_step`` returned ``None``) makes
          the step a no-op, as in SGD; with gradients it raises ``ValueError``.

        A non-finite recorded loss makes the mean non-finite, so the step follows
        ``nonfinite_loss`` like a non-finite ``loss=``: ``"skip"`` counts the step as
        one non-finite loss and leaves it out of the average, ``"raise"`` raises at the
        step (one host read per step, none per record) and keeps the recorded losses.
        A step that ``GradScaler`` skips never reaches LCAM, so its recorded losses stay
        and join the next step's mean. :meth:`state_dict` saves recorded losses that no
        step has used yet.
        """
        value = self._loss_tensor(loss, "LCAM.record_loss", "one micro-batch")
        value = value.to(dtype=self._running_loss.state.dtype)
        if self._recorded_sum is None:
            self._recorded_sum = value.clone()
        else:
            self._recorded_sum = self._recorded_sum.to(value.device) + value
        self._recorded_count += 1

    def _clear_recorded(self) -> None:
        self._recorded_sum = None
        self._recorded_count = 0

    # ------------------------------------------------------------------------ step
    def _loss_tensor(self, loss: Any, who: str = "LCAM.step", of: str = "this step") -> Tensor:
        device = self._running_loss.device
        if isinstance(loss, Tensor):
            if loss.numel() != 1:
                raise ValueError(
                    f"{who} needs the scalar loss of {of}, got a tensor of shape "
                    f"{tuple(loss.shape)}: pass the value you called backward() on "
                    "(e.g. loss.mean())"
                )
            if loss.is_complex():
                raise ValueError(f"{who} needs a real-valued loss, got a complex tensor")
            return loss.detach().reshape(()).to(device=device, non_blocking=True)
        if isinstance(loss, (int, float)) and not isinstance(loss, bool):
            return torch.tensor(float(loss), dtype=torch.float64, device=device)
        raise TypeError(
            f"{who} needs the loss as a tensor or a number, got {type(loss).__name__}"
        )

    def _collect(
        self, group_index: int, group: dict[str, Any]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor | None]]:
        params, grads, bufs = [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise ValueError(
                    f"LCAM does not support sparse gradients (a parameter of shape "
                    f"{tuple(p.shape)} in param group {group_index} has one); use dense "
                    "gradients, e.g. nn.Embedding(..., sparse=False)"
                )
            params.append(p)
            grads.append(p.grad)
            bufs.append(self.state[p].get("momentum_buffer"))
        return params, grads, bufs

    def _implementation(self, group: dict[str, Any], params: list[Tensor]) -> str:
        compiling = torch.compiler.is_compiling()
        if group["fused"]:
            if compiling:
                raise RuntimeError(
                    "LCAM(fused=True) cannot be traced by torch.compile (torch's fused SGD "
                    "kernel has no compile support); use the default or foreach=True inside "
                    "compiled code"
                )
            return "fused"
        if group["foreach"] is True:
            return "foreach"
        if group["foreach"] is False:
            return "forloop"
        if compiling:  # the multi-tensor ops are what inductor fuses
            return "foreach"
        if all(p.device.type in _FUSED_DEVICES and torch.is_floating_point(p) for p in params):
            return "fused"
        if all(p.device.type in _FOREACH_DEVICES for p in params):
            return "foreach"
        return "forloop"

    def _reduce_across_ranks(self, loss: Tensor) -> Tensor:
        if not (self.all_reduce_loss and dist.is_available() and dist.is_initialized()):
            return loss
        world = dist.get_world_size()
        if world == 1:
            return loss
        total = loss.to(torch.float64 if loss.device.type != "mps" else torch.float32).clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / world

    @torch.no_grad()
    def step(  # type: ignore[override]
        self,
        closure: Callable[[], Any] | None = None,
        *,
        loss: Tensor | float | None = None,
    ) -> Any:
        """One LCAM step: ``step(loss=loss)``, ``step(closure)``, or ``step()`` after
        :meth:`record_loss` (which also states the precedence between them).

        Returns the closure's return value, ``loss``, or (recorded losses and no
        closure) their mean as a 0-dim float64 tensor. Never modifies ``.grad`` and,
        unless ``nonfinite_loss="raise"``, never reads the device.
        """
        if closure is not None and loss is not None:
            raise ValueError("pass either a closure or loss=..., not both")
        if loss is not None and self._recorded_count:
            raise ValueError(
                f"LCAM.step got loss=... but {self._recorded_count} loss(es) were recorded "
                "with record_loss() since the previous step; nothing was changed. Hand the "
                "loss over one way per step: record_loss() for every micro-batch and step() "
                "without a loss, or step(loss=...) and no record_loss()"
            )
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
            if loss is None and not self._recorded_count:
                if all(p.grad is None for g in self.param_groups for p in g["params"]):
                    return None  # a skipped batch (e.g. Lightning's training_step -> None)
                raise ValueError(
                    "the closure returned None: it must return the loss (or record it "
                    "with opt.record_loss(loss) before the step)"
                )
        returned = loss
        recorded = self._recorded_count
        if recorded:
            assert self._recorded_sum is not None
            loss_value = self._recorded_sum / recorded
            if closure is None:
                returned = loss_value
        elif loss is None:
            raise TypeError(
                "LCAM.step needs this step's loss to choose the momentum: call "
                "opt.step(loss=loss) after loss.backward(), opt.step(closure), or "
                "opt.record_loss(loss) for each micro-batch before opt.step()"
            )
        else:
            loss_value = self._loss_tensor(loss)
        batches = [self._collect(i, g) for i, g in enumerate(self.param_groups)]
        first_param = next((b[0][0] for b in batches if b[0]), None)
        if first_param is not None and first_param.device != self._running_loss.device:
            self._running_loss.to(first_param.device)
            loss_value = loss_value.to(first_param.device)
        loss_value = self._reduce_across_ranks(loss_value)
        if self.nonfinite_loss == "raise" and not bool(torch.isfinite(loss_value)):
            source = f" (the mean of {recorded} recorded losses)" if recorded else ""
            raise ValueError(
                f"non-finite loss {float(loss_value)}{source} passed to LCAM.step "
                "(nonfinite_loss='raise'); nothing was changed. Lower the lr, use gradient "
                "clipping, or pass nonfinite_loss='skip' to leave such losses out of the "
                "average"
            )

        use_above = self._running_loss.update(loss_value)
        self._clear_recorded()
        for group, (params, grads, bufs) in zip(self.param_groups, batches, strict=True):
            if not params:
                continue
            hp = GroupHyperparameters(
                lr=group["lr"],
                momentum_above=group["momentum_above"],
                momentum_below=group["momentum_below"],
                weight_decay=group["weight_decay"],
                dampening=group["dampening"],
                nesterov=group["nesterov"],
                maximize=group["maximize"],
            )
            lcam_update(params, grads, bufs, use_above, hp, self._implementation(group, params))
            if hp.uses_momentum:
                for p, buf in zip(params, bufs, strict=True):
                    self.state[p]["momentum_buffer"] = cast(Tensor, buf)
        return returned
