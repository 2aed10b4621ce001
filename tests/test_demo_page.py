"""The demo page's table (docs/DEMO.md) is generated (scripts/refresh_demo.py), never
hand-edited, and its caption names the machine the numbers came from."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location(
        "refresh_demo", ROOT / "scripts" / "refresh_demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_page_table_is_rendered_from_the_committed_summary():
    script = _script()
    demo = json.loads(script.SUMMARY.read_text(encoding="utf-8"))
    page = script.PAGE.read_text(encoding="utf-8")
    assert script.page_block(page) == script.render_table(demo)
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
            "-0.25 (p=0.31, within noise) | — |") in table  # an old (Welch) summary
    demo["groups"][1]["vs_fixed"] = {"against": "m0.9", "mean_difference": -0.25,
                                     "p_holm": 0.62, "verdict": "inconclusive",
                                     "minimum_detectable_effect": 1.5}
    assert "| -0.25 (Holm p=0.62, inconclusive, MDE 1.50) | — |" in script.render_table(demo)


XEON = {"cpu": "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "cpus": 2,
        "torch": "2.13.0+cpu", "platform": "Linux-6.1.0-x86_64-with-glibc2.36"}


def test_demo_page_caption_names_the_machine_of_the_committed_summary():
    script = _script()
    demo = json.loads(script.SUMMARY.read_text(encoding="utf-8"))
    caption = script.page_block(script.PAGE.read_text(encoding="utf-8")).splitlines()[1]
    assert caption == script.machine_caption(demo.get("machines"))
    assert caption.startswith("Machine")


def test_machine_caption_names_cpu_cpus_torch_and_os_or_says_it_is_unknown():
    script = _script()
    assert script.machine_caption([XEON]) == (
        "Machine: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz (2 CPUs), torch 2.13.0+cpu, "
        "Linux-6.1.0-x86_64-with-glibc2.36.")
    unknown = "Machine: not recorded (the runs predate lcam recording it)."
    assert script.machine_caption(None) == script.machine_caption([None]) == unknown
    other = {**XEON, "cpu": "AMD EPYC 7B13", "cpus": 4}
    assert script.machine_caption([XEON, other, None]) == (
        "Machines (the runs differ): Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz (2 CPUs), "
        "torch 2.13.0+cpu, Linux-6.1.0-x86_64-with-glibc2.36; AMD EPYC 7B13 (4 CPUs), torch "
        "2.13.0+cpu, Linux-6.1.0-x86_64-with-glibc2.36; not recorded.")
    table = script.render_table({"epochs": 3, "machines": [XEON], "groups": [
        {"name": "m0.9", "momentum_text": "fixed 0.9", "fraction_above": None,
         "final_test_error": {"n": 2, "mean": 2.5, "std": 0.25},
         "best_test_error": {"n": 2, "mean": 2.0, "std": None}, "vs_fixed": None}]})
    assert table.splitlines()[1] == script.machine_caption([XEON])


def test_run_machines_reads_what_the_harness_writes_into_config_json(tmp_path: Path):
    from lcam.harness.presets import get_single_preset
    from lcam.harness.rundir import config_document, machine_description

    script = _script()
    config = get_single_preset("digits").run_config("m0.9", 0)
    for group, seed in (("m0.9", 0), ("m0.9", 1), ("m0.95", 0)):
        run = tmp_path / group / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps(config_document(config, {})))
    old = json.loads((tmp_path / "m0.95" / "seed0" / "config.json").read_text())
    del old["machine"]  # written before lcam recorded the machine
    (tmp_path / "m0.95" / "seed0" / "config.json").write_text(json.dumps(old))

    here = machine_description()
    assert script.run_machines(tmp_path) == [
        {"cpu": here["cpu"], "cpus": here["cpus"], "torch": torch.__version__,
         "platform": here["platform"]},
        None,
    ]
