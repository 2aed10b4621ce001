"""From loaded runs to every number of the report (one `PresetResult` per preset).

Per preset the runs are split by momentum group. Only *finished* runs enter the
statistics; *partial* runs are listed apart with the epochs they have. Within a group
every finished run must have the same number of epochs.

Special groups, read from ``config.json`` (never from the group's name):

- the *fixed-0.9 group*: optimizer ``sgd`` with momentum 0.9 (a non-control group is
  preferred when several qualify). Its mean final test error is the *target* of the
  epochs-to-target column (the paper's "half the iterations" claim): the first epoch
  count at which a group's mean-over-seeds test-error curve is at or below it, also
  given as a fraction of that group's epochs.
- the *matched control* of an LCAM group ``G``: the group whose config says
  ``"role": "control"`` with ``G`` in its ``"matched_to"`` list. One control may serve
  several LCAM groups (a pair and its swap); old run directories with one control per
  LCAM group of the same momentum arrive here already merged into one
  (`lcam.report.controls.merge_controls`).

Runs of one seed share initial weights and data order across groups, so the
comparisons that decide are *paired* by seed (`PresetResult.comparisons`,
`lcam.report.comparisons`): each group against the fixed-0.9 group, each LCAM group
against its control and each pair against its swap, Holm-corrected together, with
minimum detectable effects and an equivalence test. Welch's unpaired t-test stays
beside them (`GroupResult.vs_fixed` / `vs_control`, the best-group check) for runs
whose seed sets differ (see `lcam.report.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from lcam.report import paper, wording
from lcam.report.comparisons import EQUIVALENCE_MARGIN, preset_comparisons
from lcam.report.paired import PairedComparison
from lcam.report.runs import GroupSpec, ReportError, Run
from lcam.report.stats import Comparison, SampleStats, describe, epochs_to_target, mean_curve, welch

__all__ = [
    "BestGroup",
    "GroupResult",
    "PresetResult",
    "RunSummary",
    "analyze",
    "find_control",
    "group_order",
    "summarize_run",
]

_T = TypeVar("_T")

FIXED_MOMENTUM = 0.9
# result.json's final_test_error may differ from the last metrics line by rounding only.
_FINAL_MISMATCH_TOLERANCE = 1e-6


@dataclass(frozen=True)
class RunSummary:
    """One run as listed in the report (finals are ``None`` before the first epoch)."""

    preset: str
    group: str
    seed: int
    path: str
    status: str
    epochs_completed: int
    epochs_planned: int
    final_test_error: float | None
    best_test_error: float | None
    best_epoch: int | None
    mean_fraction_above: float | None


@dataclass(frozen=True)
class GroupResult:
    """Statistics of one momentum group over its finished seeds."""

    name: str
    optimizer: str
    momentum: float | None
    momentum_below: float | None
    momentum_above: float | None
    role: str | None
    matched_to: tuple[str, ...] | None
    momentum_text: str
    finished_seeds: list[int]
    partial_seeds: list[int]
    epochs: int | None
    final_test_error: SampleStats | None
    best_test_error: SampleStats | None
    best_epoch: SampleStats | None
    epochs_to_target: int | None
    epochs_to_target_fraction: float | None
    fraction_above: float | None
    vs_fixed: Comparison | None
    vs_control: Comparison | None
    paper_column: str | None
    paper_value: paper.PaperValue | None
    mean_test_error_curve: list[float]


@dataclass(frozen=True)
class BestGroup:
    """The group with the lowest mean final error, and whether that is beyond noise."""

    group: str
    mean: float
    clear: bool
    comparisons: list[Comparison]


@dataclass(frozen=True)
class PresetResult:
    """Everything the report says about one preset."""

    preset: str
    data: str | None
    model: str | None
    schedule: str | None
    groups: list[GroupResult]
    fixed_group: str | None
    target_error: float | None
    best: BestGroup | None
    paper_row: paper.PaperRow | None
    paper_references: list[paper.PaperReference]
    unmatched_paper_columns: list[str]
    partial_runs: list[RunSummary]
    notes: list[str]
    warnings: list[str]
    figures: list[str] = field(default_factory=list)
    comparisons: list[PairedComparison] = field(default_factory=list)


def summarize_run(run: Run, path: str) -> RunSummary:
    """The per-run line of the report (``path`` as it should be printed)."""
    return RunSummary(
        preset=run.preset,
        group=run.group.name,
        seed=run.seed,
        path=path,
        status=run.status,
        epochs_completed=run.epochs_completed,
        epochs_planned=run.epochs_planned,
        final_test_error=run.final_test_error,
        best_test_error=run.best_test_error,
        best_epoch=run.best_epoch,
        mean_fraction_above=run.mean_fraction_above,
    )


def group_order(spec: GroupSpec) -> tuple[int, float, str]:
    """Sort key: fixed-momentum groups first (by momentum), then LCAM, then controls;
    groups trained on a shortened schedule (``m0.9-half``) after all of them, in the
    same order."""
    shortened = 3 if spec.shortened else 0
    if spec.role == "control":
        return (shortened + 2, 0.0, spec.name)
    if spec.optimizer == "sgd":
        momentum = spec.momentum if spec.momentum is not None else math.inf
        return (shortened, momentum, spec.name)
    return (shortened + 1, 0.0, spec.name)


def _is_fixed_09(spec: GroupSpec) -> bool:
    """Fixed momentum 0.9 on the full schedule (``m0.9-half`` is compared against it)."""
    return (
        spec.optimizer == "sgd"
        and not spec.shortened
        and spec.momentum is not None
        and math.isclose(spec.momentum, FIXED_MOMENTUM, rel_tol=0.0, abs_tol=1e-9)
    )


def _one_value(runs: Sequence[Run], what: str, get: Callable[[Run], _T], preset: str) -> _T:
    """The value every run agrees on, or a ReportError naming two disagreeing runs."""
    first = runs[0]
    for run in runs[1:]:
        if get(run) != get(first):
            raise ReportError(
                f"preset {preset}: runs disagree on {what}: {get(first)!r} in {first.path} "
                f"but {get(run)!r} in {run.path}"
            )
    return get(first)


def analyze(
    runs: Sequence[Run], display_path: dict[int, str], *, margin: float = EQUIVALENCE_MARGIN
) -> list[PresetResult]:
    """Analyze all runs, one `PresetResult` per preset (sorted by preset name).

    ``display_path`` maps ``id(run)`` to the path the report prints for it; ``margin``
    is the equivalence margin of the paired comparisons (points of test error).
    """
    by_preset: dict[str, list[Run]] = {}
    for run in runs:
        by_preset.setdefault(run.preset, []).append(run)
    return [_analyze_preset(name, by_preset[name], display_path, margin)
            for name in sorted(by_preset)]


def _analyze_preset(
    preset: str, runs: list[Run], display_path: dict[int, str], margin: float
) -> PresetResult:
    data = _one_value(runs, "the data set ('data')", lambda r: r.data, preset)
    model = _one_value(runs, "the model ('model')", lambda r: r.model, preset)
    schedule = _one_value(runs, "the schedule ('schedule')", lambda r: r.schedule, preset)

    by_group: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.group.name, r.seed)):
        by_group.setdefault(run.group.name, []).append(run)
    specs: dict[str, GroupSpec] = {}
    for name, group_runs in by_group.items():
        specs[name] = _one_value(
            group_runs, f"the settings of group {name}", lambda r: r.group, preset
        )
    names = sorted(specs, key=lambda n: group_order(specs[n]))

    warnings = _consistency_warnings(runs)
    finished = {n: [r for r in by_group[n] if r.finished] for n in names}
    finals = {n: [_final(r) for r in finished[n]] for n in names}
    fixed_group = _find_fixed_group(specs, warnings, preset)
    target = describe(finals[fixed_group]).mean if fixed_group and finals[fixed_group] else None
    row = paper.find_row(data, model, schedule)

    groups = []
    controls = {name: find_control(name, specs, warnings, preset) for name in names}
    for name in names:
        control = controls[name]
        groups.append(
            _analyze_group(
                specs[name],
                by_group[name],
                finals,
                fixed_group=fixed_group,
                control=control,
                target=target,
                row=row,
                preset=preset,
            )
        )
    best = _best_group(groups, finals)
    partial = [
        summarize_run(r, display_path[id(r)]) for n in names for r in by_group[n] if not r.finished
    ]
    mapped = {g.paper_column for g in groups if g.paper_column}
    unmatched = [c.name for c in paper.COLUMNS if row is not None and c.name not in mapped]
    result = PresetResult(
        preset=preset,
        data=data,
        model=model,
        schedule=schedule,
        groups=groups,
        fixed_group=fixed_group,
        target_error=target,
        best=best,
        paper_row=row,
        paper_references=paper.references_for(data, model) if row is not None else [],
        unmatched_paper_columns=unmatched,
        partial_runs=partial,
        notes=[],
        warnings=warnings,
        comparisons=preset_comparisons(
            specs, {n: {r.seed: _final(r) for r in finished[n]} for n in names},
            fixed_group=fixed_group, controls=controls, margin=margin, order=names,
        ),
    )
    result.notes.extend(_notes(result))
    return result


def _final(run: Run) -> float:
    value = run.final_test_error
    if value is None:  # result.json with zero epochs
        raise ReportError(f"{run.path}: finished run has no epochs in metrics.jsonl")
    return value


def _consistency_warnings(runs: Sequence[Run]) -> list[str]:
    warnings: list[str] = []
    for run in runs:
        warnings.extend(run.warnings)
        if not run.finished or run.result is None:
            continue
        if run.epochs_completed != run.epochs_planned:
            warnings.append(
                f"{run.path}: finished after {run.epochs_completed} epochs, but config.json "
                f"planned {run.epochs_planned}"
            )
        reported = run.result.get("final_test_error")
        final = run.final_test_error
        if (
            isinstance(reported, (int, float))
            and final is not None
            and abs(reported - final) > _FINAL_MISMATCH_TOLERANCE
        ):
            warnings.append(
                f"{run.path}: result.json final_test_error {reported} differs from the last "
                f"metrics.jsonl line ({final}); the report uses metrics.jsonl"
            )
    return warnings


def _find_fixed_group(specs: dict[str, GroupSpec], warnings: list[str], preset: str) -> str | None:
    candidates = [n for n in specs if _is_fixed_09(specs[n])]
    preferred = [n for n in candidates if specs[n].role != "control"] or candidates
    if len(preferred) > 1:
        warnings.append(
            f"preset {preset}: several fixed-0.9 SGD groups ({', '.join(preferred)}); "
            f"comparing against {preferred[0]}"
        )
    return preferred[0] if preferred else None


def find_control(
    name: str, specs: Mapping[str, GroupSpec], warnings: list[str], preset: str
) -> str | None:
    """The control group of the LCAM group ``name`` (one whose ``matched_to`` holds it)."""
    if specs[name].optimizer != "lcam":
        return None
    controls = sorted(
        n for n, s in specs.items() if s.role == "control" and name in (s.matched_to or ())
    )
    if len(controls) > 1:
        warnings.append(
            f"preset {preset}: several control groups matched to {name} "
            f"({', '.join(controls)}); comparing against {controls[0]}"
        )
    return controls[0] if controls else None


def _analyze_group(
    spec: GroupSpec,
    runs: list[Run],
    finals: dict[str, list[float]],
    *,
    fixed_group: str | None,
    control: str | None,
    target: float | None,
    row: paper.PaperRow | None,
    preset: str,
) -> GroupResult:
    finished = [r for r in runs if r.finished]
    epochs = None
    curve: list[float] = []
    if finished:
        lengths = {r.epochs_completed for r in finished}
        if len(lengths) > 1:
            detail = ", ".join(f"{r.epochs_completed} in {r.path}" for r in finished)
            raise ReportError(
                f"preset {preset}, group {spec.name}: finished runs have different "
                f"numbers of epochs ({detail})"
            )
        epochs = lengths.pop()
        curve = mean_curve([r.test_error for r in finished])
    own = finals[spec.name]
    reached = epochs_to_target(curve, target) if curve and target is not None else None
    fractions = [f for f in (r.mean_fraction_above for r in finished) if f is not None]

    def compare(other: str | None) -> Comparison | None:
        if other is None or other == spec.name or not own or not finals[other]:
            return None
        return welch(own, finals[other], against=other)

    column = paper.column_for(spec)
    return GroupResult(
        name=spec.name,
        optimizer=spec.optimizer,
        momentum=spec.momentum,
        momentum_below=spec.momentum_below,
        momentum_above=spec.momentum_above,
        role=spec.role,
        matched_to=spec.matched_to,
        momentum_text=spec.describe_momentum(),
        finished_seeds=[r.seed for r in finished],
        partial_seeds=[r.seed for r in runs if not r.finished],
        epochs=epochs,
        final_test_error=describe(own) if own else None,
        best_test_error=describe([_best(r) for r in finished]) if finished else None,
        best_epoch=describe([_best_epoch(r) for r in finished]) if finished else None,
        epochs_to_target=reached,
        epochs_to_target_fraction=reached / epochs if reached is not None and epochs else None,
        fraction_above=sum(fractions) / len(fractions) if fractions else None,
        vs_fixed=compare(fixed_group),
        vs_control=compare(control),
        paper_column=column,
        paper_value=row.value(column) if row is not None and column is not None else None,
        mean_test_error_curve=curve,
    )


def _best(run: Run) -> float:
    value = run.best_test_error
    assert value is not None
    return value


def _best_epoch(run: Run) -> float:
    value = run.best_epoch
    assert value is not None
    return float(value)


def _mean_or_inf(group: GroupResult) -> float:
    stats = group.final_test_error
    return stats.mean if stats is not None and math.isfinite(stats.mean) else math.inf


def _best_group(groups: list[GroupResult], finals: dict[str, list[float]]) -> BestGroup | None:
    ranked = [g for g in groups if g.final_test_error is not None]
    if not ranked:
        return None
    best = min(ranked, key=_mean_or_inf)
    assert best.final_test_error is not None
    comparisons = [
        welch(finals[best.name], finals[g.name], against=g.name) for g in ranked if g is not best
    ]
    return BestGroup(
        group=best.name,
        mean=best.final_test_error.mean,
        clear=all(c.significant for c in comparisons),
        comparisons=comparisons,
    )


def _notes(result: PresetResult) -> list[str]:
    """Plain-language notes: the best group and noise, the comparisons, the paper."""
    notes: list[str] = []
    finished = [g for g in result.groups if g.final_test_error is not None]
    if not finished:
        notes.append("No run of this preset has finished yet, so there is nothing to compare.")
    best = result.best
    if best is not None and len(finished) > 1:
        head = f"Lowest mean final test error: {best.group} ({wording.number(best.mean)}%)."
        if best.clear:
            notes.append(
                f"{head} It is lower than every other group beyond the seed noise "
                "(Welch p < 0.05 against each)."
            )
        else:
            unclear = [c for c in best.comparisons if not c.significant]
            detail = ", ".join(f"{c.against} ({_why(c)})" for c in unclear)
            notes.append(
                f"{head} This is not a clear win: the difference is within noise or untested "
                f"against {detail}. Read the bold value as the lowest mean, not as better."
            )
    if result.fixed_group is None:
        notes.append(
            "There is no fixed-momentum 0.9 SGD group here, so no epochs-to-target and no "
            "comparison against it."
        )
    for group in result.groups:
        for comparison in (group.vs_fixed, group.vs_control):
            if comparison is not None:
                notes.append(wording.comparison_sentence(group.name, comparison))
    if result.target_error is not None:
        for group in result.groups:
            if group.epochs is None or group.name == result.fixed_group:
                continue
            head = (
                f"{group.name} vs {result.fixed_group}'s final mean error "
                f"({wording.number(result.target_error)}%):"
            )
            if group.epochs_to_target is None:
                notes.append(f"{head} never reached within its {group.epochs} epochs.")
            else:
                fraction = group.epochs_to_target_fraction or 0.0
                notes.append(
                    f"{head} reached after {group.epochs_to_target} of {group.epochs} epochs "
                    f"({fraction:.0%}) by the mean over {len(group.finished_seeds)} seed(s)."
                )
    if result.paper_row is not None:
        notes.append(f"This preset is the paper's Table 1 row {result.paper_row.label}.")
        if result.unmatched_paper_columns:
            notes.append(
                "No group here runs the paper's column(s) "
                f"{', '.join(result.unmatched_paper_columns)}."
            )
    if result.partial_runs:
        count = len(result.partial_runs)
        notes.append(
            f"{count} partial run{'s are' if count > 1 else ' is'} listed apart and not "
            "counted in any statistic."
        )
    return notes


def _why(c: Comparison) -> str:
    if c.p_value is None:
        return c.verdict
    return f"{wording.p_value(c.p_value)}"
