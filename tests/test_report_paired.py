"""Paired statistics, the comparison family, the claims: against direct numpy/scipy
computations, on run directories that the tests write."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from report_groups import CONTROL, FIXED, FIXED95, PAIR, SWAP
from scipy import stats
from test_report import write_run

from lcam.report.claims import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_MEASURED,
    SUPPORTED,
    direction_verdict,
)
from lcam.report.comparisons import preset_comparisons
from lcam.report.findings import collect
from lcam.report.findings_page import render
from lcam.report.paired import (
    BOOTSTRAP_RESAMPLES,
    EQUIVALENT,
    HIGHER,
    LOWER,
    holm,
    minimum_detectable_effect,
    paired,
    verdict,
)
from lcam.report.runs import GroupSpec


def _values(seed: int, n: int, shift: float, noise: float = 0.3) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    base = rng.normal(5.0, 1.0, n)  # the per-seed level both groups share
    a = base + shift + rng.normal(0.0, noise, n)
    b = base + rng.normal(0.0, noise, n)
    return dict(enumerate(a.tolist())), dict(enumerate(b.tolist()))


def test_paired_statistics_equal_scipy_and_numpy() -> None:
    a, b = _values(1, 12, shift=-0.4)
    c = paired(a, b, name="A", against="B", kind="k", margin=0.3)
    assert c is not None
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    d = x - y
    assert c.seeds == tuple(range(12)) and c.differences == tuple(d.tolist())
    assert c.mean_difference == pytest.approx(d.mean(), abs=1e-12)
    assert c.std_difference == pytest.approx(d.std(ddof=1), abs=1e-12)
    reference = stats.ttest_rel(x, y)
    assert c.p_t == pytest.approx(reference.pvalue, rel=1e-12)
    low, high = reference.confidence_interval(0.95)
    assert c.ci_t == pytest.approx((low, high), rel=1e-10)
    assert c.p_wilcoxon == pytest.approx(stats.wilcoxon(x, y).pvalue, rel=1e-12)
    # TOST: both one-sided tests against the margins, the larger p decides.
    p_low = stats.ttest_1samp(d, -0.3, alternative="greater").pvalue
    p_high = stats.ttest_1samp(d, 0.3, alternative="less").pvalue
    assert c.p_equivalence == pytest.approx(max(p_low, p_high), rel=1e-10)
    # Bootstrap: percentile interval of resampled means (fixed generator).
    picks = np.random.default_rng(0).integers(0, 12, size=(BOOTSTRAP_RESAMPLES, 12))
    means = d[picks].mean(axis=1)
    assert c.ci_bootstrap == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert c.probability_lower == pytest.approx(np.mean(d < 0))
    low_p, high_p = c.probability_lower_ci  # type: ignore[misc]
    assert 0.0 <= low_p <= c.probability_lower <= high_p <= 1.0


def test_only_common_seeds_are_paired_and_ties_count_half() -> None:
    c = paired({0: 1.0, 1: 2.0, 2: 3.0, 5: 9.0}, {0: 1.0, 1: 2.5, 2: 2.0, 7: 0.0},
               name="A", against="B", kind="k", margin=0.3)
    assert c is not None and c.seeds == (0, 1, 2)
    assert c.differences == (0.0, -0.5, 1.0)
    assert c.probability_lower == pytest.approx((0.5 + 1 + 0) / 3)
    assert paired({0: 1.0}, {1: 1.0}, name="A", against="B", kind="k", margin=0.3) is None
    with pytest.raises(ValueError, match="Invalid equivalence margin: 0"):
        paired({0: 1.0}, {0: 1.0}, name="A", against="B", kind="k", margin=0)


def test_minimum_detectable_effect_has_the_stated_power_by_simulation() -> None:
    n, std, alpha = 10, 0.5, 0.05
    mde = minimum_detectable_effect(std, n, alpha=alpha)
    assert mde is not None
    # The normal approximation is a lower bound for the t-test's effect.
    normal = (stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(0.8)) * std / math.sqrt(n)
    assert mde > normal
    rng = np.random.default_rng(7)
    d = rng.normal(mde, std, size=(20000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    power = np.mean(np.abs(t) > stats.t.ppf(1 - alpha / 2, n - 1))
    assert power == pytest.approx(0.8, abs=0.015)
    assert minimum_detectable_effect(std, n, alpha=alpha / 10) > mde  # stricter level
    assert minimum_detectable_effect(0.0, n) is None


def test_holm_adjusts_like_the_textbook_procedure() -> None:
    comparisons = []
    for p_shift in (-1.0, -0.5, -0.2, 0.0):
        a, b = _values(3, 8, shift=p_shift)
        c = paired(a, b, name=f"A{p_shift}", against="B", kind="k", margin=0.3)
        assert c is not None
        comparisons.append(c)
    adjusted = holm(comparisons)
    p = np.array([c.p_t for c in comparisons])
    order = np.argsort(p)
    expected = np.empty(4)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (4 - rank) * p[index]))
        expected[index] = running
    assert [c.p_holm for c in adjusted] == pytest.approx(expected.tolist(), rel=1e-12)


def test_verdicts_lower_higher_equivalent_inconclusive() -> None:
    def judged(shift: float, noise: float, n: int = 20) -> str:
        a, b = _values(5, n, shift=shift, noise=noise)
        c = paired(a, b, name="A", against="B", kind="k", margin=0.3)
        assert c is not None
        return verdict(holm([c])[0]).verdict

    assert judged(-1.0, 0.2) == LOWER
    assert judged(+1.0, 0.2) == HIGHER
    assert judged(0.0, 0.05) == EQUIVALENT
    assert judged(0.0, 1.0, n=4) == "inconclusive"


def _spec(name: str, **fields: object) -> GroupSpec:
    optimizer = "lcam" if "momentum_above" in fields else "sgd"
    return GroupSpec(name=name, optimizer=optimizer, **fields)  # type: ignore[arg-type]


def test_the_family_pairs_each_group_with_fixed_control_and_swap() -> None:
    specs = {
        "m0.9": _spec("m0.9", momentum=0.9, role="paper"),
        "m0.95_0.9": _spec("m0.95_0.9", momentum_below=0.95, momentum_above=0.9, role="paper"),
        "m0.9_0.95": _spec("m0.9_0.95", momentum_below=0.9, momentum_above=0.95, role="paper"),
        "c": _spec("c", momentum=0.93, role="control", matched_to=("m0.95_0.9", "m0.9_0.95")),
    }
    rng = np.random.default_rng(0)
    finals = {name: dict(enumerate(rng.normal(5, 1, 6).tolist())) for name in specs}
    family = preset_comparisons(specs, finals, fixed_group="m0.9",
                                controls={"m0.95_0.9": "c", "m0.9_0.95": "c"})
    assert [(c.a, c.against, c.kind) for c in family] == [
        ("m0.95_0.9", "m0.9", "vs m0.9"), ("m0.95_0.9", "c", "vs control"),
        ("m0.95_0.9", "m0.9_0.95", "vs swap"), ("m0.9_0.95", "m0.9", "vs m0.9"),
        ("m0.9_0.95", "c", "vs control"), ("c", "m0.9", "vs m0.9")]
    # Minimum detectable effects at the Bonferroni level of 6 comparisons.
    first = family[0]
    assert first.alpha_mde == pytest.approx(0.05 / 6)
    assert first.minimum_detectable_effect == pytest.approx(
        minimum_detectable_effect(first.std_difference or 0.0, 6, alpha=0.05 / 6))


def test_direction_across_data_sets() -> None:
    assert direction_verdict({"a": LOWER, "b": HIGHER})[0] == SUPPORTED
    assert direction_verdict({"a": LOWER, "b": LOWER})[0] == CONTRADICTED
    assert direction_verdict({"a": EQUIVALENT, "b": EQUIVALENT})[0] == CONTRADICTED
    assert direction_verdict({"a": LOWER, "b": INCONCLUSIVE})[0] == INCONCLUSIVE




def _write_preset(root: Path, seeds: int = 10) -> dict[str, dict[int, list[float]]]:
    """A preset where m0.95_0.9 is clearly better than everything, m0.95 rises late."""
    rng = np.random.default_rng(11)
    curves: dict[str, dict[int, list[float]]] = {}
    for seed in range(seeds):
        level = rng.normal(10.0, 1.0)
        finals = {"m0.9": level, "m0.95": level + rng.normal(0, 0.05),
                  "m0.95_0.9": level - 2.0 + rng.normal(0, 0.2),
                  "m0.9_0.95": level + rng.normal(0, 0.05),
                  "control-m0.933333": level + rng.normal(0, 0.05)}
        for group in (FIXED, FIXED95, PAIR, SWAP, CONTROL):
            final = finals[group["name"]]
            values = [final + 8.0 - e for e in range(8)] + [final, final]
            if group is FIXED95:  # dips 2 points below its final, then rises
                values[7] = final - 2.0 + rng.normal(0, 0.05)
            curves.setdefault(group["name"], {})[seed] = values
            write_run(root, group, seed, values, preset="p", data="d", model="m")
    return curves


def test_claims_on_written_run_directories(tmp_path: Path) -> None:
    curves = _write_preset(tmp_path)
    summary = collect([tmp_path], ["p"])
    preset = summary["presets"]["p"]
    assert preset["margin"] == pytest.approx(0.04 * preset["fixed_mean"])
    final = {(c["a"], c["against"]): c for c in preset["final_error"]}
    pair = final[("m0.95_0.9", "m0.9")]
    x = np.array([curves["m0.95_0.9"][s][-1] for s in range(10)])
    y = np.array([curves["m0.9"][s][-1] for s in range(10)])
    assert pair["mean_difference"] == pytest.approx((x - y).mean(), abs=1e-12)
    assert pair["p_t"] == pytest.approx(stats.ttest_rel(x, y).pvalue, rel=1e-10)
    assert pair["verdict"] == LOWER
    claims = preset["claims"]
    assert claims["C1"]["verdict"] == SUPPORTED
    assert claims["C4"]["verdict"] == SUPPORTED  # beats its shared control
    assert claims["C2"]["direction"] == LOWER  # m0.95_0.9 below m0.9_0.95
    # Rise = final - best: 2 points for m0.95, 0 for m0.9 and the LCAM pair.
    rise = {(c["a"], c["against"]): c for c in preset["rise"]}
    assert rise[("m0.95", "m0.9")]["mean_difference"] == pytest.approx(2.0, abs=0.1)
    assert claims["C5"]["verdict"] == SUPPORTED
    # C3: m0.95_0.9 reaches m0.9's final (level) 2 points early: epoch 7 of 10.
    assert preset["ratio_means"]["m0.9"] == pytest.approx(0.9)
    assert preset["ratio_means"]["m0.95_0.9"] == pytest.approx(0.7, abs=0.1)
    # Faster than m0.9's own 0.9, but every group's ratio is surely above 0.6: not half.
    # That is a description now: C3 as stated needs half-length runs.
    assert preset["ratio_claim"]["verdict"] == CONTRADICTED
    assert claims["C3"]["verdict"] == NOT_MEASURED
    sweeps = {"x": {"command": "lcam sweep x", "seconds": 60.0, "runs": 50, "conditions": ""}}
    page = render({**summary, "sweeps": sweeps, "machine": {}})
    assert ("| **C1** LCAM beats fixed 0.9 in final test error | **supported** · ±0.3: "
            "same |") in page
    assert "- `lcam sweep x`: 50 runs, 1 min wall time." in page


def test_lcam_report_leads_each_preset_with_the_paired_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lcam.cli import main
    from lcam.report.build import build_report

    _write_preset(tmp_path, seeds=6)
    result = build_report([tmp_path], figures=False, margin=0.5)
    report = result.report_path.read_text(encoding="utf-8")
    section = report.split("## Preset `p`")[1]
    assert section.index("### Verdicts (paired by seed)") < section.index("### Final test error")
    assert "| **lower** | m0.95_0.9 vs m0.9 | 6 |" in section
    assert "within ±0.5 points" in section
    comparisons = result.summary["presets"][0]["comparisons"]
    assert {(c["a"], c["against"], c["kind"]) for c in comparisons} >= {
        ("m0.95_0.9", "m0.9", "vs m0.9"), ("m0.95_0.9", "control-m0.933333", "vs control"),
        ("m0.95_0.9", "m0.9_0.95", "vs swap")}
    assert all(c["p_holm"] >= c["p_t"] for c in comparisons)

    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["report", str(tmp_path), "--equivalence-margin", "0"]) == 2
    assert "invalid --equivalence-margin 0.0 (must be > 0 points" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_identical_differences_on_every_seed_are_not_tested() -> None:
    c = paired({0: 2.5, 1: 2.8, 2: 2.5}, {0: 2.5, 1: 2.8, 2: 2.5}, name="A", against="B",
               kind="k", margin=0.3)
    assert c is not None and c.std_difference == 0.0
    assert (c.p_t, c.p_equivalence, c.minimum_detectable_effect) == (None, None, None)
    assert verdict(holm([c])[0]).verdict == "inconclusive"
