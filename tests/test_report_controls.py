"""One control per momentum in the report: new-format and old-format run trees, figures.

The new harness writes one control per distinct momentum (``control-m0.933333``,
``"matched_to": ["m0.95_0.9", "m0.9_0.95"]``); run directories written before it hold
one control per LCAM group (``control-m0.95_0.9``, ``control-m0.9_0.95``, each
``"matched_to"`` one name) with the same momentum. Both must report one control that
both LCAM groups compare against. Expected numbers come from numpy/scipy directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from scipy import stats
from test_report import PRESET, _group, groups_of, write_run

from lcam.report import ReportError, build_report
from lcam.report.analysis import analyze
from lcam.report.controls import merge_controls
from lcam.report.figures import preset_figures
from lcam.report.runs import load_runs

MOMENTUM = 0.9333333333333333  # the matched momentum of 0.95/0.9 at fraction 0.5
CONTROL = "control-m0.933333"
PAIR, SWAP = "m0.95_0.9", "m0.9_0.95"
FIXED = _group("m0.9", "sgd", momentum=0.9)
LCAM = {
    PAIR: _group(PAIR, "lcam", momentum_below=0.95, momentum_above=0.9),
    SWAP: _group(SWAP, "lcam", momentum_below=0.9, momentum_above=0.95),
}
FINALS = {
    "m0.9": [4.2, 4.0, 4.1],
    PAIR: [3.9, 3.95, 3.8],
    SWAP: [4.05, 4.3, 4.2],
    CONTROL: [4.4, 4.5, 4.3],
}


def curve(final: float) -> list[float]:
    return [final + 2.0, final + 0.5, final]


def control_spec(name: str, matched_to: Any) -> dict[str, Any]:
    return _group(name, "sgd", momentum=MOMENTUM, role="control", matched_to=matched_to)


def write_tree(root: Path, layout: str, control_finals: dict[str, list[float]] | None = None
               ) -> Path:
    """m0.9, both LCAM groups and the control(s) of ``layout`` ("new" or "old")."""
    for spec in (FIXED, *LCAM.values()):
        for seed, final in enumerate(FINALS[spec["name"]]):
            write_run(root, spec, seed, curve(final))
    if layout == "new":
        controls = {CONTROL: control_spec(CONTROL, [PAIR, SWAP])}
    else:  # one control per LCAM group, the same training twice
        controls = {f"control-{n}": control_spec(f"control-{n}", n) for n in (PAIR, SWAP)}
    for name, spec in controls.items():
        finals = (control_finals or {}).get(name, FINALS[CONTROL])
        for seed, final in enumerate(finals):
            write_run(root, spec, seed, curve(final))
    return root


def control_groups(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [g for g in groups_of(summary).values() if g["role"] == "control"]


@pytest.mark.parametrize("layout", ["new", "old"])
def test_one_control_row_that_both_lcam_groups_compare_against(
    tmp_path: Path, layout: str
) -> None:
    result = build_report([write_tree(tmp_path / "runs", layout)], figures=False)
    (control,) = control_groups(result.summary)
    assert control["name"] == CONTROL
    assert control["matched_to"] == [PAIR, SWAP]
    assert control["finished_seeds"] == [0, 1, 2]
    finals = FINALS[CONTROL]
    assert control["final_test_error"]["values"] == finals
    assert control["final_test_error"]["mean"] == pytest.approx(np.mean(finals), rel=1e-12)
    assert control["final_test_error"]["std"] == pytest.approx(np.std(finals, ddof=1), rel=1e-12)
    groups = groups_of(result.summary)
    for name in (PAIR, SWAP):
        got = groups[name]["vs_control"]
        expected = stats.ttest_ind(FINALS[name], finals, equal_var=False)
        assert got["against"] == CONTROL
        assert got["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
        assert got["t_statistic"] == pytest.approx(expected.statistic, rel=1e-12)
        assert got["difference"] == pytest.approx(np.mean(FINALS[name]) - np.mean(finals))
    # Against the fixed-0.9 group the control is one sample, tested once.
    expected = stats.ttest_ind(finals, FINALS["m0.9"], equal_var=False)
    assert control["vs_fixed"]["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
    # One run per seed in the run list; no warning (the old duplicates are identical).
    control_runs = [r for r in result.summary["runs"] if r["group"] == CONTROL]
    assert sorted(r["seed"] for r in control_runs) == [0, 1, 2]
    assert result.summary["counts"]["runs"] == 12
    assert not result.warnings
    report = result.report_path.read_text(encoding="utf-8")
    rows = [line for line in report.splitlines() if line.startswith(f"| {CONTROL} |")]
    assert len(rows) == 1  # one row in the table of groups
    assert f"| control of {PAIR}, {SWAP} |" in rows[0]
    assert f"control of {PAIR}, {SWAP}" in report
    assert "| control-m0.95_0.9 |" not in report and "| control-m0.9_0.95 |" not in report
    pair_rows = [line for line in report.splitlines() if line.startswith(f"| {PAIR} |")]
    assert any(f"{CONTROL}: " in line for line in pair_rows)  # its vs-control cell
    json.loads(result.summary_path.read_text(encoding="utf-8"))


def test_old_controls_that_differ_warn_and_a_seed_of_either_counts(tmp_path: Path) -> None:
    """Seed 1 differs (warning, the first path wins); seed 3 exists in one dir only."""
    old_pair, old_swap = f"control-{PAIR}", f"control-{SWAP}"
    finals = {old_pair: [4.4, 4.5, 4.3], old_swap: [4.4, 4.7, 4.3, 4.6]}
    root = write_tree(tmp_path / "runs", "old", control_finals=finals)
    result = build_report([root], figures=False)
    (control,) = control_groups(result.summary)
    assert control["finished_seeds"] == [0, 1, 2, 3]
    assert control["final_test_error"]["values"] == [4.4, 4.5, 4.3, 4.6]
    (warning,) = [w for w in result.warnings if "differ" in w]
    first = root / PRESET / old_pair / "seed1"
    second = root / PRESET / old_swap / "seed1"
    assert f"4.5 in {first}" in warning and f"4.7 in {second}" in warning
    assert CONTROL in warning


def test_old_partial_duplicate_gives_way_to_the_finished_run(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "runs", "old")
    spec = control_spec(f"control-{SWAP}", SWAP)
    write_run(root, spec, 3, [9.0], finished=False, epochs=3)  # only partial for seed 3
    write_run(root, control_spec(f"control-{PAIR}", PAIR), 3, curve(4.2))  # finished
    result = build_report([root], figures=False)
    (control,) = control_groups(result.summary)
    assert control["finished_seeds"] == [0, 1, 2, 3] and control["partial_seeds"] == []
    assert control["final_test_error"]["values"] == [*FINALS[CONTROL], 4.2]
    assert not result.warnings


@pytest.mark.parametrize("value", [3, [], ["m0.95_0.9", 1], {"a": 1}])
def test_matched_to_of_the_wrong_type_names_the_file(tmp_path: Path, value: Any) -> None:
    run = write_run(tmp_path, control_spec(CONTROL, value), 0, [5.0, 4.0])
    with pytest.raises(ReportError) as caught:
        build_report([tmp_path], figures=False)
    assert str(caught.value).startswith(f"{run / 'config.json'} (group): 'matched_to' must be")


# --- figures ------------------------------------------------------------------------


def figures_of(root: Path) -> dict[str, Any]:
    runs, _ = load_runs([root])
    runs, _ = merge_controls(runs)
    (result,) = analyze(runs, {id(r): str(r.path) for r in runs})
    return preset_figures(result, runs)


def data_lines(ax: Axes) -> dict[str, Any]:
    """The group lines of a panel by label (not the target line, not partial runs)."""
    lines = [line for line in ax.get_lines() if "final mean" not in str(line.get_label())]
    labels = [str(line.get_label()) for line in lines]
    assert len(set(labels)) == len(labels)
    return dict(zip(labels, lines, strict=True))


@pytest.mark.parametrize("layout", ["new", "old"])
def test_figure_draws_each_group_once_and_the_control_dashed_in_its_colour(
    tmp_path: Path, layout: str
) -> None:
    figures = figures_of(write_tree(tmp_path / "runs", layout))
    (ax,) = figures["test_error"].axes
    lines = data_lines(ax)
    assert len(lines) == 4  # m0.9, both LCAM groups, one control
    (control_label,) = [label for label in lines if label.startswith("control")]
    assert control_label == f"control 0.933 ({PAIR}, {SWAP}, n=3)"
    control = lines.pop(control_label)
    assert control.get_linestyle() == "--"
    pair = next(line for label, line in lines.items() if label.startswith(PAIR))
    assert to_rgba(control.get_color()) == to_rgba(pair.get_color())
    colours = [to_rgba(line.get_color()) for line in lines.values()]
    assert len(set(colours)) == len(colours) == 3
    assert all(line.get_linestyle() == "-" for line in lines.values())
    mean = np.mean([curve(f) for f in FINALS[CONTROL]], axis=0)
    np.testing.assert_allclose(np.asarray(control.get_ydata()), mean, rtol=1e-12)
    # The README figure: one legend below, one entry per drawn line (and the target).
    (legend,) = figures["curves"].legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert len(texts) == len(set(texts)) == 5
    assert sum(t.startswith("control") for t in texts) == 1
    for panel in figures["curves"].axes:
        assert len(data_lines(panel)) == 4


def test_many_groups_never_share_a_colour(tmp_path: Path) -> None:
    """12 fixed groups (beyond tab10) and a control whose LCAM group is not drawn."""
    momenta = [0.5 + 0.04 * i for i in range(12)]
    for m in momenta:
        write_run(tmp_path, _group(f"m{m:g}", "sgd", momentum=m), 0, [5.0, 4.0 + m])
    write_run(tmp_path, control_spec(CONTROL, [PAIR]), 0, [5.0, 4.2])
    (ax,) = figures_of(tmp_path)["test_error"].axes
    lines = data_lines(ax)
    assert len(lines) == 13
    colours = [to_rgba(line.get_color()) for line in lines.values()]
    assert len(set(colours)) == 13
    assert lines[f"control 0.933 ({PAIR}, n=1)"].get_linestyle() == "--"
