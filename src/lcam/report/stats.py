"""Statistics over seeds: mean ± sample std, Welch's t-test, epochs to a target.

Conventions (the same everywhere in the report):

- ``std`` is the *sample* standard deviation (``ddof=1``), like the ± over seeds in
  the paper's Table 1. With one seed there is no std (``None``); the report prints
  ``n=1``.
- Two groups are compared with Welch's unequal-variance t-test
  (``scipy.stats.ttest_ind(a, b, equal_var=False)``). The difference is
  ``mean(a) - mean(b)`` in percentage points of test error, so a negative difference
  means group ``a`` has the *lower* error. Its 95% confidence interval uses the
  Welch–Satterthwaite degrees of freedom.
- A difference is called real only when ``p < 0.05`` with at least two seeds on both
  sides. Otherwise it is *within noise* (``p >= 0.05``), *needs ≥2 seeds*, or *not
  testable* (every seed of both groups gave exactly the same value, or a run diverged
  to NaN/inf).
- Epochs to target: the first epoch (1-based count of finished epochs, i.e. epoch
  index + 1) at which a mean-over-seeds curve is at or below the target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

__all__ = [
    "ALPHA",
    "CONFIDENCE",
    "Comparison",
    "SampleStats",
    "describe",
    "epochs_to_target",
    "mean_curve",
    "welch",
]

ALPHA = 0.05
CONFIDENCE = 0.95

# Verdicts of `Comparison.verdict`.
LOWER = "lower"
HIGHER = "higher"
WITHIN_NOISE = "within noise"
NEEDS_SEEDS = "needs ≥2 seeds"
NOT_TESTABLE = "not testable (no spread over seeds)"
NOT_FINITE = "not testable (NaN or infinite values)"


@dataclass(frozen=True)
class SampleStats:
    """Mean and sample std (``ddof=1``) of one value per seed."""

    n: int
    mean: float
    std: float | None
    values: tuple[float, ...]


def describe(values: Sequence[float]) -> SampleStats:
    """Mean and sample standard deviation (``None`` when fewer than two values)."""
    if not values:
        raise ValueError("describe() needs at least one value")
    array = np.asarray(values, dtype=np.float64)
    std = float(np.std(array, ddof=1)) if array.size >= 2 else None
    return SampleStats(
        n=int(array.size), mean=float(np.mean(array)), std=std, values=tuple(map(float, values))
    )


@dataclass(frozen=True)
class Comparison:
    """Welch's t-test of one group (``a``) against another (``against``).

    ``difference`` = mean(a) - mean(against), in the units of the values (percentage
    points of test error). The test fields are ``None`` when either side has fewer than
    two seeds, or when neither side varies over seeds. ``significant`` is true iff the
    difference is beyond the seed noise (``p < ALPHA``, verdict ``lower``/``higher``).
    """

    against: str
    n: int
    n_against: int
    difference: float
    t_statistic: float | None
    df: float | None
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str
    significant: bool


def welch(a: Sequence[float], b: Sequence[float], *, against: str) -> Comparison:
    """Compare ``a`` with ``b`` (Welch's t-test, two-sided, plus the 95% CI of the
    difference of means with Welch–Satterthwaite degrees of freedom)."""
    if not a or not b:
        raise ValueError("welch() needs at least one value on each side")
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    difference = float(np.mean(x) - np.mean(y))
    t_statistic = df = p_value = ci_low = ci_high = None
    if x.size < 2 or y.size < 2:
        verdict = NEEDS_SEEDS
    elif not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        verdict = NOT_FINITE
    else:
        var_x = float(np.var(x, ddof=1)) / x.size
        var_y = float(np.var(y, ddof=1)) / y.size
        se2 = var_x + var_y
        if se2 == 0.0:
            verdict = NOT_TESTABLE
        else:
            df = se2**2 / (var_x**2 / (x.size - 1) + var_y**2 / (y.size - 1))
            test = scipy_stats.ttest_ind(x, y, equal_var=False)
            t_statistic = float(test.statistic)
            p_value = float(test.pvalue)
            half_width = float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * math.sqrt(se2)
            ci_low, ci_high = difference - half_width, difference + half_width
            if p_value < ALPHA:
                verdict = LOWER if difference < 0 else HIGHER
            else:
                verdict = WITHIN_NOISE
    return Comparison(
        against=against,
        n=int(x.size),
        n_against=int(y.size),
        difference=difference,
        t_statistic=t_statistic,
        df=df,
        p_value=p_value,
        ci_low=ci_low,
        ci_high=ci_high,
        verdict=verdict,
        significant=verdict in (LOWER, HIGHER),
    )


def mean_curve(curves: Sequence[Sequence[float]]) -> list[float]:
    """Element-wise mean of equally long curves (one per seed)."""
    if not curves:
        raise ValueError("mean_curve() needs at least one curve")
    lengths = {len(c) for c in curves}
    if len(lengths) != 1:
        raise ValueError(f"curves have different lengths: {sorted(lengths)}")
    return [float(v) for v in np.mean(np.asarray(curves, dtype=np.float64), axis=0)]


def epochs_to_target(curve: Sequence[float], target: float) -> int | None:
    """First 1-based epoch count at which ``curve`` is at or below ``target``.

    ``None`` when the curve never gets there. A relative tolerance of 1e-12 absorbs
    the rounding between a mean of final values and the last point of a mean curve.
    """
    for index, value in enumerate(curve):
        if value <= target or math.isclose(value, target, rel_tol=1e-12, abs_tol=0.0):
            return index + 1
    return None
