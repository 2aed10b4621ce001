"""Claim C2 as the paper states it: the better LCAM direction flips with class sparsity.

Per data set (arm) the statistic is the paired swap difference

    d = err(m0.95_0.9) - err(m0.9_0.95)          (points of test error, paired by seed)

taken from the arm's family of final-error comparisons (``"vs swap"``, Holm-corrected
with the rest of the family, MDE at ``ALPHA / m``, TOST at the arm's margin). The paper
(Fig. 3 and 4) predicts ``d > 0`` with 10 classes (CIFAR-10: ``m0.9_0.95`` wins) and
``d < 0`` with 100 (CIFAR-100: ``m0.95_0.9`` wins). The arms' error levels differ
(about 1.6% against 40%), so the verdict judges signs, which no rescaling of the
error explains; ``d`` is also given relative to fixed 0.9's mean error on its arm.

:func:`crossover_verdict` for a 100-class arm (``fine``) against a 10-class one
(``coarse``):

- **supported** when ``d(fine) < 0`` and ``d(coarse) > 0``, each beyond noise (its
  Holm-adjusted paired t-test p < 0.05);
- **contradicted** when ``d(fine) > 0`` beyond noise (the 10-class direction holds on
  100 classes too), or when ``d(fine)`` is shown to lie within the fine arm's margin
  (TOST p < 0.05): the direction does not matter there; or when ``d(coarse) < 0``
  beyond noise (the 100-class direction holds on 10 classes too: the opposite of the
  prediction shown, which is never read as inconclusive);
- **inconclusive** otherwise, with the MDE reached on each arm.

:func:`interaction` states the size of the flip, ``d(fine) - d(coarse)``, with a 95%
CI: Welch-style (the arms have different runs: the difference of the two paired means,
standard error ``sqrt(se_f² + se_c²)``, Welch-Satterthwaite degrees of freedom) and a
bootstrap (the seeds resampled with replacement within each arm, independently,
percentile interval). The arms are treated as independent even where they share their
inputs (the coarse labels of the fine arm), which can only widen the interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from lcam.report.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED
from lcam.report.paired import (
    ALPHA,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    HIGHER,
    LOWER,
    PairedComparison,
)

__all__ = ["Interaction", "crossover_verdict", "interaction"]


@dataclass(frozen=True)
class Interaction:
    """``d(fine) - d(coarse)`` with its Welch and bootstrap 95% CIs (see the module)."""

    mean: float
    se: float | None
    df: float | None
    ci_welch: tuple[float, float] | None
    ci_bootstrap: tuple[float, float] | None
    n_fine: int
    n_coarse: int


def interaction(d_fine: Sequence[float], d_coarse: Sequence[float]) -> Interaction:
    """The interaction of two arms' per-seed swap differences (see the module)."""
    fine = np.asarray(d_fine, dtype=np.float64)
    coarse = np.asarray(d_coarse, dtype=np.float64)
    if not fine.size or not coarse.size:
        raise ValueError("each arm needs at least one seed")
    mean = float(fine.mean() - coarse.mean())
    se = df = None
    ci_welch = ci_boot = None
    if fine.size >= 2 and coarse.size >= 2:
        var_f = float(fine.var(ddof=1)) / fine.size
        var_c = float(coarse.var(ddof=1)) / coarse.size
        if var_f + var_c > 0:
            se = math.sqrt(var_f + var_c)
            df = (var_f + var_c) ** 2 / (
                var_f ** 2 / (fine.size - 1) + var_c ** 2 / (coarse.size - 1))
            half = float(scipy_stats.t.ppf(1 - ALPHA / 2, df)) * se
            ci_welch = (mean - half, mean + half)
        generator = np.random.default_rng(BOOTSTRAP_SEED)
        picks_f = generator.integers(0, fine.size, size=(BOOTSTRAP_RESAMPLES, fine.size))
        picks_c = generator.integers(0, coarse.size, size=(BOOTSTRAP_RESAMPLES, coarse.size))
        values = fine[picks_f].mean(axis=1) - coarse[picks_c].mean(axis=1)
        low, high = np.quantile(values, [ALPHA / 2, 1 - ALPHA / 2])
        ci_boot = (float(low), float(high))
    return Interaction(mean=mean, se=se, df=df, ci_welch=ci_welch, ci_bootstrap=ci_boot,
                       n_fine=int(fine.size), n_coarse=int(coarse.size))


def _mde(c: PairedComparison) -> str:
    mde = c.minimum_detectable_effect
    return "MDE —" if mde is None else f"MDE {mde:.2f} at margin {c.margin:.2f}"


def crossover_verdict(
    fine: PairedComparison, coarse: PairedComparison, *, fine_name: str, coarse_name: str
) -> tuple[str, str]:
    """C2 for a 100-class arm against a 10-class arm (their swap comparisons, with
    verdicts); returns the verdict and a one-line reason."""
    head = (f"d({fine_name}) = {fine.mean_difference:+.3f} ({fine.verdict}), "
            f"d({coarse_name}) = {coarse.mean_difference:+.3f} ({coarse.verdict})")
    if fine.verdict == LOWER and coarse.verdict == HIGHER:
        return SUPPORTED, f"{head}: the direction flips, each beyond noise"
    if fine.verdict == HIGHER:
        return CONTRADICTED, (f"{head}: on {fine_name} m0.9_0.95 is lower beyond noise, "
                              "the 10-class direction")
    if fine.p_equivalence is not None and fine.p_equivalence < ALPHA:
        return CONTRADICTED, (f"{head}: on {fine_name} d is shown within ±{fine.margin:.2f} "
                              f"points (TOST p {fine.p_equivalence:.3f})")
    if coarse.verdict == LOWER:
        return CONTRADICTED, (f"{head}: on {coarse_name} m0.95_0.9 is lower beyond noise, "
                              "the 100-class direction")
    return INCONCLUSIVE, (f"{head}: no flip beyond noise; {fine_name} {_mde(fine)}, "
                          f"{coarse_name} {_mde(coarse)}")
