"""One-sided non-inferiority of a shortened group against fixed 0.9 at full length.

Claim C3 as the paper states it ("equal or better test accuracy with half the
training iterations") compares a group trained on half the schedule (``X-half``) with
fixed momentum 0.9 trained on all of it, paired by seed: ``d_s = err(X-half)_s -
err(m0.9)_s`` (points of test error). With the margin ``δ`` (:mod:`lcam.report.margins`):

- **non-inferior** when the one-sided upper confidence bound of the mean of ``d`` is
  below ``δ``: the half-length run is shown to be worse by less than the margin;
- **inferior** when the one-sided lower confidence bound is above ``δ``: it is shown
  to be worse by more than the margin;
- **inconclusive** otherwise.

The bounds are t-based at the one-sided level ``ALPHA / m`` for the ``m`` shortened
groups of the data set (Bonferroni, the strictest step of the Holm correction that
every other family of the report uses, and the level of its minimum detectable
effects): with ``m = 4`` each bound is a 98.75% one-sided bound, and the probability
that any of the ``m`` verdicts is wrong stays below 5%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

from lcam.report.paired import ALPHA, PairedComparison

__all__ = [
    "INFERIOR",
    "NON_INFERIOR",
    "UNDECIDED",
    "NonInferiority",
    "non_inferiority",
    "one_sided_bounds",
]

NON_INFERIOR = "non-inferior"
INFERIOR = "inferior"
UNDECIDED = "inconclusive"


@dataclass(frozen=True)
class NonInferiority:
    """One shortened group against fixed 0.9 at full length (see the module docstring).

    ``comparison`` is the paired comparison of the family (Holm-corrected two-sided
    test, MDE at ``ALPHA / m``); ``lower``/``upper`` the one-sided bounds at level
    ``alpha`` (``None`` without a spread of the differences); ``p_value`` the one-sided
    t-test of ``H0: mean >= margin`` (below ``alpha`` exactly when ``upper < margin``).
    """

    comparison: PairedComparison
    margin: float
    alpha: float
    lower: float | None
    upper: float | None
    p_value: float | None
    verdict: str

    @property
    def group(self) -> str:
        return self.comparison.a


def one_sided_bounds(comparison: PairedComparison, alpha: float) -> tuple[float, float] | None:
    """The one-sided ``1 - alpha`` lower and upper t bounds of the mean difference."""
    std, n = comparison.std_difference, comparison.n
    if std is None or not std > 0 or n < 2:
        return None
    half = float(scipy_stats.t.ppf(1 - alpha, n - 1)) * std / math.sqrt(n)
    return comparison.mean_difference - half, comparison.mean_difference + half


def non_inferiority(
    family: Sequence[PairedComparison], *, margin: float
) -> list[NonInferiority]:
    """The verdict of each comparison of ``family`` (one data set's shortened groups
    against full-length fixed 0.9) at ``margin``, one-sided level ``ALPHA / m``."""
    if not margin > 0:
        raise ValueError(f"Invalid non-inferiority margin: {margin} (must be > 0)")
    alpha = ALPHA / max(1, len(family))
    out = []
    for c in family:
        bounds = one_sided_bounds(c, alpha)
        p_value = None
        verdict = UNDECIDED
        if bounds is not None:
            assert c.std_difference is not None
            se = c.std_difference / math.sqrt(c.n)
            p_value = float(scipy_stats.t.cdf((c.mean_difference - margin) / se, c.n - 1))
            if bounds[1] < margin:
                verdict = NON_INFERIOR
            elif bounds[0] > margin:
                verdict = INFERIOR
        out.append(NonInferiority(
            comparison=c, margin=margin, alpha=alpha,
            lower=None if bounds is None else bounds[0],
            upper=None if bounds is None else bounds[1],
            p_value=p_value, verdict=verdict,
        ))
    return out
