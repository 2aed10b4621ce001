"""Paired comparisons of two groups over the seeds they share.

Runs of one seed share their initial weights and their data order across groups
(``tests/test_paired_runs.py``), so two groups are compared seed by seed: the unit
of analysis is the per-seed difference ``d_s = a_s - b_s`` (in the units of the
values, percentage points of test error; negative = ``a`` lower). For one
comparison :func:`paired` gives

- the mean difference with a 95% confidence interval, t-based (``n - 1`` degrees of
  freedom) and bootstrap (percentile interval of the mean over seeds resampled with
  replacement, :data:`BOOTSTRAP_RESAMPLES` resamples from a fixed generator seed, so
  the report is reproducible);
- the paired t-test and the Wilcoxon signed-rank test (two-sided; zero differences
  dropped, as ``scipy.stats.wilcoxon`` does by default);
- the probability of improvement: the fraction of seeds on which ``a`` is lower than
  ``b`` (ties count one half), with a bootstrap CI over seeds (rliable's
  probability of improvement, on paired runs);
- the minimum detectable effect: the smallest ``|mean difference|`` that a paired
  t-test at level ``alpha_mde`` would detect with 80% power with these seeds, from
  the observed spread of the differences (non-central t);
- an equivalence test (two one-sided t-tests, TOST) at a stated margin: its p-value
  is below 0.05 when the whole difference is shown to lie inside ``±margin``.

:func:`holm` adjusts the t-test p-values of a family of comparisons (one preset) with
Holm-Bonferroni; :func:`verdict` then reads one comparison as ``lower`` / ``higher``
(adjusted p < 0.05), ``equivalent`` (TOST p < 0.05) or ``inconclusive``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

__all__ = [
    "ALPHA",
    "BOOTSTRAP_RESAMPLES",
    "EQUIVALENT",
    "HIGHER",
    "INCONCLUSIVE",
    "LOWER",
    "POWER",
    "PairedComparison",
    "from_differences",
    "holm",
    "minimum_detectable_effect",
    "paired",
    "verdict",
]

ALPHA = 0.05
POWER = 0.8
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0

LOWER = "lower"
HIGHER = "higher"
EQUIVALENT = "equivalent"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class PairedComparison:
    """``a`` against ``against`` on their common seeds (see the module docstring).

    Statistics that need two seeds, or a spread of the differences, are ``None``
    without them: when every seed differs by exactly the same amount (coarse errors,
    few seeds) nothing is tested and the verdict stays ``inconclusive``. ``p_holm`` is
    filled by :func:`holm`; ``verdict`` by :func:`verdict`.
    """

    a: str
    against: str
    kind: str
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean_difference: float
    std_difference: float | None
    ci_t: tuple[float, float] | None
    ci_bootstrap: tuple[float, float] | None
    t_statistic: float | None
    p_t: float | None
    p_wilcoxon: float | None
    probability_lower: float
    probability_lower_ci: tuple[float, float] | None
    margin: float
    p_equivalence: float | None
    minimum_detectable_effect: float | None
    alpha_mde: float
    p_holm: float | None = None
    verdict: str = INCONCLUSIVE

    @property
    def n(self) -> int:
        return len(self.seeds)


def paired(
    a: Mapping[int, float],
    b: Mapping[int, float],
    *,
    name: str,
    against: str,
    kind: str,
    margin: float,
    alpha_mde: float = ALPHA,
) -> PairedComparison | None:
    """Compare ``a`` with ``b`` (seed -> value) on their common seeds; ``None`` if none."""
    if not margin > 0:
        raise ValueError(f"Invalid equivalence margin: {margin} (must be > 0)")
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        return None
    x = np.asarray([a[s] for s in seeds], dtype=np.float64)
    y = np.asarray([b[s] for s in seeds], dtype=np.float64)
    return from_differences(seeds, x - y, name=name, against=against, kind=kind,
                            margin=margin, alpha_mde=alpha_mde)


def from_differences(
    seeds: Sequence[int],
    differences: Sequence[float] | np.ndarray,
    *,
    name: str,
    against: str,
    kind: str,
    margin: float,
    alpha_mde: float = ALPHA,
) -> PairedComparison:
    """The comparison from its per-seed differences ``a_s - b_s`` alone.

    Every statistic of :func:`paired` is a function of the differences (the paired
    t-test is the one-sample t-test of ``d``, Wilcoxon ranks ``d``), so stored
    differences (``docs/findings/``) are re-evaluated at another margin exactly.
    """
    if not margin > 0:
        raise ValueError(f"Invalid equivalence margin: {margin} (must be > 0)")
    if len(seeds) != len(differences) or not len(seeds):
        raise ValueError(f"{len(seeds)} seeds for {len(differences)} differences")
    seed_tuple = tuple(int(s) for s in seeds)
    d = np.asarray(differences, dtype=np.float64)
    n = d.size
    mean = float(np.mean(d))
    std = float(np.std(d, ddof=1)) if n >= 2 else None
    ci_t = ci_boot = prob_ci = None
    t_stat = p_t = p_w = p_eq = mde = None
    finite = bool(np.all(np.isfinite(d)))
    if n >= 2 and finite:
        ci_boot = _bootstrap_ci(d, lambda samples: samples.mean(axis=1))
        prob_ci = _bootstrap_ci(d, _probability_lower)
        if std is not None and std > 0:
            se = std / math.sqrt(n)
            half = float(scipy_stats.t.ppf(1 - ALPHA / 2, n - 1)) * se
            ci_t = (mean - half, mean + half)
            test = scipy_stats.ttest_1samp(d, 0.0)
            t_stat, p_t = float(test.statistic), float(test.pvalue)
            p_eq = _tost(mean, se, n - 1, margin)
            mde = minimum_detectable_effect(std, n, alpha=alpha_mde)
        if np.any(d != 0):
            p_w = float(scipy_stats.wilcoxon(d).pvalue)
    return PairedComparison(
        a=name, against=against, kind=kind, seeds=seed_tuple,
        differences=tuple(float(v) for v in d), mean_difference=mean, std_difference=std,
        ci_t=ci_t, ci_bootstrap=ci_boot, t_statistic=t_stat, p_t=p_t, p_wilcoxon=p_w,
        probability_lower=float(_probability_lower(d)), probability_lower_ci=prob_ci,
        margin=margin, p_equivalence=p_eq, minimum_detectable_effect=mde,
        alpha_mde=alpha_mde,
    )


def _probability_lower(d: np.ndarray) -> Any:
    """Fraction of seeds with ``a < b`` (ties count one half), along the last axis."""
    return np.mean((d < 0) + 0.5 * (d == 0), axis=-1)


def _bootstrap_ci(
    d: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray]
) -> tuple[float, float]:
    """Percentile CI of ``statistic`` (applied to each resample, one a row)."""
    generator = np.random.default_rng(BOOTSTRAP_SEED)
    picks = generator.integers(0, d.size, size=(BOOTSTRAP_RESAMPLES, d.size))
    values = statistic(d[picks])
    low, high = np.quantile(values, [ALPHA / 2, 1 - ALPHA / 2])
    return float(low), float(high)


def _tost(mean: float, se: float, df: int, margin: float) -> float:
    """p-value of two one-sided t-tests of ``-margin < difference < margin``."""
    p_low = 1 - float(scipy_stats.t.cdf((mean + margin) / se, df))   # H0: diff <= -margin
    p_high = float(scipy_stats.t.cdf((mean - margin) / se, df))      # H0: diff >= margin
    return max(p_low, p_high)


def minimum_detectable_effect(std: float, n: int, *, alpha: float = ALPHA,
                              power: float = POWER) -> float | None:
    """Smallest |mean difference| a two-sided paired t-test at ``alpha`` detects with
    probability ``power`` from ``n`` seeds whose differences have std ``std``."""
    if n < 2 or not std > 0:
        return None
    df = n - 1
    critical = float(scipy_stats.t.ppf(1 - alpha / 2, df))

    def shortfall(noncentrality: float) -> float:
        reach = scipy_stats.nct.sf(critical, df, noncentrality)
        reach += scipy_stats.nct.cdf(-critical, df, noncentrality)
        if not math.isfinite(reach):  # scipy's nct fails far in the tail, where reach ~ 1
            return 1.0 - power
        return float(reach) - power

    # The normal approximation brackets the root: with n >= 2 the t answer lies above
    # it and below a few times it (kept where scipy's non-central t is accurate).
    normal = float(scipy_stats.norm.ppf(1 - alpha / 2) + scipy_stats.norm.ppf(power))
    high = normal
    while shortfall(high) < 0:
        high *= 1.5
    noncentrality = optimize.brentq(shortfall, 0.0, high)
    return float(noncentrality * std / math.sqrt(n))


def holm(comparisons: Sequence[PairedComparison]) -> list[PairedComparison]:
    """The comparisons with ``p_holm`` (Holm-Bonferroni over those with a t-test p)."""
    tested = sorted((c.p_t, i) for i, c in enumerate(comparisons) if c.p_t is not None)
    m = len(tested)
    adjusted: dict[int, float] = {}
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return [replace(c, p_holm=adjusted.get(i)) for i, c in enumerate(comparisons)]


def verdict(comparison: PairedComparison) -> PairedComparison:
    """The comparison with its verdict: ``lower``/``higher`` when the Holm-adjusted
    p < ``ALPHA``, ``equivalent`` when TOST p < ``ALPHA``, else ``inconclusive``."""
    p = comparison.p_holm
    if p is not None and p < ALPHA:
        word = LOWER if comparison.mean_difference < 0 else HIGHER
    elif comparison.p_equivalence is not None and comparison.p_equivalence < ALPHA:
        word = EQUIVALENT
    else:
        word = INCONCLUSIVE
    return replace(comparison, verdict=word)
