"""The harness never imports the command line: ``lcam.cli`` imports ``lcam.harness``,
not the other way round (a sweep's workers run jobs through ``lcam.harness``)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import lcam.harness

HARNESS = Path(lcam.harness.__file__).parent


def test_no_harness_module_imports_the_command_line() -> None:
    offenders = []
    for path in sorted(HARNESS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name == "lcam.cli" or name.startswith("lcam.cli.") for name in names):
                offenders.append(f"{path.relative_to(HARNESS.parent)}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "lcam" and any(
                    alias.name == "cli" for alias in node.names):
                offenders.append(f"{path.relative_to(HARNESS.parent)}:{node.lineno}")
    assert offenders == []


def test_running_a_sweep_job_does_not_import_the_command_line(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import lcam.harness.commands, lcam.harness.sweep
        from lcam.harness.sweep import _run_job_in_worker, plan_sweep

        assert "lcam.cli" not in sys.modules, "importing the harness imported lcam.cli"
        plan = plan_sweep("digits", Path({str(tmp_path)!r}), seeds=1, groups=["m0.9"],
                          overrides={{"epochs": "1", "train_subset": "64", "test_subset": "32",
                                     "control": "false", "threads": "1"}})
        result = _run_job_in_worker(plan[0])  # what a sweep's worker process does
        assert result[0] == 0, (result, plan[0].run_dir.log.read_text())
        assert plan[0].run_dir.is_finished()
        assert "lcam.cli" not in sys.modules, "running a job imported lcam.cli"
        print("ok")
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip() == "ok"
