"""Claims re-evaluated from a committed findings summary, without the runs.

The runs behind an earlier ``docs/findings`` summary need not exist any more, but the
summary stores every paired comparison with its seeds and per-seed differences, and
every paired statistic (t and bootstrap CIs, t-test, Wilcoxon, TOST, MDE, Holm) is a
function of those differences (:func:`lcam.report.paired.from_differences`). So each
family (final error, rise, epochs ratio) is rebuilt as it was, at a new margin, and
the claim evaluators of :mod:`lcam.report.claims` read it as they read runs.

What cannot be rebuilt is what needs runs the summary does not hold: C3 as stated
needs half-length groups, so it reads *not measured as stated* with the old
epochs-to-target description kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lcam.report.claims import (
    NOT_MEASURED,
    RATIO_MARGIN,
    ClaimResult,
    PresetClaims,
    beats_claim,
    direction_claim,
    epochs_ratio_description,
    is_lcam_name,
    late_rise_claim,
)
from lcam.report.comparisons import VS_CONTROL, VS_FIXED, correct_differences
from lcam.report.margins import relative_margin
from lcam.report.paired import PairedComparison

__all__ = ["rebuild_family", "reevaluate_preset"]


def rebuild_family(
    stored: Sequence[Mapping[str, Any]], *, margin: float
) -> list[PairedComparison]:
    """A stored family (``a``, ``against``, ``kind``, ``seeds``, ``differences`` of each
    comparison, in order) as one Holm-corrected family at ``margin``."""
    return correct_differences(
        [(c["a"], c["against"], c["kind"], c["seeds"], c["differences"]) for c in stored],
        margin=margin,
    )


def reevaluate_preset(
    name: str, preset: Mapping[str, Any], *, margin: float | None = None
) -> PresetClaims:
    """Claims C1-C5 of one stored preset (an entry of a summary's ``presets``) at
    ``margin`` (default: 4% of its fixed 0.9 mean final error, ``groups["m0.9"]``)."""
    fixed_mean = float(preset["groups"]["m0.9"]["mean"])
    if margin is None:
        margin = relative_margin(fixed_mean)
    family = rebuild_family(preset["final_error"], margin=margin)
    rise = rebuild_family(preset["rise"], margin=margin)
    ratio = rebuild_family(preset["ratio"], margin=RATIO_MARGIN)
    ratio_means = {str(k): float(v) for k, v in preset["ratio_means"].items()}
    ratio_claim = epochs_ratio_description(ratio, ratio_means)
    claims = {
        "C1": beats_claim([c for c in family if c.kind == VS_FIXED and is_lcam_name(c.a)],
                          "C1", "LCAM group"),
        "C2": direction_claim(family, swap_name="m0.95_0.9"),
        "C3": ClaimResult("C3", NOT_MEASURED,
                          "no runs on half the schedule; " + ratio_claim.reason,
                          ratio_claim.comparisons, ratio_claim.minimum_detectable_effect,
                          ratio_claim.unit),
        "C4": beats_claim([c for c in family if c.kind == VS_CONTROL], "C4", "LCAM group"),
        "C5": late_rise_claim(rise),
    }
    return PresetClaims(
        preset=name, seeds=int(preset["seeds"]), epochs=preset.get("epochs"), claims=claims,
        final_error=family, ratio=ratio, rise=rise, ratio_means=ratio_means, margin=margin,
        fixed_mean=fixed_mean, half=[], ratio_claim=ratio_claim,
    )
