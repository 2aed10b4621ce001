"""The findings page: the paper's claims C1-C5 tested on several presets.

:func:`collect` reads run directories (as ``lcam report`` does), evaluates every
claim on every preset (:mod:`lcam.report.claims`) and returns a JSON-compatible
summary; :func:`render` turns such a summary into the Markdown of
``docs/FINDINGS.md``. The page is generated from the committed summary only
(``scripts/refresh_findings.py``), and a test checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lcam.report.analysis import find_control, group_order
from lcam.report.claims import CLAIMS, INCONCLUSIVE, PresetClaims, direction_verdict, evaluate
from lcam.report.comparisons import EQUIVALENCE_MARGIN
from lcam.report.controls import merge_controls
from lcam.report.paired import ALPHA, BOOTSTRAP_RESAMPLES, POWER, PairedComparison
from lcam.report.runs import GroupSpec, ReportError, Run, load_runs
from lcam.report.stats import describe

__all__ = ["collect", "readme_table", "render"]


def collect(
    run_dirs: Sequence[Path], presets: Sequence[str], *, margin: float = EQUIVALENCE_MARGIN
) -> dict[str, Any]:
    """Claims C1-C5 on each of ``presets`` (in that order) from the runs under ``run_dirs``."""
    loaded, _ = load_runs([Path(d) for d in run_dirs])
    runs, _ = merge_controls(loaded)
    out: dict[str, Any] = {"margin": margin, "alpha": ALPHA, "power": POWER,
                           "bootstrap_resamples": BOOTSTRAP_RESAMPLES, "presets": {}}
    directions: dict[str, str] = {}
    for preset in presets:
        mine = [r for r in runs if r.preset == preset and r.finished]
        if not mine:
            raise ReportError(f"no finished run of preset {preset!r} under "
                              f"{', '.join(map(str, run_dirs))}")
        result = _evaluate_preset(preset, mine, margin)
        out["presets"][preset] = _preset_json(result, mine)
        directions[preset] = result.claims["C2"].direction or INCONCLUSIVE
    verdict, reason = direction_verdict(directions)
    out["c2_across"] = {"verdict": verdict, "reason": reason, "directions": directions}
    return out


def _evaluate_preset(preset: str, runs: Sequence[Run], margin: float) -> PresetClaims:
    specs: dict[str, GroupSpec] = {}
    by_group: dict[str, dict[int, Run]] = {}
    for run in sorted(runs, key=lambda r: (group_order(r.group), r.seed)):
        specs.setdefault(run.group.name, run.group)
        by_group.setdefault(run.group.name, {})[run.seed] = run
    controls = {name: find_control(name, specs, [], preset) for name in specs}
    return evaluate(preset, specs, by_group, controls=controls, margin=margin)


def _comparison_json(c: PairedComparison) -> dict[str, Any]:
    out = asdict(c)
    out["n"] = c.n
    return out


FAILED_ERROR = 50.0
"""A run that ends above this test error (percent) did not train (diverged)."""


def _preset_json(result: PresetClaims, runs: Sequence[Run]) -> dict[str, Any]:
    finals: dict[str, list[float]] = {}
    for run in sorted(runs, key=lambda r: (group_order(r.group), r.seed)):
        finals.setdefault(run.group.name, []).append(run.test_error[-1])
    seconds = [float(r.result["seconds"]) for r in runs
               if r.result and isinstance(r.result.get("seconds"), (int, float))]
    first = runs[0]
    return {
        "data": first.data, "model": first.model, "epochs": result.epochs,
        "seeds": result.seeds,
        "mean_run_seconds": sum(seconds) / len(seconds) if seconds else None,
        "groups": {name: {"n": len(v), "mean": describe(v).mean, "std": describe(v).std,
                          "failed": sum(e > FAILED_ERROR for e in v)}
                   for name, v in finals.items()},
        "claims": {k: {"verdict": c.verdict, "reason": c.reason, "unit": c.unit,
                       "minimum_detectable_effect": c.minimum_detectable_effect,
                       "direction": c.direction}
                   for k, c in result.claims.items()},
        "final_error": [_comparison_json(c) for c in result.final_error],
        "ratio": [_comparison_json(c) for c in result.ratio],
        "ratio_means": result.ratio_means,
        "rise": [_comparison_json(c) for c in result.rise],
    }


# ---------------------------------------------------------------------------- render


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _ci(pair: Sequence[float] | None, digits: int = 2) -> str:
    return "—" if pair is None else f"[{pair[0]:+.{digits}f}, {pair[1]:+.{digits}f}]"


def _cell(claim: Mapping[str, Any]) -> str:
    verdict = claim["verdict"]
    if claim.get("direction"):
        return f"m0.95_0.9 {claim['direction']}"
    mde = claim.get("minimum_detectable_effect")
    if verdict == INCONCLUSIVE and mde is not None:
        unit = "" if claim.get("unit") == "points" else " of the epochs"
        return f"inconclusive (MDE {mde:.2f}{unit})"
    return verdict


def verdict_table(summary: Mapping[str, Any]) -> list[str]:
    """The claims x data sets table, one Markdown line a row."""
    presets: Mapping[str, Any] = summary["presets"]
    names = list(presets)
    lines = [
        "| claim | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key, title in CLAIMS.items():
        cells = [_cell(presets[n]["claims"][key]) for n in names]
        if key == "C2":
            title = f"{title}; across data sets: **{summary['c2_across']['verdict']}**"
        lines.append(f"| **{key}** {title} | " + " | ".join(cells) + " |")
    return lines


def readme_table(summary: Mapping[str, Any]) -> str:
    """The README's copy of the verdict table, with its caption (ends with a newline)."""
    machine = summary.get("machine") or {}
    seeds = ", ".join(f"`{n}` {p['seeds']}" for n, p in summary["presets"].items())
    lines = [
        f"Seeds per group: {seeds}; equivalence margin ±{summary['margin']} points; "
        f"measured on {machine.get('cpu', 'an unrecorded machine')}, torch "
        f"{machine.get('torch', '?')}.",
        "",
        *verdict_table(summary),
    ]
    return "\n".join(lines) + "\n"


def render(summary: Mapping[str, Any]) -> str:
    """``docs/FINDINGS.md`` for ``summary`` (as :func:`collect` returns it, plus the
    ``sweep`` and ``machine`` entries the refresh script adds)."""
    presets: Mapping[str, Any] = summary["presets"]
    names = list(presets)
    margin = summary["margin"]
    lines = [
        "# Findings: the paper's claims, tested with paired seeds",
        "",
        "<!-- Generated by scripts/refresh_findings.py from docs/findings/summary.json; "
        "do not edit by hand. -->",
        "",
        _intro(summary),
        "",
        "## Verdicts",
        "",
        *verdict_table(summary),
    ]
    lines += ["", _legend(margin), ""]
    lines += ["## Why each verdict", ""]
    for key in CLAIMS:
        for name in names:
            claim = presets[name]["claims"][key]
            lines.append(f"- **{key}, `{name}`**: {claim['verdict']}: {claim['reason']}.")
    across = summary["c2_across"]
    lines.append(f"- **C2 across data sets**: {across['verdict']}: {across['reason']}.")
    lines.append("")
    for name in names:
        lines += _preset_section(name, presets[name], summary)
    lines += _demo_choice(summary)
    lines += _method(summary)
    return "\n".join(lines).rstrip() + "\n"


DEMO_SEEDS, DEMO_WORKERS, DEMO_BUDGET_SECONDS = 3, 2, 180


def _demo_choice(summary: Mapping[str, Any]) -> list[str]:
    """Why ``lcam demo`` runs digits (or not), from the measured run times."""
    presets = summary["presets"]
    if "digits" not in presets or "mnist1d" not in presets:
        return []
    estimate = {}
    for name in ("digits", "mnist1d"):
        seconds = presets[name].get("mean_run_seconds")
        if seconds is None:
            return []
        runs = len(presets[name]["groups"]) * DEMO_SEEDS
        estimate[name] = (runs, runs * seconds / DEMO_WORKERS)
    digits, mnist1d = estimate["digits"], estimate["mnist1d"]
    return [
        "## The demo's data set",
        "",
        f"`lcam demo` must finish within {DEMO_BUDGET_SECONDS // 60} minutes on 2 cores. "
        f"With {DEMO_SEEDS} seeds and {DEMO_WORKERS} workers, the measured run times "
        f"above give {digits[1]:.0f} s of training for `digits` ({digits[0]} runs) and "
        f"{mnist1d[1]:.0f} s for `mnist1d` ({mnist1d[0]} runs), before start-up and the "
        "report. MNIST-1D does not fit the budget, and with 3 seeds neither data set "
        "would separate any two groups (the minimum detectable effects above are for "
        f"{presets['mnist1d']['seeds']} seeds; with 3 they are several times larger). "
        "So the demo stays on `digits`: it shows the pipeline; this page shows the "
        "evidence.",
        "",
    ]


def _intro(summary: Mapping[str, Any]) -> str:
    sweep = summary.get("sweep") or {}
    machine = summary.get("machine") or {}
    parts = [
        "Every number below comes from the runs of one command, "
        f"`{sweep.get('command', 'lcam sweep evidence --out runs/evidence --jobs 2')}`, "
        "and is regenerated from them by "
        f"`{sweep.get('refresh', 'python scripts/refresh_findings.py runs/evidence')}`.",
    ]
    if sweep.get("seconds") is not None:
        parts.append(
            f"The sweep ({sweep.get('runs', '?')} runs) took {sweep['seconds'] / 60:.0f} "
            f"min{sweep.get('conditions', '')}."
        )
    if machine:
        parts.append(
            f"Machine: {machine.get('cpu', '?')} ({machine.get('cpus', '?')} CPUs), torch "
            f"{machine.get('torch', '?')}, {machine.get('platform', '?')}. Results of the "
            "same seed differ slightly between CPU types (float reductions differ), so "
            "rerunning elsewhere gives close, not identical, numbers."
        )
    return " ".join(parts)


def _legend(margin: float) -> str:
    return (
        "*supported*: the claimed effect is there beyond the seed noise (paired t-test, "
        "Holm-corrected over the preset's comparisons, p < 0.05). *contradicted*: the "
        f"opposite is shown, or the effect is shown to be smaller than ±{margin} points "
        "(two one-sided tests, p < 0.05). *inconclusive*: neither; MDE is the smallest "
        "effect (points of test error, or fraction of the epochs for C3) that this many "
        "seeds would have detected with 80% power. For C2 each cell gives the sign of "
        "`m0.95_0.9 - m0.9_0.95` (lower = `m0.95_0.9` has the lower error)."
    )


def _comparison_rows(comparisons: Sequence[Mapping[str, Any]], digits: int = 2) -> list[str]:
    rows = [
        "| A | B | n | mean A−B | 95% CI (t) | 95% CI (bootstrap) | p (t) | p (Wilcoxon) "
        "| p (Holm) | P(A<B) [95% CI] | MDE | p (TOST) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        prob = c["probability_lower"]
        prob_ci = c["probability_lower_ci"]
        prob_text = f"{prob:.2f}" + (f" [{prob_ci[0]:.2f}, {prob_ci[1]:.2f}]" if prob_ci else "")
        rows.append(
            f"| {c['a']} | {c['against']} | {c['n']} | {c['mean_difference']:+.{digits}f} | "
            f"{_ci(c['ci_t'], digits)} | {_ci(c['ci_bootstrap'], digits)} | {_p(c['p_t'])} | "
            f"{_p(c['p_wilcoxon'])} | {_p(c['p_holm'])} | {prob_text} | "
            f"{_num(c['minimum_detectable_effect'], digits)} | {_p(c['p_equivalence'])} | "
            f"{c['verdict']} |"
        )
    return rows


def _preset_section(name: str, preset: Mapping[str, Any], summary: Mapping[str, Any]) -> list[str]:
    lines = [
        f"## `{name}`: {preset['data']}, {preset['model']}, {preset['epochs']} epochs, "
        f"{preset['seeds']} seeds",
        "",
    ]
    figure = (summary.get("figures") or {}).get(name)
    if figure:
        lines += [f"![{name}: test error and train loss per epoch]({figure})", ""]
    lines += ["| group | final test error, % (mean ± std) | seeds | runs that diverged "
              f"(final error > {FAILED_ERROR:g}%) |", "|---|---|---|---|"]
    for group, stats in preset["groups"].items():
        lines.append(f"| {group} | {stats['mean']:.2f} ± {_num(stats['std'])} | {stats['n']} "
                     f"| {stats['failed']} |")
    note = (summary.get("notes") or {}).get(name)
    if note:
        lines += ["", note]
    if preset.get("mean_run_seconds") is not None:
        lines += ["", f"One run trains in {preset['mean_run_seconds']:.1f} s on average "
                  "(`result.json`'s `seconds`, two runs at a time)."]
    lines += ["", "Final test error (points), paired by seed (C1, C2, C4):", ""]
    lines += _comparison_rows(preset["final_error"])
    if preset["ratio"]:
        means = ", ".join(f"{g} {v:.2f}" for g, v in preset["ratio_means"].items())
        lines += ["", "Epochs to reach the same seed's m0.9 final error, as a fraction of the "
                  f"epochs (C3; mean per group: {means}):", ""]
        lines += _comparison_rows(preset["ratio"], digits=3)
    if preset["rise"]:
        lines += ["", "Rise of test error after the best epoch, final − best (points, C5):", ""]
        lines += _comparison_rows(preset["rise"])
    lines.append("")
    return lines


def _method(summary: Mapping[str, Any]) -> list[str]:
    return [
        "## How the verdicts are made",
        "",
        "- Runs of one seed share their initial weights and their batch order across "
        "groups (tested in `tests/test_paired_runs.py`), so every comparison is paired: "
        "the unit is the per-seed difference A − B.",
        "- 95% confidence intervals: t-based and bootstrap (percentile, "
        f"{summary['bootstrap_resamples']} resamples of the seeds, fixed generator seed). "
        "Tests: paired t-test and Wilcoxon signed-rank; Holm-Bonferroni over each "
        "preset's family of comparisons (final error: each group vs m0.9, each LCAM "
        "group vs its control, each pair vs its swap; C3 and C5 are families of their own).",
        "- P(A<B): the fraction of seeds on which A has the lower value (ties count "
        "half), with a bootstrap CI.",
        f"- MDE: the smallest mean difference a paired t-test at level 0.05/m (m "
        f"comparisons in the family, Holm's strictest step) detects with "
        f"{summary['power']:.0%} power, from the observed spread of the differences.",
        f"- Equivalence: two one-sided t-tests (TOST) at ±{summary['margin']} points of "
        "test error (±0.1 of the epochs for C3).",
        "- The protocol of each preset (lr, batch size, epochs chosen once for fixed "
        "momentum 0.9, then frozen for every group) is in `lcam presets --show NAME` "
        "and in [HARNESS.md](HARNESS.md).",
        "",
    ]
