r"""LCAM as optax gradient transformations.

``scale_by_lcam`` keeps the momentum trace and the loss statistics; ``lcam`` chains it
with torch-style weight decay and the learning rate. The arithmetic follows the PyTorch
optimizer ``lcam.LCAM`` step for step::

    d   = g + weight_decay * p                       (lcam only)
    m   = momentum_above if use_above else momentum_below
    buf = d                           on the first step
    buf = m * buf + (1 - tau) * d     afterwards, tau = 0 if m == 0 else dampening
    u   = d + m * buf if nesterov else buf
    p   = p - learning_rate * u

A step whose momentum is 0 is a plain SGD step (``u = d``) and restarts the buffer
from ``d``; with both momenta 0 no buffer is kept.

The decision ``use_above`` compares the step's loss (``value=``) with its running
average: ``decision="current"`` (eq. 9 of the paper) compares this step's loss with the
average that includes it, ties going to ``momentum_below``; ``decision="lagged"`` (the
authors' demo scripts) uses the comparison made after the previous step, ties going to
``momentum_above``, and the last decision of a window carries into the next one.
``loss_average="epoch"`` is the mean of the window's finite losses, restarted by
:func:`end_epoch`; ``"ema"`` is an exponential moving average that is never restarted.
A non-finite loss is left out of the average and counted; the step counts as above
the average (``"lagged"``: the pending decision is kept).

Everything the decision needs is an array in :class:`ScaleByLCAMState` and the choice
is made with ``jnp.where``: ``update`` traces once under ``jax.jit`` and runs under
``jax.vmap``, ``jax.pmap`` and ``shard_map`` whatever the decisions turn out to be.
The loss statistics are kept in float64 when ``jax_enable_x64`` is on (as the PyTorch
optimizer keeps them), otherwise in float32.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

__all__ = [
    "DECISIONS",
    "LOSS_AVERAGES",
    "ScaleByLCAMState",
    "end_epoch",
    "lcam",
    "lcam_state",
    "scale_by_lcam",
]

DECISIONS = ("current", "lagged")
"""The values of ``decision=``: ``"current"`` (step *t*'s own loss against the average
that includes it, eq. 9 of the paper) and ``"lagged"`` (step *t-1*'s loss, as the
authors' demo scripts ran)."""
LOSS_AVERAGES = ("epoch", "ema")
"""The values of ``loss_average=``: ``"epoch"`` (the mean of the window's losses,
restarted by :func:`end_epoch`) and ``"ema"`` (an exponential moving average, never
restarted)."""


class ScaleByLCAMState(NamedTuple):
    """State of :func:`scale_by_lcam`: the momentum trace and the loss statistics.

    Every field is an array (scalars have shape ``()``, or a leading batch axis under
    ``jax.vmap``). The window fields are restarted by :func:`end_epoch`.
    """

    trace: optax.Updates
    """Momentum buffers, shaped like the params (``()`` when both momenta are 0)."""
    loss_sum: jax.Array
    """Sum of this window's finite losses (window)."""
    finite_losses: jax.Array
    """Number of finite losses in this window (int32, window)."""
    loss_ema: jax.Array
    """Exponential moving average of the finite losses (never restarted)."""
    ema_started: jax.Array
    """True once ``loss_ema`` holds a loss (bool)."""
    steps_above: jax.Array
    """Steps of this window that used ``momentum_above`` (int32, window)."""
    steps_below: jax.Array
    """Steps of this window that used ``momentum_below`` (int32, window)."""
    nonfinite_losses: jax.Array
    """Non-finite losses seen in this window (int32, window)."""
    pending_above: jax.Array
    """``"lagged"``: True when the next step uses ``momentum_above`` (bool)."""
    last_above: jax.Array
    """True when the latest step used ``momentum_above`` (bool)."""
    total_steps: jax.Array
    """Steps since ``init`` (int32, never restarted)."""


# The fields end_epoch restarts (the PyTorch optimizer's end_epoch restarts the same).
_WINDOW_FIELDS = ("loss_sum", "finite_losses", "steps_above", "steps_below", "nonfinite_losses")


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _static_number(name: str, value: object) -> float | None:
    """``value`` as a float if it is a number or a concrete 1-element real array."""
    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    if (isinstance(value, (jax.Array, np.ndarray)) and value.size == 1
            and (jnp.issubdtype(value.dtype, jnp.floating)
                 or jnp.issubdtype(value.dtype, jnp.integer))):
        try:
            return float(value.reshape(()))
        except jax.errors.ConcretizationTypeError:
            raise TypeError(
                f"{name} is a traced array; it decides the structure of the update and "
                "must be a number known when the optimizer is built (with "
                f"optax.inject_hyperparams, list {name!r} in static_args)"
            ) from None
    return None


def _check_fraction(name: str, value: object, *, closed_high: bool = False) -> float:
    """Validate ``value`` in [0, 1) (or [0, 1]) with lcam.LCAM's message; return it."""
    bounds = "[0, 1]" if closed_high else "[0, 1)"
    number = _static_number(name, value)
    if number is None:
        raise TypeError(f"Invalid {name} value: {value!r} (must be a number in {bounds})")
    ok = 0.0 <= number <= 1.0 if closed_high else 0.0 <= number < 1.0
    if not ok or math.isnan(number):
        raise ValueError(f"Invalid {name} value: {value} (must be in {bounds})")
    return number


def _check_options(
    momentum_above: object,
    momentum_below: object,
    dampening: object,
    nesterov: bool,
    decision: object,
    loss_average: object,
    ema_decay: object,
) -> tuple[float, float, float, float]:
    above = _check_fraction("momentum_above", momentum_above)
    below = _check_fraction("momentum_below", momentum_below)
    damp = _check_fraction("dampening", dampening, closed_high=True)
    decay = _check_fraction("ema_decay", ema_decay)
    if decision not in DECISIONS:
        raise ValueError(f"Invalid decision: {decision!r} (must be one of {DECISIONS})")
    if loss_average not in LOSS_AVERAGES:
        raise ValueError(
            f"Invalid loss_average: {loss_average!r} (must be one of {LOSS_AVERAGES})"
        )
    if nesterov and (above <= 0.0 or below <= 0.0 or damp != 0.0):
        raise ValueError(
            "Nesterov momentum requires momentum_above > 0, momentum_below > 0 and "
            f"dampening == 0 (got momentum_above={momentum_above}, "
            f"momentum_below={momentum_below}, dampening={dampening}); "
            "pass nesterov=False or change those values"
        )
    return above, below, damp, decay


def _statistics_dtype() -> Any:
    """float64 when ``jax_enable_x64`` is on, else float32."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _scalar_loss(value: Any, dtype: Any) -> jax.Array:
    loss = jnp.asarray(value)
    if loss.size != 1:
        raise ValueError(
            "scale_by_lcam's update needs the scalar loss of this step as value=..., got "
            f"an array of shape {tuple(loss.shape)}: pass the value you differentiated "
            "(e.g. loss.mean())"
        )
    if jnp.issubdtype(loss.dtype, jnp.complexfloating):
        raise ValueError("scale_by_lcam's update needs a real-valued loss, got a complex one")
    return loss.reshape(()).astype(dtype)


def scale_by_lcam(
    momentum_above: float,
    momentum_below: float,
    *,
    dampening: float = 0.0,
    nesterov: bool = False,
    decision: str = "current",
    loss_average: str = "epoch",
    ema_decay: float = 0.9,
    axis_name: Hashable | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""The LCAM momentum trace: momentum chosen each step by the loss.

    .. math::

        \mu_t = \begin{cases} \mu_{above} & \ell_t > \bar\ell_t \\
                              \mu_{below} & \ell_t \le \bar\ell_t \end{cases}
        \;(\text{"current"}),\qquad
        b_t = \mu_t b_{t-1} + (1-\tau) g_t \;(b_1 = g_1),\qquad
        u_t = \text{nesterov}\;?\;g_t + \mu_t b_t : b_t

    (``"lagged"`` uses the comparison of step t-1 for step t, ties going to
    :math:`\mu_{above}`.) With ``momentum_above == momentum_below`` this is
    ``optax.trace(decay=m, nesterov=...)`` (plus dampening, as in torch's SGD).

    Args:
        momentum_above: momentum while the loss is above its running average, in [0, 1).
        momentum_below: momentum while it is at or below it, in [0, 1).
        dampening: dampening of the trace, in [0, 1], as in torch's SGD (not applied on
            a step whose momentum is 0, nor on the first step).
        nesterov: Nesterov momentum (needs both momenta > 0 and no dampening).
        decision: ``"current"`` (eq. 9) or ``"lagged"`` (the authors' demo scripts).
        loss_average: ``"epoch"`` (mean of the window, restarted by :func:`end_epoch`)
            or ``"ema"`` (exponential moving average, never restarted).
        ema_decay: weight of the old average in ``"ema"`` mode, in [0, 1).
        axis_name: a mapped axis (``pmap``, ``shard_map``, ``vmap``) over which the loss
            is averaged (``lax.pmean``) before deciding, so that every device takes the
            same decision, as ``lcam.LCAM`` all-reduces the loss under DDP.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose
        ``update(updates, state, params=None, *, value)`` takes this step's loss as
        ``value`` (a scalar; other extra arguments of a chain are ignored).
    """
    above, below, damp, decay = _check_options(
        momentum_above, momentum_below, dampening, nesterov, decision, loss_average, ema_decay
    )
    uses_momentum = above != 0.0 or below != 0.0
    single = above == below
    zero_side = uses_momentum and (above == 0.0 or below == 0.0)
    new_weight = 1.0 - decay

    def init_fn(params: optax.Params) -> ScaleByLCAMState:
        stats = _statistics_dtype()
        # One array per field (never one shared zero): the state can then be donated.
        count = lambda: jnp.zeros((), jnp.int32)  # noqa: E731
        trace = optax.tree.zeros_like(params) if uses_momentum else ()
        return ScaleByLCAMState(
            trace=trace,
            loss_sum=jnp.zeros((), stats),
            finite_losses=count(),
            loss_ema=jnp.zeros((), stats),
            ema_started=jnp.zeros((), bool),
            steps_above=count(),
            steps_below=count(),
            nonfinite_losses=count(),
            pending_above=jnp.ones((), bool),  # before any loss: the tie side
            last_above=jnp.zeros((), bool),
            total_steps=count(),
        )

    def decide(value: Any, state: ScaleByLCAMState) -> tuple[jax.Array, ScaleByLCAMState]:
        loss = _scalar_loss(value, state.loss_sum.dtype)
        if axis_name is not None:
            loss = lax.pmean(loss, axis_name)
        finite = jnp.isfinite(loss)
        counted = jnp.where(finite, loss, jnp.zeros_like(loss))
        finite_i = finite.astype(jnp.int32)

        loss_sum = state.loss_sum + counted
        finite_losses = state.finite_losses + finite_i
        blended = state.loss_ema * decay + counted * new_weight
        loss_ema = jnp.where(
            finite, jnp.where(state.ema_started, blended, counted), state.loss_ema
        )
        ema_started = jnp.logical_or(state.ema_started, finite)
        if loss_average == "epoch":
            mean = loss_sum / jnp.maximum(finite_losses, 1).astype(loss_sum.dtype)
        else:
            mean = loss_ema

        if decision == "current":
            # eq. (9): strictly above -> above; ties -> below; non-finite -> above.
            use_above = jnp.logical_or(loss > mean, jnp.logical_not(finite))
            pending = state.pending_above
        else:
            # this step uses the previous step's decision; the next one uses "above"
            # unless this loss is strictly below the mean (a non-finite loss keeps it).
            use_above = state.pending_above
            pending = jnp.where(finite, jnp.logical_not(loss < mean), use_above)

        above_i = use_above.astype(jnp.int32)
        new_state = state._replace(
            loss_sum=loss_sum,
            finite_losses=finite_losses,
            loss_ema=loss_ema,
            ema_started=ema_started,
            steps_above=state.steps_above + above_i,
            steps_below=state.steps_below + (1 - above_i),
            nonfinite_losses=state.nonfinite_losses + (1 - finite_i),
            pending_above=pending,
            last_above=use_above,
            total_steps=state.total_steps + 1,
        )
        return use_above, new_state

    def momentum_of(use_above: jax.Array, dtype: Any) -> Any:
        if single:  # a Python number: the arithmetic of optax.trace
            return above
        return jnp.where(use_above, above, below).astype(dtype)

    def update_fn(
        updates: optax.Updates,
        state: ScaleByLCAMState,
        params: optax.Params | None = None,
        *,
        value: Any,
        **extra_args: Any,
    ) -> tuple[optax.Updates, ScaleByLCAMState]:
        # optax.chain hands every extra argument to every transformation that takes
        # them, so the ones meant for others must be accepted here and ignored.
        del params, extra_args
        use_above, new_state = decide(value, state)
        if not uses_momentum:
            return updates, new_state
        first = state.total_steps == 0
        zero_now = use_above if above == 0.0 else jnp.logical_not(use_above)

        def new_buffer(d: jax.Array | None, buf: jax.Array) -> jax.Array | None:
            if d is None:
                return None
            m = momentum_of(use_above, d.dtype)
            if damp == 0.0:
                new = d + m * buf  # optax.trace's order: g + decay * t
            else:
                new = jnp.where(first, d, m * buf + (1.0 - damp) * d)
            if zero_side:  # plain SGD step, buffer restarted (also from a non-finite one)
                new = jnp.where(zero_now, d, new)
            return new

        is_none = lambda x: x is None  # noqa: E731
        trace = jax.tree.map(new_buffer, updates, state.trace, is_leaf=is_none)
        if nesterov:
            updates = jax.tree.map(
                lambda d, b: None if d is None else d + momentum_of(use_above, d.dtype) * b,
                updates,
                trace,
                is_leaf=is_none,
            )
        else:
            updates = trace
        return updates, new_state._replace(trace=trace)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _check_learning_rate(learning_rate: object) -> None:
    if callable(learning_rate):
        return  # an optax schedule: step -> learning rate
    if _is_number(learning_rate):
        number = float(learning_rate)  # type: ignore[arg-type]
    elif isinstance(learning_rate, (jax.Array, np.ndarray)) and learning_rate.size == 1:
        try:
            number = float(learning_rate.reshape(()))
        except jax.errors.ConcretizationTypeError:
            return  # traced (e.g. under inject_hyperparams): cannot be checked here
    else:
        raise TypeError(
            f"Invalid learning_rate value: {learning_rate!r} (must be a number >= 0, a "
            "1-element array or an optax schedule)"
        )
    if not number >= 0.0:
        raise ValueError(f"Invalid learning_rate value: {number} (must be >= 0)")


def lcam(
    learning_rate: optax.ScalarOrSchedule,
    momentum_above: float,
    momentum_below: float,
    *,
    weight_decay: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    decision: str = "current",
    loss_average: str = "epoch",
    ema_decay: float = 0.9,
    axis_name: Hashable | None = None,
) -> optax.GradientTransformationExtraArgs:
    """LCAM, the full optimizer: ``lcam.LCAM``'s update as an optax chain.

    ``optax.chain(add_decayed_weights(weight_decay), scale_by_lcam(...),
    scale_by_learning_rate(learning_rate))``, the weight decay added to the gradient
    before the momentum as in torch's SGD (left out when it is 0, so ``params`` are then
    optional). With ``momentum_above == momentum_below == m`` it equals
    ``optax.sgd(learning_rate, momentum=m, nesterov=nesterov)`` (after
    ``optax.add_decayed_weights(weight_decay)``) bit for bit. ``momentum_above``,
    ``momentum_below``, ``dampening``, ``nesterov``, ``decision``, ``loss_average``,
    ``ema_decay`` and ``axis_name`` are those of :func:`scale_by_lcam`.

    Args:
        learning_rate: a number >= 0 or an optax schedule (step -> learning rate).
        weight_decay: L2 penalty added to the gradient, >= 0.

    Returns:
        An ``optax.GradientTransformationExtraArgs``; call
        ``update(grads, state, params, value=loss)`` every step and
        ``state = lcam_jax.end_epoch(state)`` at the end of every epoch.

    Example:
        >>> import jax.numpy as jnp, optax, lcam_jax
        >>> opt = lcam_jax.lcam(0.1, momentum_above=0.9, momentum_below=0.95)
        >>> params = {"w": jnp.ones(3)}
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.ones(3)}, state, params, value=1.0)
        >>> params = optax.apply_updates(params, updates)
        >>> state = lcam_jax.end_epoch(state)
    """
    _check_learning_rate(learning_rate)
    decay_rate = _static_number("weight_decay", weight_decay)
    if decay_rate is None or not decay_rate >= 0.0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay} (must be a number >= 0)")
    parts = []
    if decay_rate != 0.0:
        parts.append(optax.add_decayed_weights(decay_rate))
    parts.append(
        scale_by_lcam(
            momentum_above,
            momentum_below,
            dampening=dampening,
            nesterov=nesterov,
            decision=decision,
            loss_average=loss_average,
            ema_decay=ema_decay,
            axis_name=axis_name,
        )
    )
    parts.append(optax.scale_by_learning_rate(learning_rate))
    return optax.chain(*parts)


def _is_lcam_state(x: object) -> bool:
    return isinstance(x, ScaleByLCAMState)


def _no_state_error(state: object) -> ValueError:
    return ValueError(
        f"no ScaleByLCAMState found in the given {type(state).__name__}: pass the state "
        "made by lcam_jax.lcam(...).init or lcam_jax.scale_by_lcam(...).init, or a state "
        "that contains one (optax.chain, multi_transform, inject_hyperparams, ...)"
    )


def end_epoch(state: Any) -> Any:
    """Return ``state`` with a new averaging window (call it at the end of every epoch).

    Pure: the given state is not changed. ``state`` is the state of :func:`scale_by_lcam`
    or any optax state containing it (a chain's tuple, ``multi_transform``,
    ``inject_hyperparams``, ...): every :class:`ScaleByLCAMState` found by a tree map
    over it gets its window fields (``loss_sum``, ``finite_losses``, ``steps_above``,
    ``steps_below``, ``nonfinite_losses``) set to zero; the trace, the EMA, the pending
    ``"lagged"`` decision and ``total_steps`` carry over, as in ``lcam.LCAM.end_epoch``.
    Works on batched (vmapped) states and inside ``jax.jit``.

    Raises:
        ValueError: ``state`` contains no :class:`ScaleByLCAMState`.
    """
    found = 0

    def restart(x: Any) -> Any:
        nonlocal found
        if not _is_lcam_state(x):
            return x
        found += 1
        return x._replace(**{f: jnp.zeros_like(getattr(x, f)) for f in _WINDOW_FIELDS})

    new_state = jax.tree.map(restart, state, is_leaf=_is_lcam_state)
    if not found:
        raise _no_state_error(state)
    return new_state


def lcam_state(state: Any) -> ScaleByLCAMState:
    """The :class:`ScaleByLCAMState` inside an optax state (e.g. to read ``steps_above``).

    Raises:
        ValueError: ``state`` contains no LCAM state, or more than one.
    """
    found = [x for x in jax.tree.leaves(state, is_leaf=_is_lcam_state) if _is_lcam_state(x)]
    if not found:
        raise _no_state_error(state)
    if len(found) > 1:
        raise ValueError(
            f"the given state contains {len(found)} LCAM states; pick one yourself "
            "(e.g. from the multi_transform entry you want)"
        )
    return found[0]
