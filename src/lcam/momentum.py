"""Momentum arithmetic used with LCAM: balanced pairs and matched controls.

The effective step of heavy-ball momentum SGD scales with ``1 / (1 - m)``: at a fixed
gradient, the update converges to ``lr * g / (1 - m)``. Two rules follow.

* :func:`balanced_momentum` -- the paper's balanced pair (used for ViT and Table 1):
  keep the *geometric* mean of ``1 - m`` equal to the base, ``(1 - base)^2 =
  (1 - high)(1 - low)``; 0.93 pairs with about 0.857 for base 0.9.
* :func:`matched_momentum` -- the control group of the harness: the fixed momentum
  whose effective step ``1 / (1 - m)`` equals the LCAM group's *average* effective
  step, ``f / (1 - m_above) + (1 - f) / (1 - m_below)``, where ``f`` is the fraction of
  steps that use ``momentum_above``. A gain of LCAM over this control cannot come from
  a larger average step alone.
"""

from __future__ import annotations

__all__ = ["balanced_momentum", "matched_momentum"]


def _check_momentum(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"Invalid {name} value: {value} (must be in [0, 1))")


def balanced_momentum(base: float = 0.9, high: float = 0.93) -> float:
    """Return ``low`` such that ``(1 - base)**2 == (1 - high) * (1 - low)``.

    >>> round(balanced_momentum(0.9, 0.93), 4)
    0.8571
    """
    _check_momentum("base", base)
    _check_momentum("high", high)
    low = 1.0 - (1.0 - base) ** 2 / (1.0 - high)
    if not 0.0 <= low < 1.0:
        raise ValueError(
            f"no momentum in [0, 1) balances high={high} around base={base} "
            f"(it would be {low:.6g}); choose high closer to base"
        )
    return low


def matched_momentum(
    momentum_above: float, momentum_below: float, fraction_above: float = 0.5
) -> float:
    """Fixed momentum with the same average effective step as an LCAM pair.

    ``1 / (1 - m) = f / (1 - momentum_above) + (1 - f) / (1 - momentum_below)``.

    >>> round(matched_momentum(0.9, 0.95), 4)   # effective steps 10 and 20 -> 15
    0.9333
    """
    _check_momentum("momentum_above", momentum_above)
    _check_momentum("momentum_below", momentum_below)
    if not 0.0 <= fraction_above <= 1.0:
        raise ValueError(f"Invalid fraction_above value: {fraction_above} (must be in [0, 1])")
    effective = fraction_above / (1.0 - momentum_above) + (1.0 - fraction_above) / (
        1.0 - momentum_below
    )
    return 1.0 - 1.0 / effective
