"""The README's demo table is generated (scripts/refresh_readme_demo.py), never hand-edited."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location(
        "refresh_readme_demo", ROOT / "scripts" / "refresh_readme_demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_demo_table_is_rendered_from_the_committed_summary():
    script = _script()
    demo = json.loads(script.SUMMARY.read_text(encoding="utf-8"))
    readme = script.README.read_text(encoding="utf-8")
    assert script.readme_block(readme) == script.render_table(demo)
    assert script.FIGURE.stat().st_size > 10_000  # the demo figure is committed


def test_render_table_shows_each_group_with_its_numbers():
    script = _script()
    demo = {"epochs": 3, "groups": [
        {"name": "m0.9", "momentum_text": "fixed 0.9", "fraction_above": None,
         "final_test_error": {"n": 2, "mean": 2.5, "std": 0.25},
         "best_test_error": {"n": 2, "mean": 2.0, "std": None}, "vs_fixed": None},
        {"name": "m0.95_0.9", "momentum_text": "0.95 below / 0.9 above", "fraction_above": 0.46,
         "final_test_error": {"n": 2, "mean": 2.25, "std": 0.125},
         "best_test_error": {"n": 2, "mean": 2.0, "std": 0.0},
         "vs_fixed": {"difference": -0.25, "p_value": 0.31, "verdict": "within noise"},
         "vs_control": None},
    ]}
    table = script.render_table(demo)
    assert "3 epochs, 2 seeds" in table
    assert "| m0.9 | fixed 0.9 | 2.50 ± 0.25 | 2.00 | — | — | — |" in table
    assert ("| m0.95_0.9 | 0.95 below / 0.9 above | 2.25 ± 0.12 | 2.00 ± 0.00 | 0.46 | "
            "-0.25 (p=0.31, within noise) | — |") in table
