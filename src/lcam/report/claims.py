"""The paper's claims, tested on one preset's runs: a verdict for each of C1-C5.

Each claim is decided from paired comparisons (:mod:`lcam.report.paired`) over the
seeds the groups share, Holm-corrected within its family, with the stated
equivalence margin:

- **C1** LCAM beats fixed 0.9 in final test error. Family: the preset's final-error
  comparisons (:func:`lcam.report.comparisons.preset_comparisons`); read: each LCAM
  group against ``m0.9``.
- **C2** The better direction depends on the data set: the sign of ``m0.95_0.9 -
  m0.9_0.95``. Per preset the swap comparison gives a direction; the verdict across
  data sets is made by :func:`direction_verdict`.
- **C3** LCAM reaches fixed 0.9's final error in about half the epochs. Per seed ``s``
  and group ``g``: the first epoch at which ``g``'s test error is at or below seed
  ``s``'s ``m0.9`` final error, divided by the epochs (a run that never gets there
  counts as ``(epochs + 1) / epochs``). ``m0.9``'s own ratio (the first epoch at or
  below its own final error) is the baseline. Family: each LCAM group's ratio
  against ``m0.9``'s, margin :data:`RATIO_MARGIN`.
- **C4** The gain is not explained by the larger average step: each LCAM group
  against its matched control (same family as C1).
- **C5** Fixed 0.95 shows an "abnormal increase" of test error late in training and
  LCAM avoids it. Per run the rise is final minus best test error. Family: ``m0.95``
  against ``m0.9``, and each LCAM group against ``m0.95``.

Verdicts: ``supported``, ``contradicted`` or ``inconclusive`` (see each function).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lcam.report.comparisons import (
    EQUIVALENCE_MARGIN,
    VS_CONTROL,
    VS_FIXED,
    VS_SWAP,
    correct,
    preset_comparisons,
)
from lcam.report.paired import EQUIVALENT, HIGHER, LOWER, PairedComparison
from lcam.report.runs import GroupSpec, Run

__all__ = [
    "CLAIMS",
    "CONTRADICTED",
    "INCONCLUSIVE",
    "RATIO_MARGIN",
    "SUPPORTED",
    "ClaimResult",
    "PresetClaims",
    "direction_verdict",
    "evaluate",
]

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
RATIO_MARGIN = 0.1
"""Equivalence margin of C3, in fractions of the run's epochs."""
HALF_THE_EPOCHS = 0.6
"""C3 needs the ratio's upper confidence bound at or below this ("about half")."""

CLAIMS: dict[str, str] = {
    "C1": "LCAM beats fixed 0.9 in final test error",
    "C2": "The better direction depends on the data set (sign of m0.95_0.9 - m0.9_0.95)",
    "C3": "LCAM reaches fixed 0.9's final error in about half the epochs",
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


@dataclass(frozen=True)
class PresetClaims:
    """Every claim on one preset, and the families of comparisons behind them."""

    preset: str
    seeds: int
    epochs: int | None
    claims: dict[str, ClaimResult]
    final_error: list[PairedComparison] = field(default_factory=list)
    ratio: list[PairedComparison] = field(default_factory=list)
    rise: list[PairedComparison] = field(default_factory=list)
    ratio_means: dict[str, float] = field(default_factory=dict)


def _is_lcam(spec: GroupSpec) -> bool:
    return spec.optimizer == "lcam" and spec.role != "control"


def _fixed(specs: Mapping[str, GroupSpec], momentum: float) -> str | None:
    for name, spec in specs.items():
        if spec.optimizer == "sgd" and spec.role != "control" and spec.momentum is not None \
                and abs(spec.momentum - momentum) < 1e-9:
            return name
    return None


def _min_mde(comparisons: Sequence[PairedComparison]) -> float | None:
    values = [c.minimum_detectable_effect for c in comparisons
              if c.minimum_detectable_effect is not None]
    return min(values) if values else None


def _describe(c: PairedComparison, unit: str = "points") -> str:
    return f"{c.a} {c.mean_difference:+.2f} {unit} vs {c.against} ({c.verdict})"


def _best_of(
    comparisons: Sequence[PairedComparison], claim: str, what: str, unit: str = "points",
) -> ClaimResult:
    """Supported if any comparison is ``lower``; contradicted if none is and every
    one is ``higher`` or ``equivalent``; inconclusive otherwise."""
    mde = _min_mde(comparisons)
    if not comparisons:
        return ClaimResult(claim, INCONCLUSIVE, f"no {what} with common seeds", (), None, unit)
    lower = [c for c in comparisons if c.verdict == LOWER]
    if lower:
        best = min(lower, key=lambda c: c.mean_difference)
        reason = f"{_describe(best, unit)}; {len(lower)} of {len(comparisons)} lower"
        return ClaimResult(claim, SUPPORTED, reason, tuple(comparisons), mde, unit)
    if all(c.verdict in (HIGHER, EQUIVALENT) for c in comparisons):
        counts = {v: sum(c.verdict == v for c in comparisons) for v in (HIGHER, EQUIVALENT)}
        reason = (f"no {what} lower: {counts[HIGHER]} higher, {counts[EQUIVALENT]} "
                  f"equivalent within the margin")
        return ClaimResult(claim, CONTRADICTED, reason, tuple(comparisons), mde, unit)
    reason = f"no {what} lower beyond noise, not all ruled out"
    return ClaimResult(claim, INCONCLUSIVE, reason, tuple(comparisons), mde, unit)


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
    margin: float = EQUIVALENCE_MARGIN,
) -> PresetClaims:
    """C1-C5 on one preset; ``runs``: group -> seed -> finished run."""
    fixed = _fixed(specs, 0.9)
    fixed95 = _fixed(specs, 0.95)
    lcam = [n for n in specs if _is_lcam(specs[n])]
    finals = {n: {s: r.test_error[-1] for s, r in by_seed.items()} for n, by_seed in runs.items()}
    family = preset_comparisons(specs, finals, fixed_group=fixed, controls=controls,
                                margin=margin, order=list(specs))
    claims: dict[str, ClaimResult] = {}
    claims["C1"] = _best_of([c for c in family if c.kind == VS_FIXED and c.a in lcam],
                            "C1", "LCAM group")
    claims["C4"] = _best_of([c for c in family if c.kind == VS_CONTROL], "C4", "LCAM group")
    claims["C2"] = _direction(family, specs)

    lengths = {len(r.test_error) for by_seed in runs.values() for r in by_seed.values()}
    epochs = lengths.pop() if len(lengths) == 1 else None
    ratio_family: list[PairedComparison] = []
    ratio_means: dict[str, float] = {}
    if fixed is not None and epochs:
        ratios = _ratios(runs, fixed, epochs)
        ratio_means = {n: sum(v.values()) / len(v) for n, v in ratios.items() if v}
        ratio_family = correct([(n, fixed, "epochs ratio vs m0.9's own", ratios[n],
                                 ratios[fixed]) for n in lcam], margin=RATIO_MARGIN)
    claims["C3"] = _half_the_epochs(ratio_family, ratio_means)

    rise = {n: {s: r.test_error[-1] - min(r.test_error) for s, r in by_seed.items()}
            for n, by_seed in runs.items()}
    rise_family: list[PairedComparison] = []
    if fixed is not None and fixed95 is not None:
        planned = [(fixed95, fixed, "rise vs m0.9", rise[fixed95], rise[fixed])]
        planned += [(n, fixed95, "rise vs m0.95", rise[n], rise[fixed95]) for n in lcam]
        rise_family = correct(planned, margin=margin)
    claims["C5"] = _late_rise(rise_family, fixed95)
    seeds = max((len(v) for v in runs.values()), default=0)
    return PresetClaims(preset=preset, seeds=seeds, epochs=epochs, claims=claims,
                        final_error=family, ratio=ratio_family, rise=rise_family,
                        ratio_means=ratio_means)


def _direction(family: Sequence[PairedComparison], specs: Mapping[str, GroupSpec]) -> ClaimResult:
    swap = [c for c in family if c.kind == VS_SWAP and _momenta(specs[c.a]) == (0.95, 0.9)]
    if not swap:
        return ClaimResult("C2", INCONCLUSIVE, "no m0.95_0.9 / m0.9_0.95 pair", (), None)
    (c,) = swap
    reason = f"m0.95_0.9 - m0.9_0.95 = {c.mean_difference:+.2f} points ({c.verdict})"
    return ClaimResult("C2", INCONCLUSIVE, reason, (c,), c.minimum_detectable_effect,
                       direction=c.verdict)


def _momenta(spec: GroupSpec) -> tuple[float | None, float | None]:
    return (spec.momentum_below, spec.momentum_above)


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


def _half_the_epochs(
    family: Sequence[PairedComparison], means: Mapping[str, float]
) -> ClaimResult:
    """Supported if an LCAM group's ratio is lower than m0.9's own and its bootstrap CI
    (mean ratio = m0.9's mean + the paired difference) is at or below 0.6; contradicted
    if no group is lower (each higher or equivalent) or every group's ratio has its
    lower confidence bound above 0.6; inconclusive otherwise."""
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
    if all(c.verdict in (HIGHER, EQUIVALENT) for c in family) or all(
        lower(c) > HALF_THE_EPOCHS for c in family
    ):
        best_name = min((c.a for c in family), key=lambda n: means.get(n, 1.0))
        reason = (f"{head}; no LCAM group faster by half (fastest {best_name} at "
                  f"{means[best_name]:.2f})")
        return ClaimResult("C3", CONTRADICTED, reason, tuple(family), mde, unit)
    return ClaimResult("C3", INCONCLUSIVE, f"{head}; no group clearly at half",
                       tuple(family), mde, unit)


def _late_rise(family: Sequence[PairedComparison], fixed95: str | None) -> ClaimResult:
    """Supported if m0.95's rise exceeds m0.9's and some LCAM group's rise is below
    m0.95's; contradicted if m0.95's rise is not above m0.9's (lower or equivalent);
    inconclusive otherwise."""
    if not family or fixed95 is None:
        return ClaimResult("C5", INCONCLUSIVE, "no m0.95 and m0.9 groups to compare", (), None)
    mde = _min_mde(family)
    first, rest = family[0], family[1:]
    head = f"rise of m0.95 {first.mean_difference:+.2f} points vs m0.9 ({first.verdict})"
    if first.verdict == HIGHER and any(c.verdict == LOWER for c in rest):
        avoiding = [c.a for c in rest if c.verdict == LOWER]
        return ClaimResult("C5", SUPPORTED, f"{head}; lower rise: {', '.join(avoiding)}",
                           tuple(family), mde)
    if first.verdict in (LOWER, EQUIVALENT):
        return ClaimResult("C5", CONTRADICTED, f"{head}: no abnormal increase to avoid",
                           tuple(family), mde)
    return ClaimResult("C5", INCONCLUSIVE, head, tuple(family), mde)
