"""The trainer examples: each is a file under examples/ that its page of the documentation
site (docs/integrations/) includes verbatim, and each runs and trains with LCAM as it
says; ``import lcam`` imports no framework."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {"lightning": "lightning_example.py", "transformers": "transformers_example.py",
            "accelerate": "accelerate_example.py"}
PAGES = {"lightning": "LIGHTNING.md", "transformers": "TRANSFORMERS.md",
         "accelerate": "ACCELERATE.md"}
FRAMEWORKS = ("lightning", "pytorch_lightning", "transformers", "accelerate", "timm")


def test_each_framework_page_includes_its_example_file_verbatim():
    """The page includes the file itself (a snippet that ``mkdocs build --strict`` fails
    on if the file is missing), so the page cannot drift from the code that runs."""
    for framework, name in EXAMPLES.items():
        page = (ROOT / "docs" / "integrations" / PAGES[framework]).read_text()
        assert f'```python\n--8<-- "examples/{name}"\n```' in page, (framework, name)
        assert (ROOT / "examples" / name).is_file()


def test_importing_lcam_and_its_integrations_package_imports_no_framework():
    code = ("import sys, lcam, lcam.integrations; "
            f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def example_run(tmp_path, monkeypatch):
    """Run an example in this process (in tmp_path, offline); return its globals."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def run(framework: str) -> dict:
        pytest.importorskip(framework, reason=f"{framework} is not installed: "
                                              f"pip install 'lcam[{framework}]'")
        if framework in ("accelerate", "transformers"):
            from accelerate.state import AcceleratorState, GradientState

            AcceleratorState._reset_state(True)  # process-wide singletons
            GradientState._reset_state()
        return runpy.run_path(str(ROOT / "examples" / EXAMPLES[framework]),
                              run_name="__main__")

    return run


def test_lightning_example_trains_with_lcam_and_logs_each_epoch(example_run):
    env = example_run("lightning")
    opt = env["trainer"].optimizers[0]
    stats = opt.statistics()
    assert (stats.total_steps, stats.window_index) == (8, 2)  # 2 x 8 batches / 2, 2 epochs
    assert {"lcam/fraction_above", "lcam/loss_average"} <= set(env["trainer"].callback_metrics)


def test_transformers_example_trains_with_lcam_and_logs_each_epoch(example_run):
    env = example_run("transformers")
    stats = env["trainer"].lcam.statistics()
    assert (stats.total_steps, stats.window_index) == (8, 2)
    logged = [row for row in env["trainer"].state.log_history if "lcam/fraction_above" in row]
    assert [row["epoch"] for row in logged] == [1.0, 2.0]


def test_accelerate_example_trains_with_lcam(example_run):
    env = example_run("accelerate")
    stats = env["opt"].statistics()
    assert (stats.total_steps, stats.window_index, stats.steps) == (8, 2, 0)


def test_examples_import_only_their_framework():
    for framework, name in EXAMPLES.items():
        source = (ROOT / "examples" / name).read_text()
        imported = set(re.findall(r"^(?:from|import) (\w+)", source, flags=re.M))
        assert imported <= {"torch", "lcam", framework}, (name, imported)
