"""``docs/FINDINGS.md`` and the README's verdict table, rendered from a findings summary.

The summary is what :func:`lcam.report.findings.collect` returns, plus the entries the
refresh script adds (``previous``: an earlier summary re-evaluated by
:func:`lcam.report.findings.previous`; ``lr``; ``sweeps``; ``machine``; ``figures``;
``notes``). Nothing here computes a statistic: every number comes from the summary.

The page leads with a short plain-language answer, then the verdict table (C1-C5,
every data set, at the paper-scaled margin with the ±0.3 verdict beside it), then the
numbers: the C2 crossover, the C3 non-inferiority table, the lr robustness table,
power, each data set's comparisons, the commands and sweep times, the method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lcam.report.claims import (
    CLAIMS,
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_MEASURED,
    NOT_SPECIFIC,
    SUPPORTED,
)

__all__ = ["readme_table", "render", "verdict_table"]

REFRESH = ".venv/bin/python scripts/refresh_findings.py"


# ---------------------------------------------------------------------------- helpers


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:+.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _ci(pair: Sequence[float] | None, digits: int = 2) -> str:
    return "—" if pair is None else f"[{pair[0]:+.{digits}f}, {pair[1]:+.{digits}f}]"


def _digits(margin: float | None) -> int:
    """Enough decimals to show a margin of 0.06 points as something other than 0.1."""
    if margin is None or margin >= 0.5:
        return 2
    return 3


def _columns(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The data sets of the verdict table: this sweep's (without lr variants), then the
    earlier summary's."""
    lr = set((summary.get("lr") or {}).get("variants", {}))
    out = [(n, p) for n, p in summary["presets"].items() if n not in lr]
    out += list(((summary.get("previous") or {}).get("presets") or {}).items())
    return out


def _short(claim: Mapping[str, Any], digits: int = 2) -> str:
    """A verdict as a table cell: C2 as the sign of d, inconclusive with its MDE."""
    if claim.get("direction"):
        return f"d {claim['direction']}"
    verdict = claim["verdict"]
    mde = claim.get("minimum_detectable_effect")
    if verdict == INCONCLUSIVE and mde is not None:
        unit = "" if claim.get("unit") == "points" else " of the epochs"
        return f"inconclusive (MDE {mde:.{digits}f}{unit})"
    return str(verdict)


def _cell(preset: Mapping[str, Any], key: str) -> str:
    digits = _digits(preset.get("margin"))
    main = _short(preset["claims"][key], digits)
    other = preset.get("claims_absolute", {}).get(key)
    if other is None or main == NOT_MEASURED or other["verdict"] == NOT_MEASURED:
        return f"**{main}**" if main != NOT_MEASURED else main
    at_absolute = _short(other, digits)
    return (f"**{main}** · ±{preset.get('margin_absolute', 0.3):g}: "
            f"{'same' if at_absolute == main else at_absolute}")


def _crossover_text(summary: Mapping[str, Any], absolute: bool = False) -> list[str]:
    key = "verdict_absolute" if absolute else "verdict"
    return [f"{x['label']}: **{x[key]}**" for x in summary.get("crossover", [])]


# ---------------------------------------------------------------------------- tables


def verdict_table(summary: Mapping[str, Any]) -> list[str]:
    """The claims x data sets table, one Markdown line a row: each cell the verdict at
    the paper-scaled margin (bold) and at ±0.3 points beside it."""
    columns = _columns(summary)
    lines = [
        "| claim | " + " | ".join(f"`{n}`" for n, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
        "| margin: 4% of fixed 0.9's error (points) | " + " | ".join(
            f"{_num(p.get('margin'), _digits(p.get('margin')))} (m0.9 "
            f"{_num(p.get('fixed_mean'))}%)" for _, p in columns) + " |",
    ]
    for key, title in CLAIMS.items():
        cells = [_cell(p, key) for _, p in columns]
        if key == "C2":
            parts = [f"{x['label']}: **{x['verdict']}** (±0.3: {x['verdict_absolute']})"
                     for x in summary.get("crossover", [])]
            across = (summary.get("previous") or {}).get("c2_across")
            if across:
                parts.append(f"across the earlier 10-class data sets: **{across['verdict']}** "
                             f"(±0.3: {across['verdict_absolute']})")
            title = f"{title}; " + "; ".join(parts) if parts else title
        lines.append(f"| **{key}** {title} | " + " | ".join(cells) + " |")
    return lines


def readme_table(summary: Mapping[str, Any]) -> str:
    """The README's copy of the verdict table, with its caption (ends with a newline)."""
    machine = summary.get("machine") or (summary.get("previous") or {}).get("machine") or {}
    seeds = ", ".join(f"`{n}` {p['seeds']}" for n, p in _columns(summary))
    lines = [
        f"Seeds per group: {seeds}. Each cell: the verdict at the paper-scaled margin "
        f"({summary['margin_rule']['relative']:.0%} of fixed 0.9's error, bold), then at "
        f"±{summary['margin_rule']['absolute']:g} points. Measured on "
        f"{machine.get('cpu', 'an unrecorded machine')}, torch {machine.get('torch', '?')}; "
        "details in [docs/FINDINGS.md](docs/FINDINGS.md).",
        "",
        *verdict_table(summary),
    ]
    return "\n".join(lines) + "\n"


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


def _swap(preset: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((c for c in preset["final_error"] if c["kind"] == "vs swap"
                 and c["a"] == "m0.95_0.9"), None)


def _crossover_section(summary: Mapping[str, Any]) -> list[str]:
    crossovers = summary.get("crossover") or []
    if not crossovers:
        return []
    presets = summary["presets"]
    arms: list[str] = []
    for x in crossovers:
        arms += [a for a in (x["coarse"], x["fine"]) if a not in arms]
    lines = [
        "## C2: does the better direction flip with the number of classes?",
        "",
        "d = err(`m0.95_0.9`) − err(`m0.9_0.95`), paired by seed (points of test error; "
        "relative: d as a percentage of fixed 0.9's mean error on that data set). The "
        "paper predicts d > 0 with 10 classes (its CIFAR-10: `m0.9_0.95` wins) and d < 0 "
        "with 100 (CIFAR-100: `m0.95_0.9` wins). p (Holm): within the data set's family "
        "of final-error comparisons; TOST at the data set's margin.",
        "",
        "| data set | m0.9 error, % | margin | n | d | 95% CI (t) | 95% CI (bootstrap) "
        "| d relative [95% CI (t)] | p (Holm) | p (TOST) | MDE | direction |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in arms:
        preset = presets.get(arm)
        c = _swap(preset) if preset else None
        if preset is None or c is None:
            continue
        base = preset["fixed_mean"]
        relative = f"{100 * c['mean_difference'] / base:+.1f}%"
        if c["ci_t"]:
            relative += (f" [{100 * c['ci_t'][0] / base:+.1f}%, "
                         f"{100 * c['ci_t'][1] / base:+.1f}%]")
        lines.append(
            f"| `{arm}` | {base:.2f} | {preset['margin']:.3f} | {c['n']} | "
            f"{c['mean_difference']:+.3f} | {_ci(c['ci_t'], 3)} | {_ci(c['ci_bootstrap'], 3)} "
            f"| {relative} | {_p(c['p_holm'])} | {_p(c['p_equivalence'])} | "
            f"{_num(c['minimum_detectable_effect'], 3)} | {c['verdict']} |")
    lines += [
        "",
        "The flip, d(100 classes) − d(10 classes), with 95% CIs: Welch-style (the two "
        "arms' paired means and standard errors combined, Welch-Satterthwaite degrees of "
        "freedom) and bootstrap (seeds resampled within each arm). The paper predicts a "
        "negative interaction.",
        "",
        "| contrast | interaction | SE | df | 95% CI (Welch) | 95% CI (bootstrap) "
        "| verdict | at ±0.3 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in crossovers:
        inter = x.get("interaction") or {}
        lines.append(
            f"| {x['label']} (`{x['fine']}` − `{x['coarse']}`) | "
            f"{_signed(inter.get('mean'), 3)} | {_num(inter.get('se'), 3)} | "
            f"{_num(inter.get('df'), 1)} | {_ci(inter.get('ci_welch'), 3)} | "
            f"{_ci(inter.get('ci_bootstrap'), 3)} | **{x['verdict']}** | "
            f"{x['verdict_absolute']} |")
    lines.append("")
    for x in crossovers:
        lines.append(f"- **{x['label']}**: {x['verdict']}: {x['reason']}.")
    lines.append("")
    return lines


def _half_section(summary: Mapping[str, Any]) -> list[str]:
    rows = [(n, p) for n, p in summary["presets"].items() if p.get("half")]
    if not rows:
        return []
    alpha = rows[0][1]["half"][0]["alpha"]
    lines = [
        "## C3: half the training, against fixed 0.9 at full length",
        "",
        "Each group trained for half the epochs (`-half`: the lr milestones at the same "
        "fractions of its training) against fixed 0.9 trained for all of them, paired by "
        "seed: mean of err(X-half) − err(m0.9). *Non-inferior*: the one-sided upper "
        "confidence bound is below the margin; *inferior*: the one-sided lower bound is "
        f"above it. The bounds are one-sided at level {alpha:.4g} = 0.05/m for the m "
        "half-length groups of the data set (Bonferroni, the strictest step of the Holm "
        "correction the other families use). `m0.9-half` is the control: if fixed 0.9 "
        "also matches its full-length run at half length, halving is a property of the "
        "schedule, not of LCAM.",
        "",
        "| data set | group | n | mean X-half − m0.9 | one-sided bounds [lower, upper] "
        "| margin | MDE | p (Holm, two-sided) | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, preset in rows:
        for r in preset["half"]:
            c = r["comparison"]
            bounds = "—" if r["upper"] is None else f"[{r['lower']:+.3f}, {r['upper']:+.3f}]"
            lines.append(
                f"| `{name}` | {r['group']} | {c['n']} | {c['mean_difference']:+.3f} | "
                f"{bounds} | {r['margin']:.3f} | {_num(c['minimum_detectable_effect'], 3)} | "
                f"{_p(c['p_holm'])} | {r['verdict']} |")
    lines.append("")
    for name, preset in rows:
        claim = preset["claims"]["C3"]
        lines.append(f"- **`{name}`**: {claim['verdict']}: {claim['reason']}.")
    lines.append("")
    return lines


def _lr_section(summary: Mapping[str, Any]) -> list[str]:
    lr = summary.get("lr") or {}
    base = lr.get("base")
    variants = lr.get("variants") or {}
    presets = summary["presets"]
    if base not in presets or not any(v in presets for v in variants):
        return []
    lines = [
        "## Learning rate: do C1 and C4 hold at 0.5x and 2x the lr?",
        "",
        f"The paper freezes the lr tuned for fixed 0.9; `{base}` repeated at other lrs "
        "(fixed 0.9, the pair and its swap, their control). Each preset's margin is 4% of "
        "its own fixed 0.9 error.",
        "",
        "| preset | lr factor | m0.9 error, % | margin | C1 | C4 | C1 at ±0.3 | C4 at ±0.3 "
        "| changed vs 1x |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    reference = presets[base]
    for name, factor in [(base, 1.0), *variants.items()]:
        preset = presets.get(name)
        if preset is None:
            continue
        digits = _digits(preset["margin"])
        changed = [f"{k}{'' if which == 'claims' else ' at ±0.3'}"
                   for which in ("claims", "claims_absolute") for k in ("C1", "C4")
                   if preset[which][k]["verdict"] != reference[which][k]["verdict"]]
        lines.append(
            f"| `{name}` | {factor:g} | {preset['fixed_mean']:.2f} | "
            f"{preset['margin']:.3f} | {_short(preset['claims']['C1'], digits)} | "
            f"{_short(preset['claims']['C4'], digits)} | "
            f"{_short(preset['claims_absolute']['C1'], digits)} | "
            f"{_short(preset['claims_absolute']['C4'], digits)} | "
            f"{'—' if name == base else (', '.join(changed) or 'no')} |")
    lines.append("")
    return lines


def _primary(preset: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The comparisons that decide a claim: LCAM vs m0.9 (C1), vs control (C4), the
    swap (C2), the half-length groups (C3)."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    lcam = set()
    for c in preset["final_error"]:
        if c["kind"] == "vs control":
            lcam.add(c["a"])
    for c in preset["final_error"]:
        if c["kind"] == "vs m0.9" and c["a"] in lcam:
            out.append(("C1", c))
        elif c["kind"] == "vs control":
            out.append(("C4", c))
        elif c["kind"] == "vs swap" and c["a"] == "m0.95_0.9":
            out.append(("C2", c))
    out += [("C3", r["comparison"]) for r in preset.get("half") or []]
    return out


def _power_rows(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return [*summary["presets"].items(),
            *((summary.get("previous") or {}).get("presets") or {}).items()]


def _power_section(summary: Mapping[str, Any]) -> list[str]:
    lines = [
        "## Power: can these seeds see an effect as large as the margin?",
        "",
        "MDE: the smallest mean difference a paired t-test at level 0.05/m (m comparisons "
        "in the family) detects with 80% power from these seeds and the observed spread. "
        "Where the MDE is above the margin, an effect of the paper's size could be there "
        "unseen: an *inconclusive* verdict there says the seeds were too few, not that "
        "the effect is absent.",
        "",
        "| data set | seeds | margin | MDE C1 | MDE C2 | MDE C3 | MDE C4 | primary "
        "comparisons with MDE ≤ margin |",
        "|---|---|---|---|---|---|---|---|",
    ]
    short_of: list[str] = []
    for name, preset in _power_rows(summary):
        margin = preset["margin"]
        primary = _primary(preset)
        cells = []
        for key in ("C1", "C2", "C3", "C4"):
            values = [c["minimum_detectable_effect"] for k, c in primary if k == key
                      and c["minimum_detectable_effect"] is not None]
            if not values:
                cells.append("—")
            elif min(values) == max(values):
                cells.append(f"{values[0]:.3f}")
            else:
                cells.append(f"{min(values):.3f}–{max(values):.3f}")
        known = [c["minimum_detectable_effect"] for _, c in primary
                 if c["minimum_detectable_effect"] is not None]
        reached = sum(m <= margin for m in known)
        lines.append(f"| `{name}` | {preset['seeds']} | {margin:.3f} | " + " | ".join(cells)
                     + f" | {reached} of {len(primary)} |")
        if known and reached < len(primary):
            short_of.append(f"`{name}` (margin {margin:.3f} points, MDE "
                            f"{min(known):.3f}–{max(known):.3f})")
    lines.append("")
    if short_of:
        lines += ["The margin is **not reached** by every primary comparison on: "
                  + "; ".join(short_of) + ". There, *contradicted by equivalence* cannot "
                  "happen for effects of the paper's size, and *inconclusive* is the "
                  "honest reading.", ""]
    else:
        lines += ["Every primary comparison reaches its margin.", ""]
    return lines


# ---------------------------------------------------------------------------- prose


def _names(items: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in items) if items else "none"


def _by_verdict(columns: Sequence[tuple[str, Mapping[str, Any]]], key: str
                ) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, preset in columns:
        out.setdefault(preset["claims"][key]["verdict"], []).append(name)
    return out


def _listing(by: Mapping[str, list[str]], labels: Sequence[tuple[str, str]]) -> str:
    """``"supported on `a`; contradicted on `b`, `c`"``: the non-empty verdicts only."""
    parts = [f"{text} on {_names(by[verdict])}" for verdict, text in labels if by.get(verdict)]
    return "; ".join(parts) if parts else "no verdict"


_USUAL = ((SUPPORTED, "supported"), (CONTRADICTED, "contradicted"),
          (INCONCLUSIVE, "inconclusive"))


def _short_answer(summary: Mapping[str, Any]) -> list[str]:
    columns = _columns(summary)
    n = len(columns)
    c1 = _by_verdict(columns, "C1")
    c4 = _by_verdict(columns, "C4")
    c5 = _by_verdict(columns, "C5")
    half = [(name, p) for name, p in summary["presets"].items() if p.get("half")]
    c3 = _by_verdict(half, "C3")
    beat = c1.get(SUPPORTED, [])
    points = [
        f"- **Does LCAM beat a tuned fixed momentum of 0.9 (C1)?** Beyond the seed noise on "
        f"{len(beat)} of {n} data sets; {_listing(c1, _USUAL)}.",
    ]
    crossovers = summary.get("crossover") or []
    if crossovers:
        points.append(
            "- **Does the better direction flip from 10 to 100 classes, as the paper's "
            "CIFAR-10/CIFAR-100 figures suggest (C2)?** " + "; ".join(
                f"{x['label']}: {x['verdict']}" for x in crossovers) + ".")
    if half:
        points.append(
            "- **Does LCAM trained for half the epochs match fixed 0.9 trained for all of "
            "them (C3)?** " + _listing(c3, (
                (SUPPORTED, "yes, and fixed 0.9 at half length does not,"),
                (NOT_SPECIFIC, "not specific to LCAM (fixed 0.9 at half length matches "
                               "too)"),
                (CONTRADICTED, "no (every LCAM group worse by more than the margin)"),
                (INCONCLUSIVE, "inconclusive"))) + ".")
    points.append(
        "- **Is a gain more than a larger average momentum (C4, LCAM vs its matched "
        f"fixed-momentum control)?** {_listing(c4, _USUAL)}.")
    points.append(
        "- **Does fixed 0.95 rise late in training, and LCAM avoid it (C5)?** "
        f"{_listing(c5, _USUAL + ((NOT_MEASURED, 'not measured'),))}.")
    changed = _lr_changes(summary)
    if changed is not None:
        points.append(f"- **At 0.5x and 2x the lr**, {changed}.")
    diverged = _diverged(summary)
    if diverged:
        points.append("- **Runs that diverged** (final error above the preset's threshold): "
                      + "; ".join(diverged) + ".")
    if not beat:
        advice = ("For a practitioner: on none of these data sets did LCAM lower the "
                  "final test error of a tuned fixed momentum of 0.9 beyond the seed "
                  "noise; keep fixed 0.9 unless your own paired runs show otherwise.")
    elif len(beat) == n:
        advice = ("For a practitioner: LCAM lowered the final test error of a tuned fixed "
                  "momentum of 0.9 beyond the seed noise on every data set here.")
    else:
        advice = (f"For a practitioner: LCAM lowered the final test error of a tuned fixed "
                  f"momentum of 0.9 beyond the seed noise on {_names(beat)} only; it is "
                  "worth a paired check on your own data, not a default.")
    if any(x["verdict"] == SUPPORTED for x in crossovers):
        advice += (" Which direction to use depends on the number of classes, as the paper "
                   "says: `m0.95_0.9` with many classes, `m0.9_0.95` with few.")
    if c3.get(NOT_SPECIFIC):
        advice += (" Halving the schedule cost little here with or without LCAM: that is "
                   "a property of the schedule, not of LCAM.")
    elif c3.get(SUPPORTED):
        advice += (f" On {_names(c3[SUPPORTED])} LCAM at half the epochs matched fixed 0.9 "
                   "at full length while fixed 0.9 at half length did not.")
    lr = summary.get("lr") or {}
    helped = [v for v in (lr.get("variants") or {}) if v in summary["presets"]
              and summary["presets"][v]["claims"]["C1"]["verdict"] == SUPPORTED]
    for variant in helped:
        c4 = summary["presets"][variant]["claims"]["C4"]["verdict"]
        advice += (f" Away from fixed 0.9's tuned lr (`{variant}`) LCAM did beat fixed 0.9"
                   + (", and its matched control too." if c4 == SUPPORTED else
                      f", but it is not shown to beat its matched fixed-momentum control "
                      f"(C4 {c4}): its larger average momentum may explain that gain."))
    if diverged:
        advice += " Some runs diverged; which, and where, is listed below."
    return ["## The short answer", "", advice, "", *points, ""]


def _diverged(summary: Mapping[str, Any]) -> list[str]:
    """``"`preset`: m0.9_0.95 8 of 12, m0.9 0 of 12"`` for each preset with a diverged run."""
    out = []
    for name, preset in _power_rows(summary):
        groups = preset["groups"]
        if any(g["failed"] for g in groups.values()):
            counts = ", ".join(f"{g} {v['failed']} of {v['n']}" for g, v in groups.items())
            out.append(f"`{name}`: {counts}")
    return out


def _lr_changes(summary: Mapping[str, Any]) -> str | None:
    lr = summary.get("lr") or {}
    presets = summary["presets"]
    base = presets.get(lr.get("base"))
    variants = [v for v in (lr.get("variants") or {}) if v in presets]
    if base is None or not variants:
        return None
    changes = [f"{key} on `{v}` ({base['claims'][key]['verdict']} -> "
               f"{presets[v]['claims'][key]['verdict']})"
               for v in variants for key in ("C1", "C4")
               if presets[v]["claims"][key]["verdict"] != base["claims"][key]["verdict"]]
    return ("no verdict of C1 or C4 changes" if not changes
            else "verdicts change: " + "; ".join(changes))


def _legend(summary: Mapping[str, Any]) -> str:
    return (
        "*supported*: the claimed effect is there beyond the seed noise (paired t-test, "
        "Holm-corrected over the data set's family, p < 0.05). *contradicted*: no "
        "comparison shows it and one shows the opposite effect beyond noise, or every one "
        "is shown to lie within the margin (two one-sided tests, p < 0.05). "
        "*inconclusive*: neither; MDE is the smallest effect (points of test error) these "
        "seeds would have detected with 80% power. C2 cells give the sign of d = "
        "`m0.95_0.9 − m0.9_0.95` (lower: `m0.95_0.9` has the lower error); its verdicts "
        "are the crossovers in the row title. C3: non-inferiority of half-length runs "
        "(see below); *not specific to LCAM* when fixed 0.9 at half length is non-inferior "
        "too; the earlier data sets have no half-length runs (*not measured as stated*; "
        "their epochs-to-target description is kept below)."
    )


def _intro(summary: Mapping[str, Any]) -> str:
    machine = summary.get("machine") or {}
    parts = [
        "The paper's claims C1-C5 ([PAPER.md](PAPER.md)) tested with seeds paired across "
        "groups, on three MNIST-1D data sets built for the paper's contrast (10 classes, "
        "100 classes, and the 100-class inputs with 10 coarse labels), at two learning "
        "rates more, and on the three earlier data sets, re-evaluated from their stored "
        "per-seed differences.",
    ]
    if machine:
        parts.append(
            f"Machine of the new runs: {machine.get('cpu', '?')} ({machine.get('cpus', '?')} "
            f"CPUs), torch {machine.get('torch', '?')}, {machine.get('platform', '?')}. "
            "Results of the same seed differ slightly between CPU types, so rerunning "
            "elsewhere gives close, not identical, numbers; verdicts whose MDE is above "
            "the margin can change."
        )
    return " ".join(parts)


def _why(summary: Mapping[str, Any]) -> list[str]:
    lines = ["## Why each verdict", ""]
    rows = [*summary["presets"].items(),
            *((summary.get("previous") or {}).get("presets") or {}).items()]
    for key in CLAIMS:
        for name, preset in rows:
            claim = preset["claims"][key]
            other = preset["claims_absolute"][key]
            if key == "C2":
                same = other.get("direction") == claim.get("direction")
                tail = "" if same else (f" At ±{preset['margin_absolute']:g}: "
                                        f"{other.get('direction')}.")
            else:
                tail = "" if other["verdict"] == claim["verdict"] else (
                    f" At ±{preset['margin_absolute']:g}: {other['verdict']}.")
            word = "direction" if key == "C2" else claim["verdict"]
            lines.append(f"- **{key}, `{name}`** (margin {preset['margin']:.3f}): "
                         f"{word}: {claim['reason']}.{tail}")
    across = (summary.get("previous") or {}).get("c2_across")
    if across:
        lines.append(f"- **C2 across the earlier data sets**: {across['verdict']}: "
                     f"{across['reason']}. At ±0.3: {across['verdict_absolute']}.")
    lines.append("")
    return lines


def _preset_section(name: str, preset: Mapping[str, Any], figure: str | None,
                    note: str | None, heading: str = "##", shortened: str | None = None,
                    timed_quiet: bool = True) -> list[str]:
    digits = _digits(preset.get("margin"))
    lines = [
        f"{heading} `{name}`: {preset['data']}, {preset['model']}, {preset['epochs']} "
        f"epochs, {preset['seeds']} seeds",
        "",
    ]
    if figure:
        lines += [f"![{name}: test error and train loss per epoch]({figure})", ""]
    if shortened:
        lines += [f"![{name}: the half-length groups against fixed 0.9 at full length]"
                  f"({shortened})", ""]
    failed = preset.get("failed_error", 50.0)
    lines += ["| group | epochs | final test error, % (mean ± std) | seeds | runs that "
              f"diverged (final error > {failed:g}%) |", "|---|---|---|---|---|"]
    for group, stats in preset["groups"].items():
        epochs = stats.get("epochs", preset["epochs"])
        lines.append(f"| {group} | {epochs} | {stats['mean']:.2f} ± {_num(stats['std'])} | "
                     f"{stats['n']} | {stats['failed']} |")
    if note:
        lines += ["", note]
    if preset.get("mean_run_seconds") is not None and timed_quiet:
        lines += ["", f"One run trains in {preset['mean_run_seconds']:.1f} s on average "
                  "(`result.json`'s `seconds`, two runs at a time)."]
    lines += ["", f"Final test error (points), paired by seed (C1, C2, C4); margin "
              f"{preset['margin']:.3f} points (TOST and MDE):", ""]
    lines += _comparison_rows(preset["final_error"], digits)
    if preset["rise"]:
        lines += ["", "Rise of test error after the best epoch, final − best (points, C5):",
                  ""]
        lines += _comparison_rows(preset["rise"], digits)
    if preset["ratio"]:
        means = ", ".join(f"{g} {v:.2f}" for g, v in preset["ratio_means"].items())
        description = preset.get("ratio_claim") or {}
        lines += ["", "Description, not a verdict: epochs to reach the same seed's m0.9 final "
                  "error inside the full schedule, as a fraction of the epochs (mean per "
                  f"group: {means}); read as before: {description.get('verdict', '—')}.", ""]
        lines += _comparison_rows(preset["ratio"], digits=3)
    lines.append("")
    return lines


def _commands(summary: Mapping[str, Any]) -> list[str]:
    lines = ["## Commands and sweep times", ""]
    for name, sweep in (summary.get("sweeps") or {}).items():
        seconds = sweep.get("seconds")
        took = ("time not recorded" if seconds is None
                else f"{seconds / 60:.0f} min wall time{sweep.get('conditions', '')}")
        lines.append(f"- `{sweep.get('command', name)}`: {sweep.get('runs', '?')} runs, "
                     f"{took}.")
    refresh = summary.get("refresh")
    if refresh:
        lines.append(f"- This page, its summary and the README's table: `{refresh}`.")
    old = (summary.get("previous") or {}).get("sweep")
    if old:
        # That sweep was timed while other work ran: a time not measured on a quiet
        # machine is not quoted.
        lines.append(
            f"- The earlier data sets: `{old.get('command', '?')}` ({old.get('runs', '?')} "
            "runs; timed beside other work, so its time is not quoted); their "
            f"runs are not kept, their summary is "
            f"`{summary['previous'].get('source', '?')}`.")
    lines.append("")
    return lines


def _method(summary: Mapping[str, Any]) -> list[str]:
    rule = summary["margin_rule"]
    return [
        "## How the verdicts are made",
        "",
        f"- Margin: {rule['source']}",
        "- Runs of one seed share their initial weights and their batch order across "
        "groups (tested in `tests/test_paired_runs.py`), so every comparison is paired: "
        "the unit is the per-seed difference A − B.",
        "- 95% confidence intervals: t-based and bootstrap (percentile, "
        f"{summary['bootstrap_resamples']} resamples of the seeds, fixed generator seed). "
        "Tests: paired t-test and Wilcoxon signed-rank; Holm-Bonferroni over each data "
        "set's family of comparisons (final error: each full-length group vs m0.9, each "
        "LCAM group vs its control, each pair vs its swap; the half-length groups, the "
        "rises (C5) and the epochs ratios are families of their own).",
        "- P(A<B): the fraction of seeds on which A has the lower value (ties count "
        "half), with a bootstrap CI.",
        f"- MDE: the smallest mean difference a paired t-test at level 0.05/m (m "
        f"comparisons in the family, Holm's strictest step) detects with "
        f"{summary['power']:.0%} power, from the observed spread of the differences.",
        "- Equivalence: two one-sided t-tests (TOST) at ± the margin. Non-inferiority "
        "(C3): one-sided t bounds at level 0.05/m against the margin.",
        "- The earlier data sets' comparisons are rebuilt from the per-seed differences "
        "stored in their summary: every statistic above is a function of them, so at "
        "±0.3 they reproduce the earlier page's numbers.",
        "- The protocol of each preset (lr, batch size, epochs chosen once for fixed "
        "momentum 0.9, then frozen for every group) is in `lcam presets --show NAME` "
        "and in [HARNESS.md](HARNESS.md).",
        "",
    ]


def render(summary: Mapping[str, Any]) -> str:
    """``docs/FINDINGS.md`` for ``summary`` (see the module docstring)."""
    rule = summary["margin_rule"]
    lines = [
        "# Findings: the paper's claims, tested with paired seeds",
        "",
        "<!-- Generated by scripts/refresh_findings.py from docs/findings/summary.json; "
        "do not edit by hand. -->",
        "",
        _intro(summary),
        "",
        *_short_answer(summary),
        "## Verdicts",
        "",
        f"{rule['source']} Each cell: the verdict at that margin (bold), then at "
        f"±{rule['absolute']:g} points.",
        "",
        *verdict_table(summary),
        "",
        _legend(summary),
        "",
        *_crossover_section(summary),
        *_half_section(summary),
        *_lr_section(summary),
        *_power_section(summary),
        *_why(summary),
    ]
    figures = summary.get("figures") or {}
    notes = summary.get("notes") or {}
    lines += ["## The data sets of this sweep", ""]
    for name, preset in summary["presets"].items():
        lines += _preset_section(name, preset, figures.get(name), notes.get(name), "###",
                                 (summary.get("figures_shortened") or {}).get(name))
    old = summary.get("previous") or {}
    if old.get("presets"):
        lines += ["## The earlier data sets, re-evaluated at the new margin", "",
                  "Rebuilt from the per-seed differences stored in "
                  f"`{old.get('source', '?')}` (the runs are not kept).", ""]
        for name, preset in old["presets"].items():
            lines += _preset_section(name, preset, (old.get("figures") or {}).get(name),
                                     (old.get("notes") or {}).get(name), "###",
                                     timed_quiet=False)  # trained beside other work
    lines += _commands(summary)
    lines += _method(summary)
    return "\n".join(lines).rstrip() + "\n"
