"""The LCAM update kernels: one momentum-SGD step whose momentum is picked on the device.

All three implementations apply, for every parameter ``p`` with gradient ``g``::

    d  = -g if maximize else g
    d  = d + weight_decay * p
    m  = momentum_above if use_above else momentum_below      # use_above: 0-dim bool tensor
    buf = d                          on the first step (no buffer yet)
    buf = m * buf + (1 - tau) * d    afterwards, tau = 0 if m == 0 else dampening
    u  = d + m * buf if nesterov else buf
    p  = p - lr * u

With ``momentum_above == momentum_below`` this is exactly ``torch.optim.SGD``. A step
whose momentum is 0 is exactly plain SGD (``u = d``, dampening ignored, as in SGD) and
restarts the buffer from ``d``. When both momenta are 0 no buffer is kept at all, like
SGD with ``momentum=0``.

Implementations and why they exist:

``fused`` (the default wherever torch has the fused SGD kernel: CPU, CUDA, MPS, XPU)
    Calls ``torch._fused_sgd_`` -- the kernel behind ``SGD(fused=True)`` -- once per
    momentum side, each call masked with the kernel's own ``found_inf`` argument: the
    call for the side that was not chosen sees ``found_inf == 1`` and returns without
    touching memory. The choice therefore never leaves the device (no host sync on
    CUDA), the arithmetic is bit for bit that of ``SGD(fused=True)``, and the memory
    traffic is that of one fused pass (read p, g, buf; write p, buf): the measured
    step time on CPU is within a few percent of ``SGD(fused=True)``
    (``benchmarks/step_overhead.py``). A zero-momentum side is run as the kernel's
    "first step" (``buf = d; p -= lr * buf``), which is exactly the plain-SGD update.
``foreach`` (``foreach=True``)
    ``torch._foreach_*`` ops with the momentum as a 0-dim tensor of the parameters'
    compute dtype; bit for bit ``SGD(foreach=True)`` on CPU in float32/float64.
    Sync-free on every device. Costs extra passes over memory (the 0-dim-tensor
    multiply is a separate op).
``forloop`` (``foreach=False``)
    One tensor at a time with the same tensor momentum; bit for bit
    ``SGD(foreach=False)``. Used for sparse-free fallbacks and readability.

``torch._fused_sgd_`` is private: a torch release may drop it, change its arguments or
their meaning (``found_inf``, ``is_first_step``). So before the fused path first runs on
a (device, dtype), a one-time probe (:func:`fused_kernel_status`) runs it and the foreach
path on a few tiny tensors whose every intermediate value is exact in every floating
dtype, through each way the fused path calls it (two masked sides, a zero side, one
momentum, none; weight decay, dampening, Nesterov, maximize, a tensor lr), and compares
the results bit for bit. If the kernel is missing, raises, or computes anything else,
that (device, dtype) uses the foreach path from then on -- bit for bit
``LCAM(foreach=True)`` -- and one ``RuntimeWarning`` says so. The verdict is cached per
process: afterwards the fused path costs one dictionary lookup per step and device/dtype.

No function here reads a tensor value on the host, except a tensor ``lr`` on the
for-loop/foreach paths, where torch's SGD does the same.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["GroupHyperparameters", "lcam_update", "IMPLEMENTATIONS", "fused_kernel_status"]

IMPLEMENTATIONS = ("fused", "foreach", "forloop")


@dataclass(frozen=True)
class GroupHyperparameters:
    """The per-group settings one update needs (read from a param group)."""

    lr: float | Tensor
    momentum_above: float
    momentum_below: float
    weight_decay: float
    dampening: float
    nesterov: bool
    maximize: bool

    @property
    def uses_momentum(self) -> bool:
        return self.momentum_above != 0.0 or self.momentum_below != 0.0

    @property
    def single_momentum(self) -> bool:
        return self.momentum_above == self.momentum_below


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype torch's optimizers compute scalars in for parameters of ``dtype``."""
    return torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32


def _group_by_device_and_dtype(
    params: Sequence[Tensor],
) -> dict[tuple[torch.device, torch.dtype], list[int]]:
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
    for i, p in enumerate(params):
        groups[(p.device, p.dtype)].append(i)
    return groups


def _side_value(
    use_above: Tensor, above: float, below: float, dtype: torch.dtype
) -> Tensor:
    """0-dim tensor ``above if use_above else below`` made on the device (no copies)."""
    device = use_above.device
    return torch.where(
        use_above,
        torch.full((), above, dtype=dtype, device=device),
        torch.full((), below, dtype=dtype, device=device),
    )


def lcam_update(
    params: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor | None],
    use_above: Tensor,
    hp: GroupHyperparameters,
    implementation: str,
) -> None:
    """Apply one LCAM step in place. ``bufs`` entries that are None get created here."""
    if not params:
        return
    if implementation == "fused":
        _fused_update(params, grads, bufs, use_above, hp)
    elif implementation == "foreach":
        _foreach_update(params, grads, bufs, use_above, hp)
    elif implementation == "forloop":
        _forloop_update(params, grads, bufs, use_above, hp)
    else:  # pragma: no cover - guarded by the optimizer
        raise ValueError(f"unknown implementation {implementation!r}")


# --------------------------------------------------------------------------- fused
def _fused_call(
    params: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor],
    hp: GroupHyperparameters,
    *,
    momentum: float,
    nesterov: bool,
    first_step: bool,
    skip: Tensor | None,
) -> None:
    lr = hp.lr
    if isinstance(lr, Tensor) and lr.device != params[0].device:
        lr = lr.to(params[0].device)
    torch._fused_sgd_(
        params,
        grads,
        bufs,
        weight_decay=hp.weight_decay,
        momentum=momentum,
        lr=lr,  # type: ignore[arg-type]  # the kernel has a tensor-lr overload
        dampening=hp.dampening,
        nesterov=nesterov,
        maximize=hp.maximize,
        is_first_step=first_step,
        grad_scale=None,
        found_inf=skip,
    )


# ------------------------------------------------------------- fused-kernel probe
# (device, dtype) -> "" when torch._fused_sgd_ passed the probe there, else why not.
_FUSED_PROBES: dict[tuple[torch.device, torch.dtype], str] = {}

# The probe's cases: every way _fused_update_group calls the kernel. Every step starts
# from the same parameters and buffers, and the values are dyadic with few significant
# bits, so each intermediate is exact even in bfloat16: any correct kernel agrees with
# the foreach path bit for bit.
_PROBE_CASES = (
    # two masked sides (found_inf), weight decay, dampening, maximize
    dict(lr=0.5, momentum_above=0.5, momentum_below=0.25, weight_decay=0.5,
         dampening=0.5, nesterov=False, maximize=True),
    # Nesterov, a tensor lr (the kernel's tensor_lr overload)
    dict(lr="tensor", momentum_above=0.5, momentum_below=0.25, weight_decay=0.0,
         dampening=0.0, nesterov=True, maximize=False),
    # a zero side: the kernel's first step as plain SGD
    dict(lr=0.5, momentum_above=0.0, momentum_below=0.5, weight_decay=0.5,
         dampening=0.5, nesterov=False, maximize=False),
    # one momentum (no mask), Nesterov
    dict(lr=0.5, momentum_above=0.5, momentum_below=0.5, weight_decay=0.0,
         dampening=0.0, nesterov=True, maximize=False),
    # no momentum at all (no buffers)
    dict(lr=0.5, momentum_above=0.0, momentum_below=0.0, weight_decay=0.5,
         dampening=0.0, nesterov=False, maximize=True),
)
_PROBE_PARAMS = ((1.0, -0.5, 0.5, 0.0), (0.25, -1.0), (-1.0, 0.5, 1.0))
_PROBE_GRADS = ((0.5, 0.25, -1.0, 0.125), (-0.5, 1.0), (0.25, -0.25, 0.5))
_PROBE_BUFS = ((0.5, -1.0, 0.25, 1.0), (1.0, 0.5), (-0.5, 0.25, 1.0))
_PROBE_SIDES = (True, False, True)  # use_above per step; the third tensor joins at step 2


def _probe_run(fused: bool, device: torch.device, dtype: torch.dtype,
               case: dict) -> list[Tensor]:
    """Three steps of one path on tiny tensors; the parameters and buffers after each."""
    lr: float | Tensor = case["lr"]
    if lr == "tensor":
        lr = torch.tensor(0.25, device=device)
    hp = GroupHyperparameters(**{**case, "lr": lr})

    def make(values: tuple[tuple[float, ...], ...]) -> list[Tensor]:
        return [torch.tensor(v, dtype=dtype, device=device) for v in values]

    params, grads, start = make(_PROBE_PARAMS), make(_PROBE_GRADS), make(_PROBE_PARAMS)
    buf_start = make(_PROBE_BUFS)
    bufs: list[Tensor | None] = [None] * len(params)
    seen: list[Tensor] = []
    for step, side in enumerate(_PROBE_SIDES):
        n = len(params) if step else len(params) - 1
        use_above = torch.tensor(side, device=device)
        sub_bufs = bufs[:n]
        if fused:
            _fused_update_group(params[:n], grads[:n], sub_bufs, list(range(n)), device,
                                use_above, hp)
        else:
            _foreach_update(params[:n], grads[:n], sub_bufs, use_above, hp)
        bufs[:n] = sub_bufs
        seen += [t.clone() for t in params + bufs if t is not None]
        for p, p0 in zip(params, start, strict=True):
            p.copy_(p0)
        for b, b0 in zip(bufs, buf_start, strict=True):
            if b is not None:
                b.copy_(b0)
    return seen


def fused_kernel_status(device: torch.device, dtype: torch.dtype) -> str:
    """Probe ``torch._fused_sgd_`` on ``device``/``dtype`` once; "" when it is usable.

    Otherwise returns why not, after one ``RuntimeWarning``; the verdict is cached, so
    later calls (and steps) cost a dictionary lookup.
    """
    key = (torch.device(device), dtype)
    if key in _FUSED_PROBES:
        return _FUSED_PROBES[key]
    failure = ""
    try:
        with torch.no_grad():
            for case in _PROBE_CASES:
                expected = _probe_run(False, key[0], dtype, case)
                got = _probe_run(True, key[0], dtype, case)
                if len(got) != len(expected) or not all(
                    g.dtype == e.dtype and torch.equal(g, e)
                    for g, e in zip(got, expected, strict=True)
                ):
                    failure = f"it computed something else than the foreach path ({case})"
                    break
    except Exception as exc:  # missing, another signature, unsupported device/dtype
        message = str(exc).strip().splitlines()
        failure = f"{type(exc).__name__}: {message[0][:200] if message else ''}".rstrip(": ")
    _FUSED_PROBES[key] = failure
    if failure:
        warnings.warn(
            f"lcam: torch {torch.__version__}'s torch._fused_sgd_ failed LCAM's probe on "
            f"{key[0]} / {dtype} ({failure}); LCAM uses its foreach implementation there "
            "instead (bit for bit LCAM(foreach=True), somewhat slower)",
            RuntimeWarning,
            stacklevel=2,
        )
    return failure


def _fused_update(
    params: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor | None],
    use_above: Tensor,
    hp: GroupHyperparameters,
) -> None:
    for (device, dtype), idx in _group_by_device_and_dtype(params).items():
        failure = _FUSED_PROBES.get((device, dtype))
        if failure is None:  # first use on this device and dtype
            failure = fused_kernel_status(device, dtype)
        if failure:  # the kernel failed its probe here: the foreach path, bit for bit
            sub_bufs = [bufs[i] for i in idx]
            _foreach_update([params[i] for i in idx], [grads[i] for i in idx], sub_bufs,
                            use_above, hp)
            for i, buf in zip(idx, sub_bufs, strict=True):
                bufs[i] = buf
            continue
        _fused_update_group(params, grads, bufs, idx, device, use_above, hp)


def _fused_update_group(
    params: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor | None],
    idx: list[int],
    device: torch.device,
    use_above: Tensor,
    hp: GroupHyperparameters,
) -> None:
    """The fused update of the tensors ``idx`` (one device and dtype), no probe."""
    dev_params = [params[i] for i in idx]
    dev_grads = [grads[i] for i in idx]
    if not hp.uses_momentum:
        _fused_call(
            dev_params, dev_grads, [], hp,
            momentum=0.0, nesterov=False, first_step=False, skip=None,
        )
        return
    # The kernel's "first step" (buffer := gradient) is all-or-nothing per call:
    # split tensors that already have a buffer from those that do not.
    for first_step in (False, True):
        sub = [i for i in idx if (bufs[i] is None) == first_step]
        if not sub:
            continue
        if first_step:
            for i in sub:
                bufs[i] = torch.empty_like(grads[i], memory_format=torch.preserve_format)
        sub_params = [params[i] for i in sub]
        sub_grads = [grads[i] for i in sub]
        sub_bufs: list[Tensor] = [bufs[i] for i in sub]  # type: ignore[misc]
        if hp.single_momentum:
            _fused_side(sub_params, sub_grads, sub_bufs, hp, hp.momentum_above,
                        hp.momentum_below, first_step, skip=None)
            continue
        # found_inf == 1 makes the kernel return untouched: one mask per side.
        chose_above = use_above.to(device=device, dtype=torch.float32)
        _fused_side(sub_params, sub_grads, sub_bufs, hp, hp.momentum_above,
                    hp.momentum_below, first_step, skip=1.0 - chose_above)
        _fused_side(sub_params, sub_grads, sub_bufs, hp, hp.momentum_below,
                    hp.momentum_above, first_step, skip=chose_above)


def _fused_side(
    params: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor],
    hp: GroupHyperparameters,
    momentum: float,
    other_momentum: float,
    first_step: bool,
    skip: Tensor | None,
) -> None:
    if momentum == 0.0:
        # Plain SGD for this step, buffer restarted from the gradient: exactly the
        # kernel's first step (buf = d; p -= lr * buf), whose momentum value is unused
        # without Nesterov (Nesterov with a zero side is rejected at construction).
        _fused_call(params, grads, bufs, hp, momentum=other_momentum, nesterov=False,
                    first_step=True, skip=skip)
    else:
        _fused_call(params, grads, bufs, hp, momentum=momentum, nesterov=hp.nesterov,
                    first_step=first_step, skip=skip)


# ------------------------------------------------------------------------- foreach
def _scalar_lr(lr: float | Tensor) -> float:
    # Same as torch's SGD on the for-loop path: alpha= needs a number.
    return lr.item() if isinstance(lr, Tensor) else lr


def _apply_lr(params: list[Tensor], updates: list[Tensor], lr: float | Tensor) -> None:
    """``p -= lr * u`` for a list; a tensor lr off the CPU stays on the device."""
    if isinstance(lr, Tensor) and lr.device.type != "cpu":
        torch._foreach_add_(params, torch._foreach_mul(updates, -lr.to(params[0].device)))
    else:
        torch._foreach_add_(params, updates, alpha=-_scalar_lr(lr))


def _dampening_factor(
    use_above: Tensor, hp: GroupHyperparameters, dtype: torch.dtype
) -> float | Tensor:
    """``1 - tau`` of the recurrence: a number unless a zero side makes it data-dependent."""
    if hp.dampening == 0.0:
        return 1.0
    if hp.momentum_above != 0.0 and hp.momentum_below != 0.0:
        return 1.0 - hp.dampening
    above = 1.0 if hp.momentum_above == 0.0 else 1.0 - hp.dampening
    below = 1.0 if hp.momentum_below == 0.0 else 1.0 - hp.dampening
    return _side_value(use_above, above, below, dtype)


def _foreach_update(
    params: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor | None],
    use_above: Tensor,
    hp: GroupHyperparameters,
) -> None:
    for (device, dtype), idx in _group_by_device_and_dtype(params).items():
        dev_params = [params[i] for i in idx]
        d: list[Tensor] = [grads[i] for i in idx]
        if hp.maximize:
            d = list(torch._foreach_neg(d))
        if hp.weight_decay != 0.0:
            if hp.maximize:  # d is already a private copy
                torch._foreach_add_(d, dev_params, alpha=hp.weight_decay)
            else:
                d = list(torch._foreach_add(d, dev_params, alpha=hp.weight_decay))

        if hp.uses_momentum:
            cdtype = _compute_dtype(dtype)
            m = _side_value(use_above.to(device), hp.momentum_above, hp.momentum_below, cdtype)
            damp = _dampening_factor(use_above.to(device), hp, cdtype)
            dev_bufs: list[Tensor] = []
            if all(bufs[i] is not None for i in idx):
                dev_bufs = [bufs[i] for i in idx]  # type: ignore[misc]
                torch._foreach_mul_(dev_bufs, m)
                if isinstance(damp, Tensor):
                    torch._foreach_add_(dev_bufs, torch._foreach_mul(d, damp))
                else:
                    torch._foreach_add_(dev_bufs, d, alpha=damp)
            else:
                for k, i in enumerate(idx):
                    buf = bufs[i]
                    if buf is None:
                        buf = bufs[i] = d[k].detach().clone()
                    else:
                        _momentum_recurrence(buf, d[k], m, damp)
                    dev_bufs.append(buf)
            if hp.nesterov:
                # addcmul with a 0-dim m rounds exactly like add(alpha=m); never in
                # place, so .grad is never modified.
                d = [torch.addcmul(dk, bk, m) for dk, bk in zip(d, dev_bufs, strict=True)]
            else:
                d = dev_bufs
        _apply_lr(dev_params, d, hp.lr)


# ------------------------------------------------------------------------- forloop
def _momentum_recurrence(buf: Tensor, d: Tensor, m: Tensor, damp: float | Tensor) -> None:
    buf.mul_(m)
    if isinstance(damp, Tensor):
        buf.add_(d * damp)
    else:
        buf.add_(d, alpha=damp)


def _forloop_update(
    params: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor | None],
    use_above: Tensor,
    hp: GroupHyperparameters,
) -> None:
    lr = hp.lr
    side: dict[tuple[torch.device, torch.dtype], tuple[Tensor, float | Tensor]] = {}
    for i, p in enumerate(params):
        d = grads[i] if not hp.maximize else -grads[i]
        if hp.weight_decay != 0.0:
            d = d.add(p, alpha=hp.weight_decay)
        if hp.uses_momentum:
            key = (p.device, p.dtype)
            if key not in side:
                cdtype = _compute_dtype(p.dtype)
                ua = use_above.to(p.device)
                side[key] = (
                    _side_value(ua, hp.momentum_above, hp.momentum_below, cdtype),
                    _dampening_factor(ua, hp, cdtype),
                )
            m, damp = side[key]
            buf = bufs[i]
            if buf is None:
                buf = bufs[i] = d.detach().clone()
            else:
                _momentum_recurrence(buf, d, m, damp)
            d = torch.addcmul(d, buf, m) if hp.nesterov else buf
        if isinstance(lr, Tensor) and lr.device.type != "cpu":
            p.addcmul_(d, lr.to(p.device), value=-1)  # stays on the device
        else:
            p.add_(d, alpha=-_scalar_lr(lr))
