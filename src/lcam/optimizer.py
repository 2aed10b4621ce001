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
from .loss_statistics import DECISIONS, LOSS_AVERAGES, LossStatistics, RunningLoss

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
            :meth:`end_epoch`) or ``"ema"`` (exponential moving average, see
            ``ema_decay``; never restarted).
        ema_decay: weight of the old average in ``"ema"`` mode, in [0, 1).
        maximize: maximise the objective instead of minimising it.
        foreach: ``True`` selects the multi-tensor implementation, ``False`` the
            per-tensor one; ``None`` (default) picks the fused kernel where torch has it
            (CPU, CUDA, MPS, XPU) and floating-point parameters allow.
        fused: ``True`` forces the fused kernel (floating-point params on a supported
            device, checked at construction).
        all_reduce_loss: when ``torch.distributed`` is initialised, average the loss
            over all ranks (one all-reduce of a scalar) before deciding, so every rank
            takes the same decision. Turn off only if you reduce the loss yourself.
        nonfinite_loss: ``"skip"`` (default) leaves a NaN/inf loss out of the average,
            counts it and treats the step as above the average (``"lagged"``: keeps the
            pending decision); ``"raise"`` raises ``ValueError`` instead, before any
            state changes (this reads the loss on the host: one sync per step).

    Every step needs the loss: ``opt.step(loss=loss)`` or ``opt.step(closure)``.
    Pass the *unscaled* loss under ``torch.amp.GradScaler`` (``scaler.step(opt,
    loss=loss)``; a skipped step does not reach LCAM and leaves its state untouched),
    and the mean of the micro-batch losses with gradient accumulation.

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
    ) -> None:
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
        )
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

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_lcam"] = {
            "running_loss": self._running_loss,
            "all_reduce_loss": self.all_reduce_loss,
            "nonfinite_loss": self.nonfinite_loss,
        }
        return state

    # ------------------------------------------------------------------ state_dict
    def state_dict(self) -> dict[str, Any]:
        """Torch's state_dict plus ``"lcam"``: the loss statistics and global options."""
        state = super().state_dict()
        state["lcam"] = {
            **self._running_loss.state_dict(),
            "all_reduce_loss": self.all_reduce_loss,
            "nonfinite_loss": self.nonfinite_loss,
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict written by :meth:`state_dict`; nothing changes on error.

        A state_dict without the ``"lcam"`` entry (e.g. from ``torch.optim.SGD`` with
        the same groups) loads the momentum buffers and keeps fresh loss statistics.
        """
        saved = state_dict.get("lcam")
        if saved is not None:
            RunningLoss.check_state_dict(saved)
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

    # ---------------------------------------------------------------- observability
    def statistics(self) -> LossStatistics:
        """This window's steps above/below, non-finite losses and loss average.

        Reads one small tensor from the device (a host sync): call it once per epoch,
        before :meth:`end_epoch`, not inside the step loop.
        """
        return self._running_loss.snapshot()

    def end_epoch(self) -> None:
        """Start a new averaging window (the next epoch). No host synchronisation.

        In ``loss_average="epoch"`` mode the running mean restarts; in both modes the
        per-window counters of :meth:`statistics` restart. The pending ``"lagged"``
        decision carries over, as in the demo scripts.
        """
        self._running_loss.new_window()

    # ------------------------------------------------------------------------ step
    def _loss_tensor(self, loss: Any) -> Tensor:
        device = self._running_loss.device
        if isinstance(loss, Tensor):
            if loss.numel() != 1:
                raise ValueError(
                    "LCAM.step needs the scalar loss of this step, got a tensor of shape "
                    f"{tuple(loss.shape)}: pass the value you called backward() on "
                    "(e.g. loss.mean())"
                )
            if loss.is_complex():
                raise ValueError("LCAM.step needs a real-valued loss, got a complex tensor")
            return loss.detach().reshape(()).to(device=device, non_blocking=True)
        if isinstance(loss, (int, float)) and not isinstance(loss, bool):
            return torch.tensor(float(loss), dtype=torch.float64, device=device)
        raise TypeError(
            f"LCAM.step needs the loss as a tensor or a number, got {type(loss).__name__}"
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
        """One LCAM step. Give the loss of this step: ``step(loss=loss)`` or ``step(closure)``.

        Returns the loss (the closure's return value, or ``loss``). Never modifies
        ``.grad`` and, unless ``nonfinite_loss="raise"``, never reads the device.
        """
        if closure is not None and loss is not None:
            raise ValueError("pass either a closure or loss=..., not both")
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
            if loss is None:
                raise ValueError("the closure returned None: it must return the loss")
        if loss is None:
            raise TypeError(
                "LCAM.step needs this step's loss to choose the momentum: call "
                "opt.step(loss=loss) after loss.backward(), or opt.step(closure)"
            )
        loss_value = self._loss_tensor(loss)
        batches = [self._collect(i, g) for i, g in enumerate(self.param_groups)]
        first_param = next((b[0][0] for b in batches if b[0]), None)
        if first_param is not None and first_param.device != self._running_loss.device:
            self._running_loss.to(first_param.device)
            loss_value = loss_value.to(first_param.device)
        loss_value = self._reduce_across_ranks(loss_value)
        if self.nonfinite_loss == "raise" and not bool(torch.isfinite(loss_value)):
            raise ValueError(
                f"non-finite loss {float(loss_value)} passed to LCAM.step (nonfinite_loss="
                "'raise'); nothing was changed. Lower the lr, use gradient clipping, or "
                "pass nonfinite_loss='skip' to leave such losses out of the average"
            )

        use_above = self._running_loss.update(loss_value)
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
        return loss
