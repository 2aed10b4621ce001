"""Issue 14's statistics: the margin rule, the C2 crossover and its interaction, C3's
non-inferiority, and every verdict case of the claim evaluators; against direct
numpy/scipy computations on run directories the tests write."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from report_groups import CONTROL, FIXED, FIXED95, PAIR, SWAP
from scipy import stats
from test_report import write_run

from lcam.report.claims import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_SPECIFIC,
    SUPPORTED,
    beats_claim,
    epochs_ratio_description,
    half_schedule_claim,
    late_rise_claim,
)
from lcam.report.comparisons import correct_differences
from lcam.report.crossover import crossover_verdict, interaction
from lcam.report.findings import collect
from lcam.report.margins import RELATIVE_MARGIN, relative_margin
from lcam.report.noninferiority import INFERIOR, NON_INFERIOR, non_inferiority
from lcam.report.paired import BOOTSTRAP_RESAMPLES, EQUIVALENT, HIGHER, LOWER, PairedComparison
from lcam.report.runs import load_run


def _half(group: dict[str, Any]) -> dict[str, Any]:
    return {**group, "name": f"{group['name']}-half", "schedule_fraction": 0.5}


EPOCHS = 8


def _curve(final: float, epochs: int = EPOCHS) -> list[float]:
    return [final + 4.0 * (epochs - 1 - e) / epochs for e in range(epochs)]


def _write(root: Path, preset: str, finals: dict[str, np.ndarray],
           groups: list[dict[str, Any]]) -> None:
    for group in groups:
        epochs = EPOCHS // 2 if group.get("schedule_fraction") else EPOCHS
        for seed, final in enumerate(finals[group["name"]]):
            write_run(root, group, seed, _curve(float(final), epochs), preset=preset,
                      data="mnist1d", model="cnn", epochs=epochs)


def _arm(rng: np.random.Generator, n: int, level: float, d: float, noise: float
         ) -> dict[str, np.ndarray]:
    """Finals of one arm: m0.95_0.9 - m0.9_0.95 = d plus noise, per seed."""
    base = rng.normal(level, 1.0, n)
    swap = base + rng.normal(0.0, 0.2, n)
    return {"m0.9": base, "m0.95": base + rng.normal(0.0, 0.2, n), "m0.9_0.95": swap,
            "m0.95_0.9": swap + d + rng.normal(0.0, noise, n),
            "control-m0.933333": base + rng.normal(0.0, 0.2, n)}


ARM_GROUPS = [FIXED, FIXED95, PAIR, SWAP, CONTROL]


def test_group_spec_reads_schedule_fraction(tmp_path: Path) -> None:
    full = load_run(write_run(tmp_path, FIXED, 0, [3.0, 2.0], preset="p"))
    half = load_run(write_run(tmp_path, _half(FIXED), 0, [3.0], preset="p"))
    assert (full.group.schedule_fraction, full.group.shortened) == (1.0, False)
    assert (half.group.schedule_fraction, half.group.shortened) == (0.5, True)


def test_margin_rule_and_crossover_on_written_runs(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    fine = _arm(rng, 12, level=40.0, d=-1.5, noise=0.3)    # 100 classes: m0.95_0.9 wins
    coarse = _arm(rng, 9, level=20.0, d=+0.8, noise=0.2)   # 10 classes: m0.9_0.95 wins
    _write(tmp_path, "fine", fine, ARM_GROUPS)
    _write(tmp_path, "coarse", coarse, ARM_GROUPS)
    summary = collect([tmp_path], ["fine", "coarse"],
                      crossovers=[("fine", "coarse", "100 vs 10")])
    for name, finals in (("fine", fine), ("coarse", coarse)):
        preset = summary["presets"][name]
        # The margin rule: 4% of fixed 0.9's mean final error on that data set.
        assert preset["fixed_mean"] == pytest.approx(finals["m0.9"].mean(), rel=1e-12)
        assert preset["margin"] == pytest.approx(RELATIVE_MARGIN * finals["m0.9"].mean())
        assert preset["margin_absolute"] == 0.3
        swap = next(c for c in preset["final_error"] if c["kind"] == "vs swap")
        d = finals["m0.95_0.9"] - finals["m0.9_0.95"]
        assert swap["mean_difference"] == pytest.approx(d.mean(), abs=1e-12)
        assert swap["margin"] == preset["margin"]
        tost = max(stats.ttest_1samp(d, -preset["margin"], alternative="greater").pvalue,
                   stats.ttest_1samp(d, preset["margin"], alternative="less").pvalue)
        assert swap["p_equivalence"] == pytest.approx(tost, rel=1e-9)
    assert relative_margin(2.0) == pytest.approx(0.08)
    with pytest.raises(ValueError):
        relative_margin(0.0)

    (x,) = summary["crossover"]
    assert x["verdict"] == SUPPORTED and x["verdict_absolute"] == SUPPORTED
    d_fine = fine["m0.95_0.9"] - fine["m0.9_0.95"]
    d_coarse = coarse["m0.95_0.9"] - coarse["m0.9_0.95"]
    inter = x["interaction"]
    assert inter["mean"] == pytest.approx(d_fine.mean() - d_coarse.mean(), abs=1e-12)
    welch = stats.ttest_ind(d_fine, d_coarse, equal_var=False)
    assert inter["ci_welch"] == pytest.approx(tuple(welch.confidence_interval(0.95)), rel=1e-9)
    assert inter["df"] == pytest.approx(welch.df, rel=1e-9)
    se = math.sqrt(d_fine.var(ddof=1) / 12 + d_coarse.var(ddof=1) / 9)
    assert inter["se"] == pytest.approx(se, rel=1e-12)
    generator = np.random.default_rng(0)
    picks_f = generator.integers(0, 12, size=(BOOTSTRAP_RESAMPLES, 12))
    picks_c = generator.integers(0, 9, size=(BOOTSTRAP_RESAMPLES, 9))
    boot = d_fine[picks_f].mean(axis=1) - d_coarse[picks_c].mean(axis=1)
    assert inter["ci_bootstrap"] == pytest.approx(tuple(np.quantile(boot, [0.025, 0.975])))
    assert x["relative"]["fine"] == pytest.approx(100 * d_fine.mean() / fine["m0.9"].mean())


def _comparisons(*rows: tuple[str, str, list[float]], margin: float = 0.1
                 ) -> list[PairedComparison]:
    return correct_differences([(a, b, "k", list(range(len(d))), d) for a, b, d in rows],
                               margin=margin)


LOW = [-1.0, -1.1, -0.9, -1.05, -0.95, -1.0, -1.02, -0.98, -1.01, -0.99]
HIGH = [-v for v in LOW]
ZERO = [0.01, -0.01, 0.02, -0.02, 0.0, 0.01, -0.01, 0.015, -0.015, 0.0]  # within ±0.1
NOISE = [2.0, -2.2, 1.5, -1.1, 0.4, -0.3, 2.6, -2.4, 0.9, -0.7]


def test_beats_claim_verdict_cases() -> None:  # C1 and C4
    def judged(*ds: list[float]) -> str:
        family = _comparisons(*[(f"m{i}_x", "m0.9", d) for i, d in enumerate(ds)])
        return beats_claim(family, "C1", "LCAM group").verdict

    assert judged(LOW, NOISE) == SUPPORTED
    assert judged(HIGH, NOISE) == CONTRADICTED      # the opposite effect beyond noise
    assert judged(ZERO, ZERO) == CONTRADICTED       # shown within the margin
    assert judged(NOISE, ZERO) == INCONCLUSIVE
    assert _comparisons(("a", "b", ZERO))[0].verdict == EQUIVALENT


def test_late_rise_claim_verdict_cases() -> None:  # C5: m0.95 vs m0.9 first
    def judged(first: list[float], *rest: list[float]) -> str:
        family = _comparisons(("m0.95", "m0.9", first),
                              *[(f"m{i}_x", "m0.95", d) for i, d in enumerate(rest)])
        return late_rise_claim(family).verdict

    assert judged(HIGH, LOW, NOISE) == SUPPORTED
    assert judged(ZERO, LOW) == CONTRADICTED        # no late rise to avoid
    assert judged(LOW, NOISE) == CONTRADICTED       # m0.95 rises less than m0.9
    assert judged(HIGH, HIGH, NOISE) == CONTRADICTED  # LCAM rises more, beyond noise
    assert judged(NOISE, HIGH) == CONTRADICTED
    assert judged(HIGH, ZERO, ZERO) == CONTRADICTED  # LCAM rises as much
    assert judged(NOISE, NOISE) == INCONCLUSIVE
    assert judged(HIGH, NOISE) == INCONCLUSIVE


def test_half_schedule_claim_verdict_cases() -> None:  # C3 as stated
    def judged(fixed_half: list[float], *lcam: list[float]) -> str:
        family = _comparisons(("m0.9-half", "m0.9", fixed_half),
                              *[(f"m{i}_x-half", "m0.9", d) for i, d in enumerate(lcam)])
        results = non_inferiority(family, margin=0.1)
        return half_schedule_claim(results, fixed_half="m0.9-half",
                                   lcam_half=[f"m{i}_x-half" for i in range(len(lcam))]).verdict

    assert judged(HIGH, ZERO, NOISE) == SUPPORTED
    assert judged(HIGH, LOW) == SUPPORTED           # better at half length
    assert judged(ZERO, ZERO, NOISE) == NOT_SPECIFIC
    assert judged(ZERO, HIGH, HIGH) == CONTRADICTED  # every LCAM group inferior
    assert judged(HIGH, HIGH, HIGH) == CONTRADICTED
    assert judged(HIGH, NOISE, HIGH) == INCONCLUSIVE


def test_epochs_ratio_description_reads_slower_beyond_noise_as_contradicted() -> None:
    # digits in the first findings: three LCAM groups slower than m0.9 beyond noise,
    # one not beyond noise; it read "inconclusive" before.
    family = _comparisons(("a", "m0.9", HIGH), ("b", "m0.9", HIGH), ("c", "m0.9", NOISE))
    means = {"m0.9": 0.2, "a": 1.2, "b": 1.2, "c": 0.3}
    assert epochs_ratio_description(family, means).verdict == CONTRADICTED
    assert epochs_ratio_description(_comparisons(("c", "m0.9", NOISE)), means).verdict \
        == INCONCLUSIVE


def test_crossover_verdict_cases() -> None:
    def judged(fine: list[float], coarse: list[float]) -> str:
        f, c = (_comparisons((name, "swap", d))[0]
                for name, d in (("fine", fine), ("coarse", coarse)))
        return crossover_verdict(f, c, fine_name="fine", coarse_name="coarse")[0]

    assert judged(LOW, HIGH) == SUPPORTED
    assert judged(HIGH, HIGH) == CONTRADICTED       # the 10-class direction on 100 too
    assert judged(ZERO, HIGH) == CONTRADICTED       # d(100) shown within the margin
    assert judged(LOW, LOW) == CONTRADICTED         # the 100-class direction on 10 too
    assert judged(NOISE, LOW) == CONTRADICTED
    assert judged(LOW, NOISE) == INCONCLUSIVE       # no flip shown on the 10-class arm
    assert judged(LOW, ZERO) == INCONCLUSIVE
    assert judged(NOISE, HIGH) == INCONCLUSIVE


def test_interaction_needs_a_spread_for_its_intervals() -> None:
    flat = interaction([1.0, 1.0], [0.5, 0.5])
    assert flat.mean == 0.5 and flat.ci_welch is None and flat.ci_bootstrap == (0.5, 0.5)
    one = interaction([1.0], [0.5, 0.7])
    assert one.ci_welch is None and one.ci_bootstrap is None
    with pytest.raises(ValueError):
        interaction([], [1.0])


def test_non_inferiority_of_half_length_runs_on_written_runs(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 10
    base = rng.normal(10.0, 1.0, n)
    finals = {"m0.9": base, "m0.95": base + rng.normal(0, 0.2, n),
              "m0.95_0.9": base + rng.normal(0, 0.2, n), "m0.9_0.95": base + rng.normal(0, 0.2, n),
              "control-m0.933333": base + rng.normal(0, 0.2, n),
              "m0.9-half": base + 2.0 + rng.normal(0, 0.1, n),      # inferior
              "m0.95-half": base + 1.0 + rng.normal(0, 0.5, n),
              "m0.95_0.9-half": base - 0.5 + rng.normal(0, 0.05, n),  # non-inferior
              "m0.9_0.95-half": base + 0.4 + 0.5 * np.array(NOISE)}  # too noisy
    groups = ARM_GROUPS + [_half(g) for g in (FIXED, FIXED95, PAIR, SWAP)]
    _write(tmp_path, "p", finals, groups)
    summary = collect([tmp_path], ["p"])
    preset = summary["presets"]["p"]
    margin = RELATIVE_MARGIN * base.mean()
    # Shortened groups stay out of the final-error family, the rises and the ratios.
    named = {c["a"] for fam in ("final_error", "rise", "ratio") for c in preset[fam]}
    assert not any(name.endswith("-half") for name in named)
    assert preset["epochs"] == EPOCHS and preset["groups"]["m0.9-half"]["epochs"] == EPOCHS // 2
    results = {r["group"]: r for r in preset["half"]}
    assert list(results) == ["m0.9-half", "m0.95-half", "m0.95_0.9-half", "m0.9_0.95-half"]
    alpha = 0.05 / 4
    for name, r in results.items():
        d = finals[name] - finals["m0.9"]
        se = d.std(ddof=1) / math.sqrt(n)
        t = stats.t.ppf(1 - alpha, n - 1)
        assert r["alpha"] == pytest.approx(alpha)
        assert r["upper"] == pytest.approx(d.mean() + t * se, rel=1e-10)
        assert r["lower"] == pytest.approx(d.mean() - t * se, rel=1e-10)
        p_ni = stats.ttest_1samp(d, margin, alternative="less").pvalue
        assert r["p_value"] == pytest.approx(p_ni, rel=1e-9)
        assert (r["verdict"] == NON_INFERIOR) == (p_ni < alpha)
        p_inferior = stats.ttest_1samp(d, margin, alternative="greater").pvalue
        assert (r["verdict"] == INFERIOR) == (p_inferior < alpha)
    assert results["m0.9-half"]["verdict"] == INFERIOR
    assert results["m0.95_0.9-half"]["verdict"] == NON_INFERIOR
    assert results["m0.9_0.95-half"]["verdict"] == "inconclusive"
    assert preset["claims"]["C3"]["verdict"] == SUPPORTED
    assert preset["claims"]["C1"]["verdict"] in (INCONCLUSIVE, CONTRADICTED)
    assert {LOWER, HIGHER} >= {c["verdict"] for c in preset["final_error"]
                               if c["verdict"] in (LOWER, HIGHER)}


def _refresh_script() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / "refresh_findings.py"
    spec = importlib.util.spec_from_file_location("refresh_findings", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_of_the_evidence2_contract_renders_from_written_runs(tmp_path: Path) -> None:
    """The refresh script's presets, crossovers and lr variants, on small fake runs with
    the contract's names: every section of the page is there."""
    import json

    from lcam.report.findings import previous
    from lcam.report.findings_page import readme_table, render

    script = _refresh_script()
    rng = np.random.default_rng(9)
    n = 6
    halves = [_half(g) for g in (FIXED, FIXED95, PAIR, SWAP)]
    levels = {"mnist1d-large-wide": (1.5, 0.2), "mnist1d-100": (40.0, -2.0),
              "mnist1d-100-coarse": (24.0, 1.0)}
    for preset, (level, d) in levels.items():
        finals = _arm(rng, n, level, d, noise=0.1)
        finals.update({g["name"]: finals[g["name"][:-5]] + rng.normal(0.1, 0.1, n)
                       for g in halves})
        _write(tmp_path, preset, finals, ARM_GROUPS + halves)
    for preset in script.LR["variants"]:
        _write(tmp_path, preset, _arm(rng, n, 1.6, 0.1, noise=0.1),
               [FIXED, PAIR, SWAP, CONTROL])
    summary = collect([tmp_path], script.PRESETS, crossovers=script.CROSSOVERS)
    assert [x["label"] for x in summary["crossover"]] == [c[2] for c in script.CROSSOVERS]
    assert {x["verdict"] for x in summary["crossover"]} <= {SUPPORTED, CONTRADICTED, INCONCLUSIVE}
    summary["previous"] = previous(json.loads(script.PREVIOUS.read_text(encoding="utf-8")),
                                   source="earlier.json")
    summary.update(lr=script.LR, sweeps={}, machine={}, figures={}, notes={})
    page = render(json.loads(json.dumps(summary, allow_nan=False)))
    for heading in ("## The short answer", "## Verdicts", "## C2: does the better direction",
                    "## C3: half the training", "## Learning rate: do C1 and C4 hold",
                    "## Power: can these seeds", "## The earlier data sets, re-evaluated"):
        assert heading in page
    assert "| `mnist1d-large-wide-lrx2` | 2 |" in page
    table = readme_table(summary)
    assert "`mnist1d-100-coarse`" in table and "`digits`" in table
    assert "`mnist1d-large-wide-lrx2`" not in table  # the lr variants have their own table


def test_figures_keep_shortened_groups_apart(tmp_path: Path) -> None:
    from lcam.report.analysis import analyze
    from lcam.report.figures import preset_figures
    from lcam.report.runs import load_runs

    finals = {name: np.array([5.0, 5.2, 5.1]) for name in
              ("m0.9", "m0.95_0.9", "m0.9_0.95", "control-m0.933333", "m0.9-half")}
    _write(tmp_path, "p", finals, [FIXED, PAIR, SWAP, CONTROL, _half(FIXED)])
    runs, _ = load_runs([tmp_path])
    (result,) = analyze(runs, {id(r): str(r.path) for r in runs})
    assert result.fixed_group == "m0.9"  # not m0.9-half
    assert {c.a for c in result.comparisons}.isdisjoint({"m0.9-half"})
    figures = preset_figures(result, runs)

    def labels(kind: str) -> list[str]:
        return [t.get_text() for legend in figures[kind].legends for t in legend.get_texts()]

    assert not any("m0.9-half" in label for label in labels("curves"))
    assert any("m0.9-half" in label for label in labels("shortened"))
    assert any(label.startswith("m0.9 (") for label in labels("shortened"))
