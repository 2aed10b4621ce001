"""lcam demo: every digits group x seeds in worker processes, a table, the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcam.harness.demo import run_demo
from lcam.harness.presets import get_single_preset

TINY = {"epochs": "1", "train_subset": "64", "test_subset": "40", "seeds": "2"}


@pytest.mark.slow
def test_demo_runs_every_group_and_seed_then_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(tmp_path, jobs=2, overrides=TINY) == 0
    out = capsys.readouterr().out
    groups = [g.name for g in get_single_preset("digits").sweep_groups()]
    assert len(groups) == 8  # 6 groups and one control per distinct matched momentum
    for group in groups:
        for seed in (0, 1):
            assert (tmp_path / "digits" / group / f"seed{seed}" / "result.json").exists()
    table = out[out.index("group "):]
    assert [line.split()[0] for line in table.splitlines()[2:10]] == groups
    assert "LCAM 0.95 below, 0.9 above" in table and "SGD 0.9333" in table
    assert (tmp_path / "digits" / "report.md").exists()

    assert run_demo(tmp_path, jobs=2, overrides=TINY) == 0  # everything already finished
    assert capsys.readouterr().out.count("already finished") == 16
