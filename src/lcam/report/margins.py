"""The equivalence margin of every claim: the paper's gain, scaled to each data set.

One rule for every claim and data set: the margin is :data:`RELATIVE_MARGIN` (4%) of
fixed momentum 0.9's mean final test error on that data set (its full-length
``m0.9`` group). The source is the paper's Table 1: on CIFAR-10 with WRN-28-10 the
best LCAM group lowers fixed 0.9's test error from 4.11% to 3.95%, a gain of 0.16
points, 3.9% of the baseline (the paper's WRN/M11 gains are 0.5-5.5% of it). An
"equivalent" verdict at this margin therefore rules out effects as large as the one
the paper reports, not only larger ones; a margin in points would not transfer from
a 1.6%-error data set to a 40%-error one.

The previous margin, :data:`ABSOLUTE_MARGIN` (±0.3 points, about the largest gain in
Table 1), is kept beside it so a reader sees which verdicts depend on the margin.
"""

from __future__ import annotations

import math

from lcam.report.comparisons import EQUIVALENCE_MARGIN

__all__ = [
    "ABSOLUTE_MARGIN",
    "PAPER_GAIN",
    "RELATIVE_MARGIN",
    "margin_source",
    "relative_margin",
]

RELATIVE_MARGIN = 0.04
"""The margin as a fraction of fixed 0.9's mean final test error on the data set."""

PAPER_GAIN = (4.11, 3.95)
"""Table 1, CIFAR-10, WRN-28-10 (Cdlr): fixed 0.9's test error and the best LCAM's (%)."""

ABSOLUTE_MARGIN = EQUIVALENCE_MARGIN
"""The previous margin, in points of test error, shown side by side."""


def relative_margin(fixed_mean: float) -> float:
    """The margin on a data set where fixed 0.9 ends at ``fixed_mean`` percent error."""
    if not (math.isfinite(fixed_mean) and fixed_mean > 0):
        raise ValueError(f"fixed 0.9's mean final error must be > 0, got {fixed_mean}")
    return RELATIVE_MARGIN * fixed_mean


def margin_source() -> str:
    """One sentence stating the rule and where it comes from (for the findings page)."""
    baseline, lcam = PAPER_GAIN
    gain = baseline - lcam
    return (
        f"The margin is {RELATIVE_MARGIN:.0%} of fixed momentum 0.9's mean final test error "
        f"on each data set: the paper's CIFAR-10 WRN-28-10 gain is {baseline:.2f}% -> "
        f"{lcam:.2f}%, {gain:.2f} points or {gain / baseline:.1%} of its baseline (Table 1). "
        f"The previous margin, ±{ABSOLUTE_MARGIN:g} points, is shown beside it."
    )
