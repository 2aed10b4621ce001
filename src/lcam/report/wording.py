"""How the report writes numbers and test outcomes, in tables and in sentences.

One place for the wording, so ``report.md`` says the same thing in its tables and its
notes. Errors are percentages printed with three decimals; differences carry a sign;
p-values print with three decimals, or in scientific notation below 0.001.
"""

from __future__ import annotations

from lcam.report.stats import (
    HIGHER,
    LOWER,
    NEEDS_SEEDS,
    NOT_FINITE,
    NOT_TESTABLE,
    WITHIN_NOISE,
    Comparison,
    SampleStats,
)

__all__ = [
    "comparison_cell",
    "comparison_sentence",
    "number",
    "p_value",
    "signed",
    "stats_cell",
]


def number(value: float | None, decimals: int = 3) -> str:
    """``4.113``; ``—`` for a missing value."""
    return "—" if value is None else f"{value:.{decimals}f}"


def signed(value: float, decimals: int = 3) -> str:
    """``+0.052`` / ``-0.163``."""
    return f"{value:+.{decimals}f}"


def p_value(p: float) -> str:
    """``p=0.031``; ``p=2.3e-05`` below 0.001."""
    return f"p={p:.3f}" if p >= 0.001 else f"p={p:.1e}"


def stats_cell(stats: SampleStats | None) -> str:
    """``4.113 ± 0.090 (n=5)``, ``4.113 (n=1)`` or ``—`` when no run finished."""
    if stats is None:
        return "—"
    if stats.std is None:
        return f"{number(stats.mean)} (n={stats.n})"
    return f"{number(stats.mean)} ± {number(stats.std)} (n={stats.n})"


def _interval(c: Comparison) -> str:
    if c.ci_low is None or c.ci_high is None:
        return ""
    return f"[{signed(c.ci_low)}, {signed(c.ci_high)}]"


def comparison_cell(c: Comparison | None) -> str:
    """Short table form, e.g. ``lower: -0.163 [-0.301, -0.025], p=0.031``."""
    if c is None:
        return "—"
    if c.verdict == NEEDS_SEEDS:
        return f"needs ≥2 seeds (n={c.n} vs {c.n_against}); {signed(c.difference)}"
    if c.verdict in (NOT_TESTABLE, NOT_FINITE):
        return f"{c.verdict}; {signed(c.difference)}"
    assert c.p_value is not None
    return f"{c.verdict}: {signed(c.difference)} {_interval(c)}, {p_value(c.p_value)}"


def comparison_sentence(group: str, c: Comparison) -> str:
    """The outcome of ``group`` vs ``c.against`` as a plain-language sentence."""
    head = f"{group} vs {c.against}: difference {signed(c.difference)} points"
    if c.verdict == NEEDS_SEEDS:
        return (
            f"{head}, not tested: Welch's test needs ≥2 finished seeds in both groups "
            f"(has {c.n} and {c.n_against})."
        )
    if c.verdict == NOT_TESTABLE:
        return f"{head}, not tested: every seed of both groups gave the same value."
    if c.verdict == NOT_FINITE:
        return f"{head}, not tested: a final error is NaN or infinite (a diverged run?)."
    assert c.p_value is not None
    stated = f"{head} (95% CI {_interval(c)}, Welch {p_value(c.p_value)})"
    if c.verdict == WITHIN_NOISE:
        return f"{stated}: within noise, the seeds do not separate these two groups."
    direction = {LOWER: "lower", HIGHER: "higher"}[c.verdict]
    return f"{stated}: {group} has the {direction} error, beyond the seed noise (p < 0.05)."
