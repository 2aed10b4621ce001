"""The paper's claims, tested on one preset's runs: a verdict for each of C1-C5.

Each claim is decided from paired comparisons (:mod:`lcam.report.paired`) over the
seeds the groups share, Holm-corrected within its family, at the preset's margin
(:mod:`lcam.report.margins`: 4% of fixed 0.9's mean final error, or a margin in
points given by the caller). Only groups on the full schedule enter C1, C2, C4 and
C5; shortened groups (``m0.9-half``) enter C3 alone.

- **C1** LCAM beats fixed 0.9 in final test error. Family: the preset's final-error
  comparisons (:func:`lcam.report.comparisons.preset_comparisons`); read: each LCAM
  group against ``m0.9`` (:func:`beats_claim`).
- **C2** The better direction depends on the data set: the sign of ``m0.95_0.9 -
  m0.9_0.95``. Per preset the swap comparison gives a direction
  (:func:`direction_claim`); across data sets the verdict is the crossover of
  :mod:`lcam.report.crossover` (100 against 10 classes) or, for data sets of one
  class count, :func:`direction_verdict`.
- **C3** Equal or better test error with half the training: each shortened group
  against ``m0.9`` at full length, one-sided non-inferiority at the margin
  (:mod:`lcam.report.noninferiority`), with ``m0.9-half`` as the control that tells a
  property of LCAM from one of the schedule (:func:`half_schedule_claim`). Without
  shortened groups C3 is *not measured as stated*; the epochs-to-target ratio inside
  one schedule (:func:`epochs_ratio_description`) stays as a description: per seed
  ``s`` and group ``g``, the first epoch at which ``g``'s test error is at or below
  seed ``s``'s ``m0.9`` final error, divided by the epochs (a run that never gets
  there counts as ``(epochs + 1) / epochs``), against ``m0.9``'s own ratio, margin
  :data:`RATIO_MARGIN`.
- **C4** The gain is not explained by the larger average step: each LCAM group
  against its matched control (same family as C1, :func:`beats_claim`).
- **C5** Fixed 0.95 shows an "abnormal increase" of test error late in training and
  LCAM avoids it. Per run the rise is final minus best test error. Family: ``m0.95``
  against ``m0.9``, and each LCAM group against ``m0.95`` (:func:`late_rise_claim`).

Verdicts: ``supported`` (the claimed effect beyond noise), ``contradicted`` (no
comparison shows it and one shows the opposite effect beyond noise, or every one is
shown within the margin), ``inconclusive`` (neither); C3 also ``not specific to
LCAM`` and ``not measured as stated``. An effect shown in the opposite direction is
never read as inconclusive.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lcam.report.comparisons import (
    VS_CONTROL,
    VS_FIXED,
    VS_SWAP,
    correct,
    preset_comparisons,
)
from lcam.report.margins import relative_margin
from lcam.report.noninferiority import (
    INFERIOR,
    NON_INFERIOR,
    NonInferiority,
    non_inferiority,
)
from lcam.report.paired import EQUIVALENT, HIGHER, LOWER, PairedComparison
from lcam.report.runs import GroupSpec, Run

__all__ = [
    "CLAIMS",
    "CONTRADICTED",
    "INCONCLUSIVE",
    "NOT_MEASURED",
    "NOT_SPECIFIC",
    "RATIO_MARGIN",
    "SUPPORTED",
    "ClaimResult",
    "PresetClaims",
    "beats_claim",
    "direction_claim",
    "direction_verdict",
    "epochs_ratio_description",
    "evaluate",
    "half_schedule_claim",
    "is_lcam_name",
    "late_rise_claim",
]

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
NOT_SPECIFIC = "not specific to LCAM"
NOT_MEASURED = "not measured as stated"
RATIO_MARGIN = 0.1
"""Equivalence margin of the epochs-to-target ratio, in fractions of the run's epochs."""
HALF_THE_EPOCHS = 0.6
"""The ratio description needs the ratio's upper confidence bound at or below this."""

CLAIMS: dict[str, str] = {
    "C1": "LCAM beats fixed 0.9 in final test error",
    "C2": "The better direction depends on the data set (sign of m0.95_0.9 - m0.9_0.95)",
    "C3": "Equal or better test error with half the training (vs fixed 0.9 at full length)",
    "C4": "The gain is not explained by the larger average step (LCAM vs matched control)",
    "C5": "Fixed 0.95 shows a late rise of test error and LCAM avoids it",
}


@dataclass(frozen=True)
class ClaimResult:
    """One claim on one preset: the verdict, a one-line reason and its comparisons."""

    claim: str
    verdict: str
    reason: str
    comparisons: tuple[PairedComparison, ...]
    minimum_detectable_effect: float | None
    unit: str = "points"
    direction: str | None = None  # C2 only: lower / higher / equivalent / inconclusive
    margin: float | None = None


@dataclass(frozen=True)
class PresetClaims:
    """Every claim on one preset, and the families of comparisons behind them.

    ``margin``: the equivalence margin used (points); ``fixed_mean``: fixed 0.9's mean
    final error at full length; ``half``: the C3 non-inferiority results;
    ``ratio_claim``: the epochs-to-target description (formerly C3's verdict)."""

    preset: str
    seeds: int
    epochs: int | None
    claims: dict[str, ClaimResult]
    final_error: list[PairedComparison] = field(default_factory=list)
    ratio: list[PairedComparison] = field(default_factory=list)
    rise: list[PairedComparison] = field(default_factory=list)
    ratio_means: dict[str, float] = field(default_factory=dict)
    margin: float | None = None
    fixed_mean: float | None = None
    half: list[NonInferiority] = field(default_factory=list)
    ratio_claim: ClaimResult | None = None


_LCAM_NAME = re.compile(r"m\d+(?:\.\d+)?_\d+(?:\.\d+)?")


def is_lcam_name(name: str) -> bool:
    """Whether a group name is an LCAM pair ``m<below>_<above>`` (for stored summaries
    that carry names only; run directories are read from ``config.json`` instead)."""
    return _LCAM_NAME.fullmatch(name) is not None


def _is_lcam(spec: GroupSpec) -> bool:
    return spec.optimizer == "lcam" and spec.role != "control"


def _fixed(specs: Mapping[str, GroupSpec], momentum: float, *, shortened: bool = False
           ) -> str | None:
    for name, spec in specs.items():
        if spec.optimizer == "sgd" and spec.role != "control" and spec.momentum is not None \
                and abs(spec.momentum - momentum) < 1e-9 and spec.shortened == shortened:
            return name
    return None


def _min_mde(comparisons: Sequence[PairedComparison]) -> float | None:
    values = [c.minimum_detectable_effect for c in comparisons
              if c.minimum_detectable_effect is not None]
    return min(values) if values else None


def _describe(c: PairedComparison, unit: str = "points") -> str:
    return f"{c.a} {c.mean_difference:+.2f} {unit} vs {c.against} ({c.verdict})"


def beats_claim(
    comparisons: Sequence[PairedComparison], claim: str, what: str, unit: str = "points",
) -> ClaimResult:
    """A claim that some group beats another (C1: LCAM vs fixed 0.9, C4: LCAM vs its
    control), read over ``comparisons`` (``a`` = the LCAM group; lower is better).

    Supported if any comparison is ``lower``; contradicted if none is and one is
    ``higher`` (the opposite effect beyond noise) or every one is ``equivalent``
    within the margin; inconclusive otherwise."""
    mde = _min_mde(comparisons)
    margin = comparisons[0].margin if comparisons else None
    if not comparisons:
        return ClaimResult(claim, INCONCLUSIVE, f"no {what} with common seeds", (), None, unit)
    lower = [c for c in comparisons if c.verdict == LOWER]
    if lower:
        best = min(lower, key=lambda c: c.mean_difference)
        reason = f"{_describe(best, unit)}; {len(lower)} of {len(comparisons)} lower"
        return ClaimResult(claim, SUPPORTED, reason, tuple(comparisons), mde, unit,
                           margin=margin)
    counts = {v: sum(c.verdict == v for c in comparisons)
              for v in (HIGHER, EQUIVALENT, INCONCLUSIVE)}
    tally = (f"{counts[HIGHER]} higher, {counts[EQUIVALENT]} equivalent within "
             f"±{_fmt_margin(margin)}, {counts[INCONCLUSIVE]} inconclusive")
    higher = [c for c in comparisons if c.verdict == HIGHER]
    if higher:
        worst = max(higher, key=lambda c: c.mean_difference)
        reason = f"no {what} lower, {_describe(worst, unit)} beyond noise ({tally})"
        return ClaimResult(claim, CONTRADICTED, reason, tuple(comparisons), mde, unit,
                           margin=margin)
    if all(c.verdict == EQUIVALENT for c in comparisons):
        reason = f"no {what} lower: every one equivalent within ±{_fmt_margin(margin)}"
        return ClaimResult(claim, CONTRADICTED, reason, tuple(comparisons), mde, unit,
                           margin=margin)
    reason = f"no {what} lower beyond noise, not all ruled out ({tally})"
    return ClaimResult(claim, INCONCLUSIVE, reason, tuple(comparisons), mde, unit,
                       margin=margin)


def _fmt_margin(margin: float | None) -> str:
    return "?" if margin is None else f"{margin:.3f}"


def _first_epoch_at_or_below(curve: Sequence[float], target: float) -> int | None:
    for index, value in enumerate(curve):
        if value <= target:
            return index + 1
    return None


def _ratios(
    runs: Mapping[str, Mapping[int, Run]], fixed: str, epochs: int
) -> dict[str, dict[int, float]]:
    targets = {s: run.test_error[-1] for s, run in runs[fixed].items()}
    out: dict[str, dict[int, float]] = {}
    for name, by_seed in runs.items():
        out[name] = {}
        for seed, run in by_seed.items():
            if seed not in targets:
                continue
            reached = _first_epoch_at_or_below(run.test_error, targets[seed])
            out[name][seed] = (reached if reached is not None else epochs + 1) / epochs
    return out


def evaluate(
    preset: str,
    specs: Mapping[str, GroupSpec],
    runs: Mapping[str, Mapping[int, Run]],
    *,
    controls: Mapping[str, str | None],
    margin: float | None = None,
) -> PresetClaims:
    """C1-C5 on one preset; ``runs``: group -> seed -> finished run.

    ``margin`` (points of test error) defaults to the relative rule of
    :mod:`lcam.report.margins` (4% of full-length fixed 0.9's mean final error)."""
    fixed = _fixed(specs, 0.9)
    fixed95 = _fixed(specs, 0.95)
    full = {n: s for n, s in specs.items() if not s.shortened}
    lcam = [n for n in full if _is_lcam(full[n])]
    finals = {n: {s: r.test_error[-1] for s, r in by_seed.items()} for n, by_seed in runs.items()}
    fixed_mean = None
    if fixed is not None and finals.get(fixed):
        fixed_mean = math.fsum(finals[fixed].values()) / len(finals[fixed])
    if margin is None:
        if fixed_mean is None:
            raise ValueError(f"preset {preset}: no finished m0.9 run to scale the margin by")
        margin = relative_margin(fixed_mean)
    family = preset_comparisons(specs, finals, fixed_group=fixed, controls=controls,
                                margin=margin, order=list(specs))
    claims: dict[str, ClaimResult] = {}
    claims["C1"] = beats_claim([c for c in family if c.kind == VS_FIXED and c.a in lcam],
                               "C1", "LCAM group")
    claims["C4"] = beats_claim([c for c in family if c.kind == VS_CONTROL], "C4",
                               "LCAM group")
    claims["C2"] = direction_claim(family, swap_name=_pair_name(full))

    full_runs = {n: r for n, r in runs.items() if n in full}
    lengths = {len(r.test_error) for by_seed in full_runs.values() for r in by_seed.values()}
    epochs = lengths.pop() if len(lengths) == 1 else None
    ratio_family: list[PairedComparison] = []
    ratio_means: dict[str, float] = {}
    if fixed is not None and epochs:
        ratios = _ratios(full_runs, fixed, epochs)
        ratio_means = {n: sum(v.values()) / len(v) for n, v in ratios.items() if v}
        ratio_family = correct([(n, fixed, "epochs ratio vs m0.9's own", ratios[n],
                                 ratios[fixed]) for n in lcam], margin=RATIO_MARGIN)
    ratio_claim = epochs_ratio_description(ratio_family, ratio_means)

    shortened = [n for n, s in specs.items() if s.shortened and s.role != "control"]
    half: list[NonInferiority] = []
    if fixed is not None and shortened:
        half_family = correct([(n, fixed, "half schedule vs m0.9", finals.get(n, {}),
                                finals[fixed]) for n in shortened], margin=margin)
        half = non_inferiority(half_family, margin=margin)
        claims["C3"] = half_schedule_claim(
            half, fixed_half=_fixed(specs, 0.9, shortened=True),
            lcam_half=[n for n in shortened if _is_lcam(specs[n])])
    else:
        claims["C3"] = ClaimResult(
            "C3", NOT_MEASURED, "no runs on half the schedule; " + ratio_claim.reason,
            ratio_claim.comparisons, ratio_claim.minimum_detectable_effect,
            ratio_claim.unit)

    rise = {n: {s: r.test_error[-1] - min(r.test_error) for s, r in by_seed.items()}
            for n, by_seed in full_runs.items()}
    rise_family: list[PairedComparison] = []
    if fixed is not None and fixed95 is not None:
        planned = [(fixed95, fixed, "rise vs m0.9", rise[fixed95], rise[fixed])]
        planned += [(n, fixed95, "rise vs m0.95", rise[n], rise[fixed95]) for n in lcam]
        rise_family = correct(planned, margin=margin)
    claims["C5"] = late_rise_claim(rise_family) if fixed95 is not None else ClaimResult(
        "C5", NOT_MEASURED, "no fixed-0.95 group in this preset", (), None)
    claims = {key: claims[key] for key in CLAIMS}
    seeds = max((len(v) for v in runs.values()), default=0)
    return PresetClaims(preset=preset, seeds=seeds, epochs=epochs, claims=claims,
                        final_error=family, ratio=ratio_family, rise=rise_family,
                        ratio_means=ratio_means, margin=margin, fixed_mean=fixed_mean,
                        half=half, ratio_claim=ratio_claim)


def _pair_name(specs: Mapping[str, GroupSpec]) -> str:
    """The group with 0.95 below and 0.9 above (``m0.95_0.9``), by its config."""
    for name, spec in specs.items():
        if _is_lcam(spec) and spec.momentum_below is not None and spec.momentum_above \
                is not None and abs(spec.momentum_below - 0.95) < 1e-9 \
                and abs(spec.momentum_above - 0.9) < 1e-9:
            return name
    return "m0.95_0.9"


def direction_claim(family: Sequence[PairedComparison], *, swap_name: str) -> ClaimResult:
    """C2 on one preset: the direction of ``m0.95_0.9 - m0.9_0.95`` (its swap
    comparison in ``family``, found as the ``vs swap`` comparison of ``swap_name``).
    The verdict itself is made across data sets."""
    swap = [c for c in family if c.kind == VS_SWAP and c.a == swap_name]
    if not swap:
        return ClaimResult("C2", INCONCLUSIVE, "no m0.95_0.9 / m0.9_0.95 pair", (), None)
    (c,) = swap
    reason = f"m0.95_0.9 - m0.9_0.95 = {c.mean_difference:+.3f} points ({c.verdict})"
    return ClaimResult("C2", INCONCLUSIVE, reason, (c,), c.minimum_detectable_effect,
                       direction=c.verdict, margin=c.margin)


def direction_verdict(directions: Mapping[str, str]) -> tuple[str, str]:
    """C2 across data sets (preset -> direction of ``m0.95_0.9 - m0.9_0.95``).

    Supported when two data sets have significant differences of opposite sign;
    contradicted when every data set has one significant sign and it is the same, or
    every one is equivalent within the margin (the direction does not matter);
    inconclusive otherwise.
    """
    signs = {d for d in directions.values() if d in (LOWER, HIGHER)}
    if signs == {LOWER, HIGHER}:
        return SUPPORTED, "significant differences of opposite sign on different data sets"
    values = list(directions.values())
    if values and len(signs) == 1 and all(d in (LOWER, HIGHER) for d in values):
        return CONTRADICTED, f"the same sign ({values[0]}) on every data set"
    if values and all(d == EQUIVALENT for d in values):
        return CONTRADICTED, "the two directions are equivalent on every data set"
    return INCONCLUSIVE, "no pair of data sets with significant opposite signs"


def half_schedule_claim(
    results: Sequence[NonInferiority], *, fixed_half: str | None, lcam_half: Sequence[str]
) -> ClaimResult:
    """C3 on one data set from the non-inferiority of each shortened group.

    Contradicted when every LCAM group at half length is inferior (worse than fixed 0.9
    at full length by more than the margin, beyond noise); else *not specific to LCAM*
    when ``m0.9-half`` is non-inferior too (halving is then a property of the
    schedule); supported when some LCAM group at half length is non-inferior and
    ``m0.9-half`` is not; inconclusive otherwise (with the MDE reached)."""
    by_group = {r.group: r for r in results}
    mine = [by_group[n] for n in lcam_half if n in by_group]
    comparisons = tuple(r.comparison for r in results)
    mde = _min_mde([r.comparison for r in mine])
    margin = results[0].margin if results else None
    if not mine:
        return ClaimResult("C3", INCONCLUSIVE, "no LCAM group on the half schedule",
                           comparisons, None, margin=margin)
    control = by_group.get(fixed_half) if fixed_half is not None else None

    def word(r: NonInferiority) -> str:
        bound = "—" if r.upper is None else f"{r.upper:+.3f}"
        return f"{r.group} {r.comparison.mean_difference:+.3f} (bound {bound}, {r.verdict})"

    rows = "; ".join(word(r) for r in mine)
    head = f"vs m0.9 at full length, margin {_fmt_margin(margin)}: {rows}"
    if control is not None:
        head += f"; control {word(control)}"
    if all(r.verdict == INFERIOR for r in mine):
        return ClaimResult("C3", CONTRADICTED, f"{head}: every LCAM group inferior",
                           comparisons, mde, margin=margin)
    if control is not None and control.verdict == NON_INFERIOR:
        return ClaimResult("C3", NOT_SPECIFIC,
                           f"{head}: fixed 0.9 at half length is non-inferior too",
                           comparisons, mde, margin=margin)
    if any(r.verdict == NON_INFERIOR for r in mine):
        if control is None:
            return ClaimResult("C3", INCONCLUSIVE,
                               f"{head}: no m0.9-half control to tell LCAM from the schedule",
                               comparisons, mde, margin=margin)
        return ClaimResult("C3", SUPPORTED, f"{head}: non-inferior, and m0.9-half is not",
                           comparisons, mde, margin=margin)
    return ClaimResult("C3", INCONCLUSIVE, f"{head}: neither shown", comparisons, mde,
                       margin=margin)


def epochs_ratio_description(
    family: Sequence[PairedComparison], means: Mapping[str, float]
) -> ClaimResult:
    """The epochs-to-target ratio inside one schedule, read as a C3-like verdict (a
    description since C3 is tested on half-length runs).

    Supported if an LCAM group's ratio is lower than m0.9's own and its bootstrap CI
    (mean ratio = m0.9's mean + the paired difference) is at or below 0.6; contradicted
    if none is and one is slower than m0.9 beyond noise (``higher``), or every one is
    ``higher`` or ``equivalent``, or every one has its lower confidence bound above
    0.6; inconclusive otherwise."""
    unit = "of the epochs"
    if not family:
        return ClaimResult("C3", INCONCLUSIVE, "no LCAM group with common seeds", (), None, unit)
    mde = _min_mde(family)
    fixed = family[0].against
    base = means.get(fixed, float("nan"))

    def upper(c: PairedComparison) -> float:
        return base + (c.ci_bootstrap[1] if c.ci_bootstrap else float("inf"))

    def lower(c: PairedComparison) -> float:
        return base + (c.ci_bootstrap[0] if c.ci_bootstrap else float("-inf"))

    faster = [c for c in family if c.verdict == LOWER and upper(c) <= HALF_THE_EPOCHS]
    head = f"m0.9 reaches its own final error at {base:.2f} of the epochs"
    if faster:
        best = min(faster, key=lambda c: means.get(c.a, 1.0))
        reason = f"{head}; {best.a} at {means[best.a]:.2f} (CI up to {upper(best):.2f})"
        return ClaimResult("C3", SUPPORTED, reason, tuple(family), mde, unit)
    slower = [c.a for c in family if c.verdict == HIGHER]
    if slower:
        reason = (f"{head}; no LCAM group faster by half, {len(slower)} of {len(family)} "
                  f"slower than m0.9 beyond noise ({', '.join(slower)})")
        return ClaimResult("C3", CONTRADICTED, reason, tuple(family), mde, unit)
    if all(c.verdict == EQUIVALENT for c in family) or all(
        lower(c) > HALF_THE_EPOCHS for c in family
    ):
        best_name = min((c.a for c in family), key=lambda n: means.get(n, 1.0))
        reason = (f"{head}; no LCAM group faster by half (fastest {best_name} at "
                  f"{means[best_name]:.2f})")
        return ClaimResult("C3", CONTRADICTED, reason, tuple(family), mde, unit)
    return ClaimResult("C3", INCONCLUSIVE, f"{head}; no group clearly at half",
                       tuple(family), mde, unit)


def late_rise_claim(family: Sequence[PairedComparison]) -> ClaimResult:
    """C5 from the rise family (``m0.95`` vs ``m0.9`` first, then each LCAM group vs
    ``m0.95``).

    Supported if m0.95's rise exceeds m0.9's and some LCAM group's rise is below
    m0.95's (each beyond noise); contradicted if m0.95's rise is not above m0.9's
    (lower or equivalent), or no LCAM group's rise is lower than m0.95's and one is
    higher beyond noise, or m0.95's rise is there and every LCAM group's is equivalent
    to it; inconclusive otherwise."""
    if not family:
        return ClaimResult("C5", INCONCLUSIVE, "no m0.95 and m0.9 groups to compare", (), None)
    mde = _min_mde(family)
    margin = family[0].margin
    first, rest = family[0], list(family[1:])
    head = f"rise of m0.95 {first.mean_difference:+.2f} points vs m0.9 ({first.verdict})"
    avoiding = [c.a for c in rest if c.verdict == LOWER]
    worse = [c.a for c in rest if c.verdict == HIGHER]
    if first.verdict == HIGHER and avoiding:
        return ClaimResult("C5", SUPPORTED, f"{head}; lower rise: {', '.join(avoiding)}",
                           tuple(family), mde, margin=margin)
    if first.verdict in (LOWER, EQUIVALENT):
        return ClaimResult("C5", CONTRADICTED, f"{head}: no abnormal increase to avoid",
                           tuple(family), mde, margin=margin)
    if worse and not avoiding:
        return ClaimResult("C5", CONTRADICTED,
                           f"{head}; higher rise than m0.95 beyond noise: {', '.join(worse)}",
                           tuple(family), mde, margin=margin)
    if first.verdict == HIGHER and rest and all(c.verdict == EQUIVALENT for c in rest):
        return ClaimResult("C5", CONTRADICTED,
                           f"{head}; every LCAM group rises as much (within the margin)",
                           tuple(family), mde, margin=margin)
    return ClaimResult("C5", INCONCLUSIVE, head, tuple(family), mde, margin=margin)
