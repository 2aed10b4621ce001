"""The findings summary: the paper's claims C1-C5 on several presets, as JSON.

:func:`collect` reads run directories (as ``lcam report`` does), evaluates every
claim on every preset (:mod:`lcam.report.claims`) at two margins, the paper-scaled
one (:mod:`lcam.report.margins`, 4% of fixed 0.9's error) and the previous ±0.3
points, adds the C2 crossovers between arms (:mod:`lcam.report.crossover`), and
returns a JSON-compatible summary. :func:`previous` re-evaluates an earlier committed
summary (whose runs are gone) from its stored per-seed differences
(:mod:`lcam.report.reevaluate`). :mod:`lcam.report.findings_page` turns the summary
into ``docs/FINDINGS.md``; ``scripts/refresh_findings.py`` writes both, and a test
checks that they agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lcam.report.analysis import find_control, group_order
from lcam.report.claims import (
    INCONCLUSIVE,
    ClaimResult,
    PresetClaims,
    direction_verdict,
    evaluate,
)
from lcam.report.controls import merge_controls
from lcam.report.crossover import crossover_verdict, interaction
from lcam.report.margins import ABSOLUTE_MARGIN, PAPER_GAIN, RELATIVE_MARGIN, margin_source
from lcam.report.noninferiority import NonInferiority
from lcam.report.paired import ALPHA, BOOTSTRAP_RESAMPLES, POWER, PairedComparison
from lcam.report.reevaluate import reevaluate_preset
from lcam.report.runs import GroupSpec, ReportError, Run, load_runs
from lcam.report.stats import describe

__all__ = ["FAILED_ERROR", "collect", "previous"]

FAILED_ERROR = 50.0
"""A run of a 10-class preset that ends above this test error (percent) did not
train (diverged); 100-class presets use :data:`FAILED_ERROR_100`."""
FAILED_ERROR_100 = 95.0


def collect(
    run_dirs: Sequence[Path],
    presets: Sequence[str],
    *,
    crossovers: Sequence[tuple[str, str, str]] = (),
) -> dict[str, Any]:
    """Claims C1-C5 on each of ``presets`` (in that order) from the runs under
    ``run_dirs``, at both margins; ``crossovers``: ``(fine, coarse, label)`` pairs of
    presets (100 classes against 10) for C2."""
    runs: list[Run] = []
    if presets:
        loaded, _ = load_runs([Path(d) for d in run_dirs])
        runs, _ = merge_controls(loaded)
    out: dict[str, Any] = {
        "margin_rule": {"relative": RELATIVE_MARGIN, "absolute": ABSOLUTE_MARGIN,
                        "paper_gain": list(PAPER_GAIN), "source": margin_source()},
        "alpha": ALPHA, "power": POWER, "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
        "presets": {}, "crossover": [],
    }
    results: dict[str, tuple[PresetClaims, PresetClaims]] = {}
    for preset in presets:
        mine = [r for r in runs if r.preset == preset and r.finished]
        if not mine:
            raise ReportError(f"no finished run of preset {preset!r} under "
                              f"{', '.join(map(str, run_dirs))}")
        relative = _evaluate_preset(preset, mine, None)
        absolute = _evaluate_preset(preset, mine, ABSOLUTE_MARGIN)
        results[preset] = (relative, absolute)
        out["presets"][preset] = preset_json(relative, absolute, _run_facts(mine))
    for fine, coarse, label in crossovers:
        out["crossover"].append(_crossover_json(fine, coarse, label, results))
    return out


def previous(summary: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """An earlier summary's presets re-evaluated at both margins from their stored
    per-seed differences (its runs are not needed), with its C2 across data sets."""
    presets: dict[str, Any] = {}
    directions: dict[str, dict[str, str]] = {"relative": {}, "absolute": {}}
    for name, stored in summary["presets"].items():
        relative = reevaluate_preset(name, stored)
        absolute = reevaluate_preset(name, stored, margin=ABSOLUTE_MARGIN)
        facts = {k: stored.get(k) for k in ("data", "model", "epochs", "seeds",
                                              "mean_run_seconds", "groups")}
        presets[name] = preset_json(relative, absolute, facts)
        directions["relative"][name] = relative.claims["C2"].direction or INCONCLUSIVE
        directions["absolute"][name] = absolute.claims["C2"].direction or INCONCLUSIVE
    verdict, reason = direction_verdict(directions["relative"])
    verdict_abs, reason_abs = direction_verdict(directions["absolute"])
    return {
        "source": source,
        "presets": presets,
        "c2_across": {"verdict": verdict, "reason": reason,
                      "directions": directions["relative"],
                      "verdict_absolute": verdict_abs, "reason_absolute": reason_abs,
                      "directions_absolute": directions["absolute"]},
        **{k: summary[k] for k in ("sweep", "machine", "notes", "figures") if k in summary},
    }


def _evaluate_preset(preset: str, runs: Sequence[Run], margin: float | None) -> PresetClaims:
    specs: dict[str, GroupSpec] = {}
    by_group: dict[str, dict[int, Run]] = {}
    for run in sorted(runs, key=lambda r: (group_order(r.group), r.seed)):
        specs.setdefault(run.group.name, run.group)
        by_group.setdefault(run.group.name, {})[run.seed] = run
    controls = {name: find_control(name, specs, [], preset) for name in specs}
    return evaluate(preset, specs, by_group, controls=controls, margin=margin)


def _run_facts(runs: Sequence[Run]) -> dict[str, Any]:
    """What the page says about a preset's runs besides the claims."""
    finals: dict[str, list[float]] = {}
    fractions: dict[str, float] = {}
    epochs: dict[str, int] = {}
    for run in sorted(runs, key=lambda r: (group_order(r.group), r.seed)):
        finals.setdefault(run.group.name, []).append(run.test_error[-1])
        fractions[run.group.name] = run.group.schedule_fraction
        epochs[run.group.name] = run.epochs_completed
    seconds = [float(r.result["seconds"]) for r in runs
               if r.result and isinstance(r.result.get("seconds"), (int, float))]
    full = [r for r in runs if not r.group.shortened]
    first = runs[0]
    failed = FAILED_ERROR_100 if (first.data or "").endswith("100") \
        or first.preset.endswith("-100") else FAILED_ERROR
    return {
        "data": first.data, "model": first.model,
        "epochs": max((r.epochs_completed for r in full), default=None),
        "seeds": max(len(v) for v in finals.values()),
        "mean_run_seconds": sum(seconds) / len(seconds) if seconds else None,
        "failed_error": failed,
        "groups": {name: {"n": len(v), "mean": describe(v).mean, "std": describe(v).std,
                          "failed": sum(e > failed for e in v),
                          "schedule_fraction": fractions[name], "epochs": epochs[name]}
                   for name, v in finals.items()},
    }


def comparison_json(c: PairedComparison) -> dict[str, Any]:
    out = asdict(c)
    out["n"] = c.n
    return out


def claim_json(c: ClaimResult) -> dict[str, Any]:
    return {"verdict": c.verdict, "reason": c.reason, "unit": c.unit,
            "minimum_detectable_effect": c.minimum_detectable_effect,
            "direction": c.direction, "margin": c.margin}


def _non_inferiority_json(r: NonInferiority) -> dict[str, Any]:
    return {"group": r.group, "against": r.comparison.against, "margin": r.margin,
            "alpha": r.alpha, "lower": r.lower, "upper": r.upper, "p_value": r.p_value,
            "verdict": r.verdict, "comparison": comparison_json(r.comparison)}


def preset_json(
    relative: PresetClaims, absolute: PresetClaims, facts: Mapping[str, Any]
) -> dict[str, Any]:
    """One preset's entry: ``facts`` (data, model, groups, ...), the claims at both
    margins and the families at the paper-scaled margin."""
    return {
        **facts,
        "fixed_mean": relative.fixed_mean,
        "margin": relative.margin,
        "margin_absolute": absolute.margin,
        "claims": {k: claim_json(c) for k, c in relative.claims.items()},
        "claims_absolute": {k: claim_json(c) for k, c in absolute.claims.items()},
        "final_error": [comparison_json(c) for c in relative.final_error],
        "half": [_non_inferiority_json(r) for r in relative.half],
        "ratio": [comparison_json(c) for c in relative.ratio],
        "ratio_means": relative.ratio_means,
        "ratio_claim": None if relative.ratio_claim is None
        else claim_json(relative.ratio_claim),
        "rise": [comparison_json(c) for c in relative.rise],
    }


def _swap(result: PresetClaims) -> PairedComparison | None:
    comparisons = result.claims["C2"].comparisons
    return comparisons[0] if comparisons else None


def _crossover_json(
    fine: str, coarse: str, label: str,
    results: Mapping[str, tuple[PresetClaims, PresetClaims]],
) -> dict[str, Any]:
    out: dict[str, Any] = {"fine": fine, "coarse": coarse, "label": label}
    for key, index in (("", 0), ("_absolute", 1)):
        d_fine, d_coarse = _swap(results[fine][index]), _swap(results[coarse][index])
        if d_fine is None or d_coarse is None:
            out["verdict" + key], out["reason" + key] = (
                INCONCLUSIVE, "an arm lacks the m0.95_0.9 / m0.9_0.95 pair")
            continue
        verdict, reason = crossover_verdict(d_fine, d_coarse, fine_name=fine,
                                            coarse_name=coarse)
        out["verdict" + key], out["reason" + key] = verdict, reason
        if index == 0:
            inter = interaction(d_fine.differences, d_coarse.differences)
            out["interaction"] = asdict(inter)
            fixed = [results[fine][0].fixed_mean, results[coarse][0].fixed_mean]
            out["relative"] = {  # d / fixed 0.9's mean error on each arm, in percent
                name: None if base is None or not math.isfinite(base) else
                100.0 * c.mean_difference / base
                for name, base, c in ((fine, fixed[0], d_fine), (coarse, fixed[1], d_coarse))
            }
    return out
