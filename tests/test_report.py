"""`lcam.report` on run directories written here by hand, with known numbers.

Every expected number is computed directly in the test (numpy with ddof=1,
``scipy.stats.ttest_ind(equal_var=False)``, a first-index search on a numpy mean curve)
or written out by hand; the report's own code is never used to produce an expectation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from lcam.report import ReportError, build_report, main, paper
from lcam.report.runs import GroupSpec

EPOCHS = 10
PRESET = "c10-cdlr"


def _group(name: str, optimizer: str, **fields: Any) -> dict[str, Any]:
    spec = {
        "name": name,
        "optimizer": optimizer,
        "momentum": None,
        "momentum_above": None,
        "momentum_below": None,
        "role": "paper",
        "matched_to": None,
    }
    spec.update(fields)
    return spec


FIXED = _group("m0.9", "sgd", momentum=0.9)
LCAM_A = _group("m0.857_0.93", "lcam", momentum_below=0.857, momentum_above=0.93)
LCAM_B = _group("m0.93_0.857", "lcam", momentum_below=0.93, momentum_above=0.857)
# A control with momentum exactly 0.9 must not be taken for the fixed-0.9 group
# (its name also sorts before "m0.9").
CONTROL_A = _group(
    "control-m0.857_0.93", "sgd", momentum=0.9, role="control", matched_to="m0.857_0.93"
)

# Final test errors per seed (seeds 0, 1, 2) and the slope of each group's curve: the
# curve of a run is final + slope * (epochs left), identical in shape across seeds.
FINALS = {
    "m0.9": [4.2, 4.0, 4.1],
    "m0.857_0.93": [3.9, 3.95, 3.8],
    "m0.93_0.857": [4.05, 4.3, 4.2],
    "control-m0.857_0.93": [4.4, 4.5, 4.3],
}
SLOPES = {"m0.9": 0.05, "m0.857_0.93": 0.1, "m0.93_0.857": 0.1, "control-m0.857_0.93": 0.2}
SPECS = {g["name"]: g for g in (FIXED, LCAM_A, LCAM_B, CONTROL_A)}
# m0.9 seed 0 dips to 3.5 at epoch index 5 (its best epoch is then 6).
DIP = ("m0.9", 0, 5, 3.5)


def metrics_line(epoch: int, test_error: float, **overrides: Any) -> dict[str, Any]:
    """One metrics.jsonl object with every key of the contract."""
    line: dict[str, Any] = {
        "epoch": epoch,
        "lr": 0.1 * 0.2 ** (epoch // 4),
        "weight_decay": 5e-4,
        "train_loss": 2.0 * math.exp(-epoch / 3) + 0.01,
        "train_accuracy": 90.0,
        "test_loss": 0.3,
        "test_error": test_error,
        "fraction_above": None,
        "loss_average": None,
        "steps": 10,
        "seconds": 1.0,
        "samples_per_second": 1280.0,
    }
    line.update(overrides)
    return line


def write_run(
    root: Path,
    group: dict[str, Any],
    seed: int,
    test_error: list[float],
    *,
    preset: str = PRESET,
    finished: bool = True,
    epochs: int | None = None,
    fraction_above: list[float | None] | None = None,
    data: str = "cifar10",
    model: str = "wrn-28-10",
    schedule: str = "cdlr",
) -> Path:
    """Write config.json, metrics.jsonl (and result.json if finished); return the dir."""
    run = root / preset / group["name"] / f"seed{seed}"
    run.mkdir(parents=True)
    config = {
        "preset": preset,
        "group": group,
        "seed": seed,
        "epochs": epochs if epochs is not None else len(test_error),
        "data": data,
        "model": model,
        "schedule": schedule,
        "config": {"lr": 0.1},
        "versions": {"python": "3"},
        "git_commit": None,
    }
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    fractions = fraction_above or [None] * len(test_error)
    lines = [
        json.dumps(metrics_line(e, err, fraction_above=f))
        for e, (err, f) in enumerate(zip(test_error, fractions, strict=True))
    ]
    (run / "metrics.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if finished:
        result = {
            "status": "finished",
            "epochs": len(test_error),
            "final_test_error": test_error[-1],
            "best_test_error": min(test_error),
            "best_epoch": test_error.index(min(test_error)),
            "seconds": 1.0,
        }
        (run / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return run


def curve(name: str, seed: int) -> list[float]:
    """The test-error curve of a run of the main data set."""
    values = [FINALS[name][seed] + SLOPES[name] * (EPOCHS - 1 - e) for e in range(EPOCHS)]
    if (name, seed) == DIP[:2]:
        values[DIP[2]] = DIP[3]
    return values


def lcam_fractions(seed: int) -> list[float | None]:
    """Alternating fractions whose mean over the 10 epochs is 0.4 + 0.01 * seed."""
    return [0.4 + 0.01 * seed + (0.02 if e % 2 else -0.02) for e in range(EPOCHS)]


def write_main_runs(root: Path) -> Path:
    """Four groups x three finished seeds, and one partial run (seed 3, 4 epochs)."""
    for name, spec in SPECS.items():
        for seed in range(3):
            fractions = lcam_fractions(seed) if spec["optimizer"] == "lcam" else None
            write_run(root, spec, seed, curve(name, seed), fraction_above=fractions)
    write_run(root, LCAM_B, 3, [9.0, 8.0, 7.5, 7.0], finished=False, epochs=EPOCHS)
    return root


@pytest.fixture
def main_runs(tmp_path: Path) -> Path:
    return write_main_runs(tmp_path / "runs")


@pytest.fixture(scope="module")
def figure_report(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The main data set with figures (built once: figures are the slow part)."""
    root = write_main_runs(tmp_path_factory.mktemp("figures") / "runs")
    return build_report([root])


def groups_of(summary: dict[str, Any], preset: str = PRESET) -> dict[str, dict[str, Any]]:
    (entry,) = [p for p in summary["presets"] if p["preset"] == preset]
    return {g["name"]: g for g in entry["groups"]}


def preset_of(summary: dict[str, Any], preset: str = PRESET) -> dict[str, Any]:
    (entry,) = [p for p in summary["presets"] if p["preset"] == preset]
    return entry


# --- the table: means, sample stds, seeds -----------------------------------------


def test_final_error_mean_and_std_equal_numpy_sample_std(main_runs: Path) -> None:
    result = build_report([main_runs], figures=False)
    groups = groups_of(result.summary)
    report = result.report_path.read_text(encoding="utf-8")
    for name, finals in FINALS.items():
        cell = groups[name]["final_test_error"]
        mean, std = float(np.mean(finals)), float(np.std(finals, ddof=1))
        assert cell["n"] == 3
        assert cell["values"] == finals
        assert cell["mean"] == pytest.approx(mean, rel=1e-12)
        assert cell["std"] == pytest.approx(std, rel=1e-12)
        assert f"{mean:.3f} ± {std:.3f} (n=3)" in report


def test_best_epoch_error_is_each_seeds_minimum(main_runs: Path) -> None:
    groups = groups_of(build_report([main_runs], figures=False).summary)
    best = groups["m0.9"]["best_test_error"]
    assert best["values"] == [3.5, 4.0, 4.1]
    assert best["mean"] == pytest.approx(np.mean([3.5, 4.0, 4.1]), rel=1e-12)
    assert best["std"] == pytest.approx(np.std([3.5, 4.0, 4.1], ddof=1), rel=1e-12)
    assert groups["m0.9"]["best_epoch"]["values"] == [6.0, 10.0, 10.0]


def test_fraction_above_is_mean_over_epochs_and_seeds(main_runs: Path) -> None:
    groups = groups_of(build_report([main_runs], figures=False).summary)
    expected = np.mean([np.mean(np.array(lcam_fractions(s), dtype=float)) for s in range(3)])
    assert groups["m0.857_0.93"]["fraction_above"] == pytest.approx(expected, rel=1e-12)
    assert groups["m0.9"]["fraction_above"] is None


def test_partial_runs_are_listed_apart_and_not_in_the_statistics(main_runs: Path) -> None:
    result = build_report([main_runs], figures=False)
    group = groups_of(result.summary)["m0.93_0.857"]
    assert group["finished_seeds"] == [0, 1, 2]
    assert group["partial_seeds"] == [3]
    assert group["final_test_error"]["values"] == FINALS["m0.93_0.857"]
    (partial,) = preset_of(result.summary)["partial_runs"]
    assert (partial["group"], partial["seed"], partial["status"]) == ("m0.93_0.857", 3, "partial")
    assert (partial["epochs_completed"], partial["epochs_planned"]) == (4, EPOCHS)
    assert result.summary["counts"] == {"runs": 13, "finished": 12, "partial": 1}
    assert (result.finished_runs, result.partial_runs) == (12, 1)
    report = result.report_path.read_text(encoding="utf-8")
    section = report.split("### Partial runs (not in the statistics)")[1].split("##")[0]
    assert "| m0.93_0.857 | 3 | partial | 4/10 | 7.000 |" in section
    assert "3 (+1 partial)" in report


def test_group_with_only_partial_runs_has_no_statistics(tmp_path: Path) -> None:
    write_run(tmp_path, FIXED, 0, [5.0, 4.0])
    write_run(tmp_path, FIXED, 1, [5.2, 4.2])
    write_run(tmp_path, LCAM_A, 0, [6.0], finished=False, epochs=2)
    result = build_report([tmp_path], figures=False)
    group = groups_of(result.summary)["m0.857_0.93"]
    assert group["final_test_error"] is None and group["vs_fixed"] is None
    assert "— (0 finished, 1 partial)" in result.report_path.read_text(encoding="utf-8")


# --- Welch tests, intervals, noise -------------------------------------------------


def test_p_values_and_intervals_match_scipy_welch(main_runs: Path) -> None:
    groups = groups_of(build_report([main_runs], figures=False).summary)
    pairs = [
        ("m0.857_0.93", "vs_fixed", "m0.9"),
        ("m0.93_0.857", "vs_fixed", "m0.9"),
        ("control-m0.857_0.93", "vs_fixed", "m0.9"),
        ("m0.857_0.93", "vs_control", "control-m0.857_0.93"),
    ]
    for name, key, against in pairs:
        expected = stats.ttest_ind(FINALS[name], FINALS[against], equal_var=False)
        interval = expected.confidence_interval(0.95)
        got = groups[name][key]
        assert got["against"] == against
        assert got["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
        assert got["t_statistic"] == pytest.approx(expected.statistic, rel=1e-12)
        assert got["df"] == pytest.approx(expected.df, rel=1e-12)
        assert got["ci_low"] == pytest.approx(interval.low, rel=1e-9)
        assert got["ci_high"] == pytest.approx(interval.high, rel=1e-9)
        assert got["difference"] == pytest.approx(
            np.mean(FINALS[name]) - np.mean(FINALS[against]), rel=1e-12
        )
        assert got["significant"] == (expected.pvalue < 0.05)
    assert groups["m0.9"]["vs_fixed"] is None  # the reference itself
    assert groups["m0.93_0.857"]["vs_control"] is None  # no control matched to it


def test_fixed_group_and_control_are_read_from_config_not_from_names(tmp_path: Path) -> None:
    baseline = _group("baseline", "sgd", momentum=0.9)
    misleading = _group("m0.9", "sgd", momentum=0.95)
    lcam = _group("lcam-a", "lcam", momentum_below=0.95, momentum_above=0.9)
    control = _group("zz-ctl", "sgd", momentum=0.92, role="control", matched_to="lcam-a")
    finals = {"baseline": [4.0, 4.2], "m0.9": [5.0, 5.5], "lcam-a": [3.0, 3.3], "zz-ctl": [6, 7]}
    for spec in (baseline, misleading, lcam, control):
        for seed, final in enumerate(finals[spec["name"]]):
            write_run(tmp_path, spec, seed, [10.0, float(final)])
    result = build_report([tmp_path], figures=False)
    preset = preset_of(result.summary)
    assert preset["fixed_group"] == "baseline"
    assert preset["target_error"] == pytest.approx(4.1, rel=1e-12)
    groups = groups_of(result.summary)
    assert groups["lcam-a"]["vs_fixed"]["against"] == "baseline"
    assert groups["lcam-a"]["vs_control"]["against"] == "zz-ctl"
    assert groups["m0.9"]["vs_control"] is None


def test_single_seed_shows_n1_without_std_or_p_value(tmp_path: Path) -> None:
    write_run(tmp_path, FIXED, 0, [5.0, 4.1])
    write_run(tmp_path, LCAM_A, 0, [5.0, 3.9])
    result = build_report([tmp_path], figures=False)
    groups = groups_of(result.summary)
    assert groups["m0.9"]["final_test_error"]["std"] is None
    comparison = groups["m0.857_0.93"]["vs_fixed"]
    assert comparison["p_value"] is None and comparison["ci_low"] is None
    assert comparison["verdict"] == "needs ≥2 seeds"
    report = result.report_path.read_text(encoding="utf-8")
    assert "**3.900 (n=1)** †" in report
    assert "needs ≥2 seeds (n=1 vs 1)" in report
    assert "within noise of m0.9 (needs ≥2 seeds): not a clear win" in report


def test_lowest_mean_within_noise_carries_the_caveat(tmp_path: Path) -> None:
    fixed, lcam = [4.0, 4.4, 3.8], [3.9, 4.2, 4.0]
    for seed in range(3):
        write_run(tmp_path, FIXED, seed, [9.0, fixed[seed]])
        write_run(tmp_path, LCAM_A, seed, [9.0, lcam[seed]])
    result = build_report([tmp_path], figures=False)
    p = stats.ttest_ind(lcam, fixed, equal_var=False).pvalue
    assert p >= 0.05
    best = preset_of(result.summary)["best"]
    assert (best["group"], best["clear"]) == ("m0.857_0.93", False)
    report = result.report_path.read_text(encoding="utf-8")
    cell = f"**{np.mean(lcam):.3f} ± {np.std(lcam, ddof=1):.3f} (n=3)** †"
    assert cell in report
    assert f"† m0.857_0.93 has the lowest mean but is within noise of m0.9 (p={p:.3f})" in report
    assert "within noise, the seeds do not separate these two groups" in report
    assert "within noise)" in report  # overview


def test_clear_best_is_bold_without_caveat(tmp_path: Path) -> None:
    fixed, lcam = [4.0, 4.1, 4.05], [3.0, 3.1, 3.05]
    for seed in range(3):
        write_run(tmp_path, FIXED, seed, [9.0, fixed[seed]])
        write_run(tmp_path, LCAM_A, seed, [9.0, lcam[seed]])
    result = build_report([tmp_path], figures=False)
    assert preset_of(result.summary)["best"]["clear"] is True
    report = result.report_path.read_text(encoding="utf-8")
    assert f"**{np.mean(lcam):.3f} ± {np.std(lcam, ddof=1):.3f} (n=3)** |" in report
    assert "**3.050 ± 0.050 (n=3)** |" in report and "†" not in report
    assert "beyond the seed noise" in report


# --- epochs to the fixed-0.9 group's final error ----------------------------------


def test_epochs_to_target_match_a_direct_computation(main_runs: Path) -> None:
    result = build_report([main_runs], figures=False)
    preset = preset_of(result.summary)
    target = float(np.mean(FINALS["m0.9"]))
    assert preset["target_error"] == pytest.approx(target, rel=1e-12)
    groups = groups_of(result.summary)
    for name in FINALS:
        mean = np.mean([curve(name, s) for s in range(3)], axis=0)
        hits = np.nonzero(mean <= target + 1e-12)[0]
        expected = int(hits[0]) + 1 if hits.size else None
        assert groups[name]["epochs_to_target"] == expected
    # By hand: m0.9's mean dips to (3.5 + 4.2 + 4.3) / 3 = 4.0 at epoch index 5;
    # m0.857_0.93's mean 3.8833 + 0.1 * (9 - e) is <= 4.1 from e = 7 on.
    assert groups["m0.9"]["epochs_to_target"] == 6
    assert groups["m0.857_0.93"]["epochs_to_target"] == 8
    assert groups["m0.857_0.93"]["epochs_to_target_fraction"] == pytest.approx(0.8)
    assert groups["m0.93_0.857"]["epochs_to_target"] is None
    report = result.report_path.read_text(encoding="utf-8")
    assert "| 8 of 10 (80%) |" in report
    assert "never (of 10)" in report
    assert "reached after 8 of 10 epochs (80%)" in report


# --- the paper's Table 1 ------------------------------------------------------------


def test_matching_preset_shows_the_papers_row(main_runs: Path) -> None:
    result = build_report([main_runs], figures=False)
    preset = preset_of(result.summary)
    assert preset["paper_row"]["label"] == "CIFAR-10, WRN-28-10, SGD+Cdlr"
    groups = groups_of(result.summary)
    assert groups["m0.9"]["paper_column"] == "M0.9"
    assert groups["m0.857_0.93"]["paper_value"] == {"mean": 3.95, "std": 0.12, "decimals": 2}
    assert groups["control-m0.857_0.93"]["paper_column"] is None
    report = result.report_path.read_text(encoding="utf-8")
    row = "| paper, Table 1: CIFAR-10, WRN-28-10, SGD+Cdlr | 4.11 ± 0.09 (M0.9) | "
    assert row + "**3.95 ± 0.12 (M0.857-0.93)** | 4.05 ± 0.08 (M0.93-0.857) | — |" in report
    side_by_side = report.split("## Table 1 side by side")[1].split("## Preset")[0]
    cells = [f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f} (n=3)" for v in FINALS.values()]
    assert (
        f"| CIFAR-10, WRN-28-10, SGD+Cdlr | [{PRESET}](#preset-{PRESET}) | {cells[0]} | "
        f"4.11 ± 0.09 | **{cells[1]}** | **3.95 ± 0.12** | {cells[2]} | 4.05 ± 0.08 |"
    ) in side_by_side


def test_preset_outside_table1_has_no_paper_row(tmp_path: Path) -> None:
    write_run(tmp_path, FIXED, 0, [5.0, 4.0], schedule="step")
    result = build_report([tmp_path], figures=False)
    assert preset_of(result.summary)["paper_row"] is None
    assert "paper, Table 1" not in result.report_path.read_text(encoding="utf-8")


def test_table1_data_holds_the_published_values() -> None:
    published = {
        ("speechcommands", "m11", "cdlr"): [(5.788, 0.142), (5.470, 0.091), (5.625, 0.173)],
        ("cifar10", "wrn-28-10", "cdlr"): [(4.11, 0.09), (3.95, 0.12), (4.05, 0.08)],
        ("cifar10", "vit-b16", "constant"): [(1.24, 0.07), (1.20, 0.08), (1.25, 0.07)],
        ("cifar100", "wrn-28-10", "cdlr"): [(19.21, 0.08), (19.24, 0.13), (19.11, 0.21)],
        ("cifar100", "vit-b16", "constant"): [(7.37, 0.18), (7.61, 0.12), (7.59, 0.24)],
    }
    assert len(paper.TABLE1) == 5
    for key, values in published.items():
        row = paper.find_row(*key)
        assert row is not None
        got = [row.values[c] for c in ("M0.9", "M0.857-0.93", "M0.93-0.857")]
        assert [(v.mean, v.std) for v in got] == values
    assert paper.find_row("cifar10", "wrn-28-10", "step") is None
    speech = paper.find_row("speechcommands", "m11", "cdlr")
    assert speech is not None and speech.best == "M0.857-0.93"
    assert speech.values["M0.857-0.93"].text() == "5.470 ± 0.091"
    references = paper.references_for("cifar100", "vit-b16")
    assert [(r.method, r.value.mean, r.value.std) for r in references] == [
        ("SGD+cosine", 7.94, None),
        ("Adam", 8.00, 0.63),
    ]


def test_paper_columns_map_by_momentum_values() -> None:
    balanced = 1 - 0.01 / 0.07  # 0.857142..., printed 0.857 in the paper
    low_high = GroupSpec("b", "lcam", momentum_above=0.93, momentum_below=balanced)
    high_low = GroupSpec("c", "lcam", momentum_above=balanced, momentum_below=0.93)
    other = GroupSpec("d", "lcam", momentum_above=0.9, momentum_below=0.95)
    assert paper.column_for(GroupSpec("a", "sgd", momentum=0.9)) == "M0.9"
    assert paper.column_for(low_high) == "M0.857-0.93"
    assert paper.column_for(high_low) == "M0.93-0.857"
    assert paper.column_for(other) is None
    control = GroupSpec("e", "sgd", momentum=0.9, role="control", matched_to=("b",))
    assert paper.column_for(control) is None


# --- discovery: run dirs, preset dirs, several dirs -------------------------------


def test_a_run_dir_a_preset_dir_and_several_dirs_are_accepted(tmp_path: Path) -> None:
    root = write_main_runs(tmp_path / "runs")
    run = root / PRESET / "m0.9" / "seed0"
    assert build_report([run], figures=False).summary["counts"]["runs"] == 1
    assert (run / "report.md").exists()
    assert build_report([root / PRESET], figures=False).summary["counts"]["runs"] == 13
    # A cluster sweep: every run had its own output directory.
    cluster = tmp_path / "cluster"
    for seed in range(2):
        write_run(cluster / f"job{seed}", FIXED, seed, [5.0, 4.0 + seed])
        write_run(cluster / f"job{seed + 2}", LCAM_A, seed, [5.0, 3.5 + seed])
    jobs = sorted(cluster.iterdir())
    result = build_report(jobs, tmp_path / "merged", figures=False)
    assert result.summary["counts"]["runs"] == 4
    assert groups_of(result.summary)["m0.9"]["final_test_error"]["values"] == [4.0, 5.0]
    assert result.report_path == tmp_path / "merged" / "report.md"
    assert result.summary["sources"] == [str(j) for j in jobs]


def test_the_same_run_in_two_dirs_is_an_error(tmp_path: Path) -> None:
    first = write_run(tmp_path / "a", FIXED, 0, [5.0, 4.0])
    second = write_run(tmp_path / "b", FIXED, 0, [5.0, 4.1])
    with pytest.raises(ReportError) as info:
        build_report([tmp_path / "a", tmp_path / "b"], figures=False)
    assert str(info.value) == (
        f"run {PRESET}/m0.9/seed0 found twice: {first} and {second} (pass only one of them)"
    )


def test_directory_without_runs_names_it_and_the_expected_layout(tmp_path: Path) -> None:
    # A config.json outside a seed<K> directory (e.g. a cached model) is not a run.
    (tmp_path / "models" / "vit").mkdir(parents=True)
    (tmp_path / "models" / "vit" / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ReportError) as info:
        build_report([tmp_path])
    assert str(info.value) == (
        f"no runs found in {tmp_path}: expected <preset>/<group>/seed<K>/config.json below it "
        "(run `lcam train` or `lcam sweep` first)"
    )
    with pytest.raises(ReportError, match="^.*missing: not a directory$"):
        build_report([tmp_path / "missing"])


def test_seed_dir_without_config_is_named(tmp_path: Path) -> None:
    failed = tmp_path / PRESET / "m0.9" / "seed1"
    failed.mkdir(parents=True)
    (failed / "train.log").write_text("Traceback ...\n", encoding="utf-8")
    with pytest.raises(ReportError) as info:
        build_report([tmp_path])
    assert str(info.value).endswith(
        f"; 1 seed<K> directories have no config.json, e.g. {failed} "
        "(did the run fail before it started? see its train.log)"
    )
    write_run(tmp_path, FIXED, 0, [5.0, 4.0])
    result = build_report([tmp_path], figures=False)
    assert result.warnings == (
        f"{failed}: no config.json, not reported (did the run fail before it started? "
        "see its train.log)",
    )


# --- corrupt input: the file and line are named ------------------------------------


def _metrics_with(tmp_path: Path, lines: list[str]) -> Path:
    run = write_run(tmp_path, FIXED, 0, [5.0, 4.0])
    (run / "result.json").unlink()
    path = run / "metrics.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _raises(tmp_path: Path) -> str:
    with pytest.raises(ReportError) as info:
        build_report([tmp_path], figures=False)
    return str(info.value)


def test_metrics_line_that_is_not_json_names_file_and_line(tmp_path: Path) -> None:
    good = json.dumps(metrics_line(0, 5.0))
    path = _metrics_with(tmp_path, [good, '{"epoch": 1, "lr": 0.1,'])
    message = _raises(tmp_path)
    assert message.startswith(f"{path} line 2: not valid JSON (")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ({k: v for k, v in metrics_line(0, 5.0).items() if k != "test_error"},
         "line 1: missing key 'test_error'"),
        ({k: v for k, v in metrics_line(0, 5.0).items() if k != "fraction_above"},
         "line 1: missing key 'fraction_above'"),
        (metrics_line(0, "abc"), "line 1: 'test_error' must be a number, got 'abc'"),
        (dict(metrics_line(0, 5.0), epoch=True), "line 1: 'epoch' must be an integer, got True"),
        ([1, 2], "line 1: expected a JSON object, got list"),
        (metrics_line(1, 5.0), "line 1: epoch 1 follows epoch -1 (epochs missing)"),
    ],
)  # fmt: skip
def test_metrics_line_with_bad_content_names_file_and_line(
    tmp_path: Path, line: Any, expected: str
) -> None:
    path = _metrics_with(tmp_path, [json.dumps(line)])
    assert _raises(tmp_path) == f"{path} {expected}"


def test_unfinished_last_line_of_a_partial_run_is_left_out_with_a_warning(
    tmp_path: Path,
) -> None:
    good = json.dumps(metrics_line(0, 5.0))
    path = _metrics_with(tmp_path, [good])
    path.write_text(good + '\n{"epoch": 1, "lr"', encoding="utf-8")  # no newline yet
    result = build_report([tmp_path], figures=False)
    assert result.summary["runs"][0]["epochs_completed"] == 1
    assert result.warnings == (
        f"{path} line 2: left out an unfinished last line (still being written?)",
    )
    assert "## Warnings" in result.report_path.read_text(encoding="utf-8")
    # In a finished run the same line is corruption.
    result_json = {"status": "finished", "epochs": 1, "final_test_error": 5.0}
    (path.parent / "result.json").write_text(json.dumps(result_json), encoding="utf-8")
    assert _raises(tmp_path).startswith(f"{path} line 2: not valid JSON (")


def test_gap_in_epochs_names_the_line(tmp_path: Path) -> None:
    lines = [json.dumps(metrics_line(e, 5.0)) for e in (0, 1, 3)]
    path = _metrics_with(tmp_path, lines)
    assert _raises(tmp_path) == f"{path} line 3: epoch 3 follows epoch 1 (epochs missing)"


def test_resumed_run_that_redid_an_epoch_keeps_the_later_line(tmp_path: Path) -> None:
    lines = [json.dumps(metrics_line(e, err)) for e, err in ((0, 9.0), (1, 8.0), (1, 7.0))]
    path = _metrics_with(tmp_path, lines)
    result = {"status": "finished", "epochs": 2, "final_test_error": 7.0}
    (path.parent / "result.json").write_text(json.dumps(result), encoding="utf-8")
    summary = build_report([tmp_path], figures=False).summary
    assert summary["runs"][0]["final_test_error"] == 7.0
    assert summary["runs"][0]["epochs_completed"] == 2


def test_corrupt_config_and_result_name_the_file(tmp_path: Path) -> None:
    run = write_run(tmp_path, FIXED, 0, [5.0, 4.0])
    (run / "config.json").write_text("{", encoding="utf-8")
    assert _raises(tmp_path).startswith(f"{run / 'config.json'}: not valid JSON (")
    config = {"preset": PRESET, "group": FIXED, "epochs": 2}
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert _raises(tmp_path) == f"{run / 'config.json'}: missing key 'seed'"
    config["seed"] = 0
    config["group"] = dict(FIXED, optimizer="adam")
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert _raises(tmp_path) == (
        f"{run / 'config.json'} (group): 'optimizer' must be 'sgd' or 'lcam', got 'adam'"
    )
    (run / "config.json").write_text(json.dumps(dict(config, group=FIXED)), encoding="utf-8")
    (run / "result.json").write_text(json.dumps({"status": "finished", "epochs": 3}))
    assert _raises(tmp_path) == (
        f"{run / 'result.json'}: says 3 epochs finished but {run / 'metrics.jsonl'} has "
        "2 epoch lines"
    )


def test_finished_runs_of_a_group_with_different_epochs_are_an_error(tmp_path: Path) -> None:
    first = write_run(tmp_path, FIXED, 0, [5.0, 4.0])
    second = write_run(tmp_path, FIXED, 1, [5.0, 4.5, 4.0])
    assert _raises(tmp_path) == (
        f"preset {PRESET}, group m0.9: finished runs have different numbers of epochs "
        f"(2 in {first}, 3 in {second})"
    )


def test_runs_of_one_preset_on_different_data_are_an_error(tmp_path: Path) -> None:
    # Runs are read in path order: m0.857_0.93 before m0.9.
    cifar10 = write_run(tmp_path, FIXED, 0, [5.0, 4.0])
    cifar100 = write_run(tmp_path, LCAM_A, 0, [5.0, 4.0], data="cifar100")
    assert _raises(tmp_path) == (
        f"preset {PRESET}: runs disagree on the data set ('data'): 'cifar100' in {cifar100} "
        f"but 'cifar10' in {cifar10}"
    )


# --- summary.json, the command line ---------------------------------------------------


def _no_constants(name: str) -> float:
    raise AssertionError(f"summary.json holds {name}, which is not strict JSON")


def test_summary_json_is_strict_json_with_per_run_finals(main_runs: Path) -> None:
    result = build_report([main_runs], figures=False)
    text = result.summary_path.read_text(encoding="utf-8")
    summary = json.loads(text, parse_constant=_no_constants)
    assert summary == json.loads(json.dumps(result.summary))
    runs = {(r["group"], r["seed"]): r for r in summary["runs"]}
    assert len(runs) == 13
    for name in FINALS:
        for seed in range(3):
            run = runs[(name, seed)]
            assert run["final_test_error"] == curve(name, seed)[-1]
            assert run["best_test_error"] == min(curve(name, seed))
            assert run["status"] == "finished"
            assert run["path"] == f"{PRESET}/{name}/seed{seed}"
    assert summary["conventions"]["alpha"] == 0.05


def test_nan_final_error_is_written_as_null_and_not_tested(tmp_path: Path) -> None:
    write_run(tmp_path, FIXED, 0, [5.0, 4.0])
    write_run(tmp_path, FIXED, 1, [5.0, 4.2])
    write_run(tmp_path, LCAM_A, 0, [5.0, float("nan")])
    write_run(tmp_path, LCAM_A, 1, [5.0, 4.1])
    result = build_report([tmp_path], figures=False)
    json.loads(result.summary_path.read_text(encoding="utf-8"), parse_constant=_no_constants)
    group = groups_of(result.summary)["m0.857_0.93"]
    assert group["final_test_error"]["mean"] is None
    assert group["vs_fixed"]["verdict"] == "not testable (NaN or infinite values)"
    assert preset_of(result.summary)["best"]["group"] == "m0.9"


def test_command_line_writes_to_out_and_reports_errors(
    main_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main([str(main_runs), "--out", str(out), "--no-figures"]) == 0
    assert f"wrote {out / 'report.md'}, {out / 'summary.json'} (12 finished runs, 1 partial)" in (
        capsys.readouterr().out
    )
    assert (out / "report.md").exists() and not (main_runs / "report.md").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 1
    assert capsys.readouterr().err.startswith(f"lcam report: error: no runs found in {empty}:")


# --- figures --------------------------------------------------------------------------

FIGURES = ("curves", "test_error", "train_loss", "lr", "fraction_above")


def test_figures_are_written_as_png_and_svg(figure_report: Any) -> None:
    figures = figure_report.out_dir / "figures"
    expected = {figures / f"{PRESET}_{kind}.{fmt}" for kind in FIGURES for fmt in ("png", "svg")}
    assert set(figure_report.figure_paths) == expected
    for kind in FIGURES:
        svg = (figures / f"{PRESET}_{kind}.svg").read_text(encoding="utf-8")
        assert "<svg" in svg
    assert "m0.857_0.93" in (figures / f"{PRESET}_curves.svg").read_text(encoding="utf-8")
    report = figure_report.report_path.read_text(encoding="utf-8")
    assert f"![{PRESET}: test error and train loss per epoch](figures/{PRESET}_curves.png)" in (
        report
    )
    listed = preset_of(figure_report.summary)["figures"]
    assert sorted(listed) == sorted(f"figures/{p.name}" for p in expected)


@pytest.mark.parametrize("kind", FIGURES)
def test_png_figures_are_not_blank(figure_report: Any, kind: str) -> None:
    import matplotlib.image

    path = figure_report.out_dir / "figures" / f"{PRESET}_{kind}.png"
    pixels = matplotlib.image.imread(path)[..., :3]
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    assert float(pixels.std()) > 0.05
    non_white = np.any(pixels < 0.9, axis=-1)
    assert non_white.mean() > 0.02
    # Coloured pixels (the data lines, not black text or grey grid): channels differ.
    coloured = (pixels.max(axis=-1) - pixels.min(axis=-1)) > 0.3
    assert coloured.sum() > 500
