"""Regenerate docs/FINDINGS.md (and its summary and figures) from evidence runs.

    lcam sweep evidence --out runs/evidence --jobs 2          # every run (see FINDINGS.md)
    .venv/bin/python scripts/refresh_findings.py runs/evidence --sweep-seconds 3120

Writes ``docs/findings/summary.json`` (every number of the page), one curves figure
per data set in ``docs/findings/``, ``docs/FINDINGS.md``, rendered from the summary
alone by :func:`lcam.report.findings.render`, and the README's short verdict table;
``tests/test_findings_page.py`` fails when the page or the README and the committed
summary disagree. Without ``--sweep-seconds``
the sweep's timing is kept from the previous summary.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from lcam.report.build import build_report  # noqa: E402
from lcam.report.figures import figure_stem  # noqa: E402
from lcam.report.findings import collect, readme_table, render  # noqa: E402
from lcam.report.runs import ReportError  # noqa: E402

FINDINGS = ROOT / "docs" / "FINDINGS.md"
README = ROOT / "README.md"
README_START, README_END = "<!-- findings-table:start -->\n", "<!-- findings-table:end -->"
FOLDER = ROOT / "docs" / "findings"
SUMMARY = FOLDER / "summary.json"
PRESETS = ("mnist1d", "mnist1d-large", "digits")  # the columns of the verdict table
SWEEP_COMMAND = "lcam sweep evidence --out runs/evidence --jobs 2"
REFRESH_COMMAND = ".venv/bin/python scripts/refresh_findings.py runs/evidence"


def _machine(runs_dir: Path) -> dict[str, Any]:
    """The machine recorded in the runs' config.json (the first one found); for runs
    made before lcam recorded it, this machine (the refresh runs where the sweep ran)."""
    for config_path in sorted(runs_dir.glob("*/*/seed*/config.json")):
        config = json.loads(config_path.read_text(encoding="utf-8"))
        machine = config.get("machine")
        if machine:
            return {**machine, "torch": config["versions"]["torch"]}
    import torch

    from lcam.harness.rundir import machine_description

    return {**machine_description(), "torch": torch.__version__}


PUBLISHED_CNN_ACCURACY = 94.0  # MNIST-1D paper, reference CNN on the 4,000/1,000 split


def _notes(summary: dict[str, Any]) -> dict[str, str]:
    """The sanity anchor of the MNIST-1D presets: fixed 0.9 against the published CNN."""
    notes = {}
    for name, preset in summary["presets"].items():
        fixed = preset["groups"].get("m0.9")
        if preset["data"] != "mnist1d" or fixed is None:
            continue
        accuracy = 100.0 - fixed["mean"]
        where = ("on this split" if name == "mnist1d"
                 else "on the 4,000/1,000 split; none is published for 50,000 samples")
        verdict = "reaches" if accuracy >= PUBLISHED_CNN_ACCURACY else "stays below"
        notes[name] = (
            f"Sanity anchor: the MNIST-1D benchmark reports {PUBLISHED_CNN_ACCURACY:g}% test "
            f"accuracy for this CNN {where} (trained with Adam). Fixed momentum 0.9 "
            f"{verdict} it here: {accuracy:.2f}% final test accuracy (mean of "
            f"{fixed['n']} seeds, SGD with this preset's frozen protocol)."
        )
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="the --out of `lcam sweep evidence`")
    parser.add_argument("--sweep-seconds", type=float, default=None,
                        help="wall time of the sweep (kept from the last summary if omitted)")
    parser.add_argument("--conditions", default="",
                        help="text after the sweep time, e.g. ' on a quiet machine'")
    args = parser.parse_args(argv)
    try:
        summary = collect([args.runs], PRESETS)
    except ReportError as error:
        print(f"refresh_findings: error: {error}", file=sys.stderr)
        return 1
    previous = json.loads(SUMMARY.read_text(encoding="utf-8")) if SUMMARY.exists() else {}
    sweep = dict(previous.get("sweep") or {})
    if args.sweep_seconds is not None:
        sweep = {"seconds": args.sweep_seconds, "conditions": args.conditions}
    runs = sum(p["groups"][g]["n"] for p in summary["presets"].values() for g in p["groups"])
    sweep.update(command=SWEEP_COMMAND, refresh=REFRESH_COMMAND, runs=runs)
    summary["sweep"] = sweep
    summary["machine"] = _machine(args.runs)
    summary["notes"] = _notes(summary)
    FOLDER.mkdir(parents=True, exist_ok=True)
    summary["figures"] = {}
    with tempfile.TemporaryDirectory() as scratch:
        report = build_report([args.runs], Path(scratch))
        for preset in PRESETS:
            name = f"{figure_stem(preset)}_curves.png"
            source = next((p for p in report.figure_paths if p.name == name), None)
            if source is not None:
                shutil.copyfile(source, FOLDER / name)
                summary["figures"][preset] = f"findings/{name}"
    SUMMARY.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    FINDINGS.write_text(render(summary), encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    head, start, rest = readme.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not (start and end):
        print(f"refresh_findings: README.md lacks {README_START.strip()} ... {README_END}",
              file=sys.stderr)
        return 1
    README.write_text(head + start + readme_table(summary) + end + tail, encoding="utf-8")
    print(f"wrote {FINDINGS.relative_to(ROOT)}, {SUMMARY.relative_to(ROOT)} and "
          f"{len(summary['figures'])} figure(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
