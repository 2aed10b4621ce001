"""Regenerate the demo page's table and figure (docs/DEMO.md) from a `lcam demo` run.

    .venv/bin/python scripts/refresh_demo.py              # runs `lcam demo` if needed
    .venv/bin/python scripts/refresh_demo.py --runs DIR   # use an existing demo output
    .venv/bin/python scripts/refresh_demo.py --table-only # re-render the committed summary

It copies the report's ``digits_curves.png`` to ``docs/images/``, keeps the numbers the
table is made of in ``docs/images/demo_summary.json`` (a slice of the report's
``summary.json``), and rewrites ``docs/DEMO.md`` between the ``demo-table`` markers. A
test (`tests/test_demo_page.py`) renders the table again from that JSON and compares it
with the page, so the page cannot drift from the numbers by hand.

The numbers are exact on the machine that made them and may differ slightly on
another (float reductions differ between CPU kernels), so the summary also records the
machine the runs trained on, read from their ``config.json`` files (CPU model, usable
CPUs, torch version, operating system), and the table's caption names it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "DEMO.md"
IMAGES = ROOT / "docs" / "images"
SUMMARY = IMAGES / "demo_summary.json"
FIGURE = IMAGES / "demo_digits_curves.png"
START, END = "<!-- demo-table:start -->", "<!-- demo-table:end -->"


def _error(cell: dict[str, Any]) -> str:
    return f"{cell['mean']:.2f} ± {cell['std']:.2f}" if cell.get("std") is not None else (
        f"{cell['mean']:.2f}")


def _comparison(test: dict[str, Any] | None) -> str:
    """A paired comparison (``mean_difference``, Holm p, verdict, MDE) or, in summaries
    made before the report paired its comparisons, a Welch test."""
    if not test:
        return "—"
    if "mean_difference" not in test:
        return f"{test['difference']:+.2f} (p={test['p_value']:.2f}, {test['verdict']})"
    holm = "—" if test.get("p_holm") is None else f"{test['p_holm']:.2f}"
    mde = test.get("minimum_detectable_effect")
    detectable = f", MDE {mde:.2f}" if mde is not None else ""
    return f"{test['mean_difference']:+.2f} (Holm p={holm}, {test['verdict']}{detectable})"


def demo_slice(summary: dict[str, Any], machines: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The part of the report's summary.json that the demo table shows, and the machines."""
    preset = next(p for p in summary["presets"] if p["preset"] == "digits")
    keep = ("name", "momentum_text", "role", "final_test_error", "best_test_error",
            "fraction_above")
    paired = {(c["a"], c["kind"]): {k: c[k] for k in (
        "against", "mean_difference", "p_holm", "verdict", "minimum_detectable_effect")}
        for c in preset.get("comparisons", [])}
    return {
        "preset": "digits",
        "epochs": preset["groups"][0]["epochs"],
        "machines": machines,
        "groups": [{**{k: g.get(k) for k in keep},
                    "vs_fixed": paired.get((g["name"], "vs m0.9")),
                    "vs_control": paired.get((g["name"], "vs control"))}
                   for g in preset["groups"]],
    }


def run_machines(report_dir: Path) -> list[dict[str, Any] | None]:
    """The distinct machines the runs under ``report_dir`` trained on, in order.

    One entry per distinct ``{cpu, cpus, torch, platform}`` of the runs' ``config.json``
    (``report_dir/<group>/seed<K>/config.json``); ``None`` stands for runs written
    before lcam recorded the machine.
    """
    machines: list[dict[str, Any] | None] = []
    for path in sorted(report_dir.glob("*/seed*/config.json")):
        config = json.loads(path.read_text(encoding="utf-8"))
        machine = config.get("machine")
        entry = None if not machine else {
            "cpu": machine["cpu"], "cpus": machine["cpus"],
            "torch": config["versions"]["torch"], "platform": machine["platform"],
        }
        if entry not in machines:
            machines.append(entry)
    return machines


def machine_caption(machines: list[dict[str, Any] | None] | None) -> str:
    """``Machine: <CPU> (<n> CPUs), torch <version>, <OS>.``, or that it was not recorded."""
    def one(machine: dict[str, Any] | None) -> str:
        if machine is None:
            return "not recorded"
        return (f"{machine['cpu']} ({machine['cpus']} CPUs), torch {machine['torch']}, "
                f"{machine['platform']}")

    if not machines or machines == [None]:
        return "Machine: not recorded (the runs predate lcam recording it)."
    if len(machines) == 1:
        return f"Machine: {one(machines[0])}."
    return "Machines (the runs differ): " + "; ".join(one(m) for m in machines) + "."


def render_table(demo: dict[str, Any]) -> str:
    """Markdown table of the demo: one row per group."""
    seeds = demo["groups"][0]["final_test_error"]["n"]
    lines = [
        f"Digits preset, {demo['epochs']} epochs, {seeds} seeds per group; test error in % "
        "(mean ± sample std over seeds); comparisons of the final errors paired by seed "
        "(mean difference, Holm-corrected paired t-test, verdict, smallest detectable "
        "effect).",
        machine_caption(demo.get("machines")),
        "",
        "| group | momentum | final test error | best-epoch error | fraction above avg "
        "| vs m0.9 | vs matched control |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in demo["groups"]:
        above = f"{g['fraction_above']:.2f}" if g.get("fraction_above") is not None else "—"
        lines.append(
            f"| {g['name']} | {g['momentum_text']} | {_error(g['final_test_error'])} | "
            f"{_error(g['best_test_error'])} | {above} | {_comparison(g.get('vs_fixed'))} | "
            f"{_comparison(g.get('vs_control'))} |"
        )
    return "\n".join(lines)


def page_block(page_text: str) -> str:
    """The text between the demo-table markers of the demo page."""
    start, end = page_text.index(START) + len(START), page_text.index(END)
    return page_text[start:end].strip("\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--table-only", action="store_true",
                        help="only re-render the page's table from the committed "
                             f"{SUMMARY.relative_to(ROOT)} (no demo, figure untouched)")
    args = parser.parse_args()
    if args.table_only:
        write_table(json.loads(SUMMARY.read_text(encoding="utf-8")))
        print(f"{PAGE.relative_to(ROOT)} demo table re-rendered from "
              f"{SUMMARY.relative_to(ROOT)}")
        return 0
    report_dir = args.runs / "digits"
    if not (report_dir / "summary.json").exists():
        subprocess.run([sys.executable, "-m", "lcam", "demo", "--out", str(args.runs)],
                       check=True)
    summary = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
    demo = demo_slice(summary, run_machines(report_dir))
    IMAGES.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps(demo, indent=1) + "\n", encoding="utf-8")
    shutil.copyfile(report_dir / "figures" / "digits_curves.png", FIGURE)
    write_table(demo)
    print(f"{PAGE.relative_to(ROOT)} demo table and {FIGURE.relative_to(ROOT)} refreshed "
          f"from {report_dir} "
          f"({machine_caption(demo['machines'])})")
    return 0


def write_table(demo: dict[str, Any]) -> None:
    """Replace the demo page's text between the demo-table markers with the rendered table."""
    text = PAGE.read_text(encoding="utf-8")
    start, end = text.index(START) + len(START), text.index(END)
    PAGE.write_text(text[:start] + "\n" + render_table(demo) + "\n" + text[end:],
                      encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
