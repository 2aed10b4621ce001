"""Render the analysis as ``report.md``.

Layout: title and how to read the numbers; an overview with one line per preset; the
presets that are Table 1 experiments side by side with the paper's values, in its
layout (one row per data set/network, columns M0.9, M0.857-0.93, M0.93-0.857); per
preset a Table-1-like table (one row for our runs, one column per momentum group, the
paper's published row beneath it when the preset is a Table 1 experiment), a per-group
details table, plain-language notes, the figures, and the partial runs; then warnings
and the list of every run used. Every number printed here is also in ``summary.json``.

The lowest mean final error of a preset is bold. When it is not lower than every other
group beyond the seed noise it carries a dagger (†) and a footnote naming the groups it
is within noise of: a bold value is never printed as a win without that caveat.
"""

from __future__ import annotations

from collections.abc import Sequence

from lcam.report import paper, wording
from lcam.report.analysis import GroupResult, PresetResult, RunSummary
from lcam.report.stats import ALPHA, CONFIDENCE

__all__ = ["render_report"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _final_cell(group: GroupResult, result: PresetResult) -> str:
    if group.final_test_error is None:
        return f"— (0 finished, {len(group.partial_seeds)} partial)"
    text = wording.stats_cell(group.final_test_error)
    best = result.best
    if best is not None and best.group == group.name and len(best.comparisons) > 0:
        text = f"**{text}**" + ("" if best.clear else " †")
    return text


def _paper_cells(result: PresetResult) -> list[str]:
    row = result.paper_row
    assert row is not None
    cells = []
    for group in result.groups:
        value = group.paper_value
        if value is None or group.paper_column is None:
            cells.append("—")
            continue
        text = f"{value.text()} ({group.paper_column})"
        cells.append(f"**{text}**" if row.best == group.paper_column else text)
    return cells


def _main_table(result: PresetResult) -> list[str]:
    header = ["", *(g.name for g in result.groups)]
    rows = [[f"{result.preset} (ours)", *(_final_cell(g, result) for g in result.groups)]]
    if result.paper_row is not None:
        rows.append([f"paper, Table 1: {result.paper_row.label}", *_paper_cells(result)])
    lines = _table(header, rows)
    lines.append("")
    lines.append(
        "Final test error (%) after the last epoch: mean ± sample std (ddof=1) over finished "
        "seeds, n = seeds. Bold: lowest mean."
    )
    best = result.best
    if best is not None and _unclear(result):
        unclear = ", ".join(
            f"{c.against} ({_reason(c.p_value, c.verdict)})"
            for c in best.comparisons
            if not c.significant
        )
        lines.append("")
        lines.append(
            f"† {best.group} has the lowest mean but is within noise of {unclear}: not a clear win."
        )
    for reference in result.paper_references:
        lines.append("")
        lines.append(
            f"Reference row of Table 1 ({reference.source}): {reference.method}, "
            f"{reference.value.text()}."
        )
    return lines


def _reason(p: float | None, verdict: str) -> str:
    return verdict if p is None else wording.p_value(p)


def _role(group: GroupResult) -> str:
    if group.role == "control" and group.matched_to:
        return f"control of {', '.join(group.matched_to)}"
    return group.role or "—"


def _seeds(group: GroupResult) -> str:
    text = str(len(group.finished_seeds))
    if group.partial_seeds:
        text += f" (+{len(group.partial_seeds)} partial)"
    return text


def _to_target(group: GroupResult) -> str:
    if group.epochs is None:
        return "—"
    if group.epochs_to_target is None:
        return f"never (of {group.epochs})"
    fraction = group.epochs_to_target_fraction or 0.0
    return f"{group.epochs_to_target} of {group.epochs} ({fraction:.0%})"


def _fraction(group: GroupResult, result: PresetResult) -> str:
    """The group's fraction; for a control, the measured fractions of its LCAM groups."""
    if group.fraction_above is not None or group.role != "control":
        return wording.number(group.fraction_above)
    names = group.matched_to or ()
    matched = [g for g in result.groups if g.name in names and g.fraction_above is not None]
    if not matched:
        return "—"
    return f"— ({', '.join(f'{g.name}: {wording.number(g.fraction_above)}' for g in matched)})"


def _best_epoch(group: GroupResult) -> str:
    stats = group.best_epoch
    if stats is None:
        return "—"
    return f"{stats.mean:.1f}" if stats.n > 1 else f"{stats.mean:.0f}"


def _details_table(result: PresetResult) -> list[str]:
    fixed = result.fixed_group
    target = (
        f"epochs to {fixed}'s final {wording.number(result.target_error)}%"
        if fixed is not None and result.target_error is not None
        else "epochs to the fixed-0.9 final error"
    )
    header = [
        "group",
        "momentum",
        "role",
        "finished seeds",
        "final error",
        "best-epoch error",
        "best epoch (mean)",
        target,
        "fraction above avg",
        f"vs {fixed or 'fixed 0.9'} (Welch)",
        "vs matched control (Welch)",
    ]
    rows = []
    for g in result.groups:
        vs_control = wording.comparison_cell(g.vs_control)
        if g.vs_control is not None:
            vs_control = f"{g.vs_control.against}: {vs_control}"
        rows.append(
            [
                g.name,
                g.momentum_text,
                _role(g),
                _seeds(g),
                wording.stats_cell(g.final_test_error),
                wording.stats_cell(g.best_test_error),
                _best_epoch(g),
                _to_target(g),
                _fraction(g, result),
                "(reference)" if g.name == fixed else wording.comparison_cell(g.vs_fixed),
                vs_control,
            ]
        )
    lines = _table(header, rows)
    lines.append("")
    lines.append(
        "Best-epoch error: each seed's lowest test error over its epochs, mean ± std. "
        f"Epochs to target: first epoch at which the mean-over-seeds test error is at or "
        f"below {fixed or 'the fixed-0.9 group'}'s final mean error. Fraction above avg: "
        "share of steps that used momentum_above (loss at or above its running average); a "
        "control shows its LCAM groups' measured values, to set beside the fraction it was "
        "matched with. "
        f"Welch cells: verdict, difference of means in points (this group minus the other; "
        f"negative = lower error) [{CONFIDENCE:.0%} CI], p."
    )
    return lines


def _figures(result: PresetResult) -> list[str]:
    if not result.figures:
        return []
    png = [f for f in result.figures if f.endswith(".png")]
    curves = next((f for f in png if f.endswith("_curves.png")), png[0])
    lines = [f"![{result.preset}: test error and train loss per epoch]({curves})", ""]
    links = []
    for path in png:
        if path == curves:
            continue
        name = path.rsplit("/", 1)[-1].removesuffix(".png")
        label = name.removeprefix(result.preset + "_").replace("_", " ")
        svg = path.removesuffix(".png") + ".svg"
        links.append(f"[{label}]({path}) ([svg]({svg}))")
    curves_svg = curves.removesuffix(".png") + ".svg"
    lines.append(f"Curves as [svg]({curves_svg}). Also: " + " · ".join(links) + ".")
    lines.append("")
    lines.append("Lines: mean over finished seeds; band: min–max over seeds; dotted: partial runs.")
    return lines


def _run_rows(runs: Sequence[RunSummary], *, with_preset: bool) -> list[list[str]]:
    rows = []
    for r in runs:
        best = "—"
        if r.best_test_error is not None:
            best = f"{wording.number(r.best_test_error)} (epoch {r.best_epoch})"
        row = [
            r.group,
            str(r.seed),
            r.status,
            f"{r.epochs_completed}/{r.epochs_planned}",
            wording.number(r.final_test_error),
            best,
            wording.number(r.mean_fraction_above),
            f"`{r.path}`",
        ]
        rows.append([r.preset, *row] if with_preset else row)
    return rows


_RUN_HEADER = [
    "group",
    "seed",
    "status",
    "epochs",
    "last test error",
    "best (epoch)",
    "fraction above",
    "path",
]


def _verdict_table(result: PresetResult) -> list[str]:
    """The paired comparisons of the preset: one line each, the verdict first."""
    rows = []
    for c in result.comparisons:
        ci = "" if c.ci_t is None else f" [{c.ci_t[0]:+.2f}, {c.ci_t[1]:+.2f}]"
        holm = "—" if c.p_holm is None else wording.p_value(c.p_holm)
        mde = "—" if c.minimum_detectable_effect is None else (
            f"{c.minimum_detectable_effect:.2f}")
        rows.append([
            f"**{c.verdict}**", f"{c.a} {c.kind}" if c.kind != "vs swap" else
            f"{c.a} vs {c.against}", str(c.n), f"{c.mean_difference:+.2f}{ci}", holm,
            f"{c.probability_lower:.2f}", mde,
        ])
    margin = result.comparisons[0].margin
    return _table(
        ["verdict", "comparison", "seeds", "A − B, points [95% CI]", "Holm p", "P(A<B)",
         "MDE"], rows,
    ) + [
        "",
        f"Paired by seed (same initial weights and batch order). *lower*/*higher*: Holm-"
        f"corrected paired t-test p < 0.05; *equivalent*: the difference is shown to lie "
        f"within ±{margin:g} points (two one-sided tests); *inconclusive*: neither. MDE: "
        "the smallest difference these seeds detect with 80% power. Bootstrap CIs, "
        "Wilcoxon and TOST p-values are in summary.json.",
    ]


def _preset_section(result: PresetResult) -> list[str]:
    setting = ", ".join(
        f"{k} `{v}`"
        for k, v in (("data", result.data), ("model", result.model), ("schedule", result.schedule))
        if v
    )
    epochs = sorted({g.epochs for g in result.groups if g.epochs is not None})
    if epochs:
        setting += (", " if setting else "") + "epochs " + "/".join(map(str, epochs))
    lines = [f"## Preset `{result.preset}`", ""]
    if setting:
        lines += [setting[0].upper() + setting[1:] + ".", ""]
    if result.comparisons:
        lines += ["### Verdicts (paired by seed)", "", *_verdict_table(result), ""]
    lines += ["### Final test error", "", *_main_table(result), ""]
    lines += ["### Per group", "", *_details_table(result), ""]
    lines += ["### Notes", "", *(f"- {note}" for note in result.notes), ""]
    figures = _figures(result)
    if figures:
        lines += ["### Figures", "", *figures, ""]
    if result.partial_runs:
        lines += ["### Partial runs (not in the statistics)", ""]
        lines += _table(_RUN_HEADER, _run_rows(result.partial_runs, with_preset=False))
        lines.append("")
    return lines


def _overview(presets: Sequence[PresetResult], runs: Sequence[RunSummary]) -> list[str]:
    rows = []
    for p in presets:
        mine = [r for r in runs if r.preset == p.preset]
        finished = sum(r.status == "finished" for r in mine)
        lowest = "—"
        if p.best is not None:
            lowest = f"{p.best.group} ({wording.number(p.best.mean)}%"
            if not p.best.comparisons:
                lowest += ", only group)"
            else:
                lowest += ", clear)" if p.best.clear else ", within noise)"
        rows.append(
            [
                f"[{p.preset}](#preset-{_anchor(p.preset)})",
                p.data or "—",
                p.model or "—",
                p.schedule or "—",
                str(len(p.groups)),
                str(finished),
                str(len(mine) - finished),
                lowest,
                p.paper_row.label if p.paper_row is not None else "—",
            ]
        )
    header = [
        "preset",
        "data",
        "model",
        "schedule",
        "groups",
        "finished runs",
        "partial runs",
        "lowest mean final error",
        "paper row",
    ]
    return _table(header, rows)


def _table1_side_by_side(presets: Sequence[PresetResult]) -> list[str]:
    """Our presets that are Table 1 experiments, in the paper's layout and row order."""
    order = {row.label: i for i, row in enumerate(paper.TABLE1)}
    matched = [p for p in presets if p.paper_row is not None]
    matched.sort(key=lambda p: (order[p.paper_row.label] if p.paper_row else 0, p.preset))
    if not matched:
        return []
    header = ["Table 1 row", "preset"]
    for column in paper.COLUMNS:
        header += [f"{column.name} ours", f"{column.name} paper"]
    rows = []
    for p in matched:
        assert p.paper_row is not None
        row = [p.paper_row.label, f"[{p.preset}](#preset-{_anchor(p.preset)})"]
        for column in paper.COLUMNS:
            ours = next((g for g in p.groups if g.paper_column == column.name), None)
            row.append("not run" if ours is None else _final_cell(ours, p))
            published = p.paper_row.value(column.name)
            text = published.text() if published is not None else "—"
            row.append(f"**{text}**" if p.paper_row.best == column.name else text)
        rows.append(row)
    return [
        "## Table 1 side by side",
        "",
        *_table(header, rows),
        "",
        "Ours: final test error (%), mean ± sample std over finished seeds; bold marks the "
        "lowest mean of the whole preset"
        + (
            " († = within noise, see the preset's section)"
            if any(_unclear(p) for p in matched)
            else ""
        )
        + ". Paper: Table 1 as published, its best value in bold.",
        "",
    ]


def _unclear(result: PresetResult) -> bool:
    best = result.best
    return best is not None and bool(best.comparisons) and not best.clear


def _anchor(preset: str) -> str:
    """GitHub's heading anchor for ``## Preset `<preset>```."""
    kept = "".join(c for c in preset.lower() if c.isalnum() or c in "-_ ")
    return kept.replace(" ", "-")


def render_report(
    presets: Sequence[PresetResult],
    runs: Sequence[RunSummary],
    sources: Sequence[str],
    warnings: Sequence[str],
) -> str:
    """The whole ``report.md`` text."""
    finished = sum(r.status == "finished" for r in runs)
    partial = len(runs) - finished
    where = ", ".join(f"`{s}`" for s in sources)
    lines = [
        "# LCAM report",
        "",
        f"Built by `lcam report` from {where}: {finished} finished "
        f"run{'s' if finished != 1 else ''}, {partial} partial. Every number is computed "
        "from the run files and is also in [`summary.json`](summary.json).",
        "",
        "How to read it: errors are test error in %, mean ± sample std (ddof=1) over the "
        "finished seeds of a group; n is the number of seeds; epochs count from 1. Groups "
        "are compared with Welch's two-sided t-test on the final errors. A difference is "
        f"*within noise* when p ≥ {ALPHA} or either group has fewer than 2 seeds; such a "
        "difference is not evidence that one momentum setting is better. Each comparison "
        "is tested on its own (no correction for multiple comparisons), so among many "
        "groups an occasional p < 0.05 is expected by chance. Partial runs never enter "
        "the statistics.",
        "",
        "## Overview",
        "",
        *_overview(presets, runs),
        "",
        *_table1_side_by_side(presets),
    ]
    for preset in presets:
        lines += _preset_section(preset)
    if warnings:
        lines += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    lines += ["## Runs used", ""]
    lines += _table(["preset", *_RUN_HEADER], _run_rows(runs, with_preset=True))
    return "\n".join(lines) + "\n"
