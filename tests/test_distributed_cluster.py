"""``lcam sweep --print-commands``: the printed lines, run as a scheduler would, make the
same report as ``lcam sweep`` itself."""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lcam.cli import main
from lcam.report.build import build_report

TESTS = Path(__file__).resolve().parent
SWEEP = ["digits", "--seeds", "2", "--groups", "m0.9,m0.95_0.9", "--set", "control=false",
         "--epochs", "2", "--data", "distributed_fixtures:blobs", "--threads", "1"]


def _renamed(value: Any, name: str) -> Any:
    """``value`` with the output directory's name replaced by ``OUT`` (keys and strings)."""
    if isinstance(value, dict):
        return {_renamed(k, name): _renamed(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, name) for v in value]
    return "OUT" if value == name else value


@pytest.mark.slow
def test_printed_commands_run_anywhere_and_report_like_a_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    submit, node = tmp_path / "submit", tmp_path / "node"
    submit.mkdir()
    node.mkdir()
    monkeypatch.chdir(submit)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    assert main(["sweep", *SWEEP, "--out", "printed", "--print-commands"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and not (submit / "printed").exists()

    def run_line(line: str) -> int:  # as a Slurm array task: one line, another directory
        return subprocess.run(["bash", "-c", line], cwd=node, capture_output=True,
                              timeout=300).returncode

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(run_line, lines)) == [0, 0, 0, 0]
    assert run_line(lines[0]) == 0  # a rerun (a requeued task) finds its run finished
    assert main(["sweep", *SWEEP, "--out", "swept", "--jobs", "2"]) == 0

    reports = {}
    for name in ("printed", "swept"):
        build_report([Path(name)], None, figures=False)
        reports[name] = ((submit / name / "report.md").read_text().replace(f"`{name}`", "`OUT`"),
                         _renamed(json.loads((submit / name / "summary.json").read_text()), name))
    assert reports["printed"] == reports["swept"]
    assert "| m0.9 | fixed 0.9 | paper | 2 |" in reports["printed"][0]
