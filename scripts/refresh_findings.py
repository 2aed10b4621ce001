"""Regenerate docs/FINDINGS.md (and its summary and figures) from the evidence runs.

    lcam sweep evidence-sparsity --out runs/evidence2 --jobs 2     # quiet machine, timed
    lcam sweep evidence-schedule --out runs/evidence2 --jobs 2     # quiet machine, timed
    .venv/bin/python scripts/refresh_findings.py runs/evidence2 \\
        --sweep-seconds evidence-sparsity=SECONDS --sweep-seconds evidence-schedule=SECONDS

Writes ``docs/findings/summary.json`` (every number of the page: the claims on the
presets of ``runs/evidence2`` at both margins, the C2 crossovers, and the earlier data
sets re-evaluated from ``docs/findings/evidence1-summary.json``, the committed summary
of ``lcam sweep evidence``, whose runs are not kept), one curves figure per new data
set in ``docs/findings/``, ``docs/FINDINGS.md``, rendered from the summary alone by
:func:`lcam.report.findings_page.render`, and the README's short verdict table;
``tests/test_findings_page.py`` fails when the page or the README and the committed
summary disagree. Without ``--sweep-seconds`` a composite's timing is kept from the
previous summary. ``--previous-only`` renders the earlier data sets alone (no runs).
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
from lcam.report.findings import collect, previous  # noqa: E402
from lcam.report.findings_page import readme_table, render  # noqa: E402
from lcam.report.runs import ReportError  # noqa: E402

FINDINGS = ROOT / "docs" / "FINDINGS.md"
README = ROOT / "README.md"
README_START, README_END = "<!-- findings-table:start -->\n", "<!-- findings-table:end -->"
FOLDER = ROOT / "docs" / "findings"
SUMMARY = FOLDER / "summary.json"
PREVIOUS = FOLDER / "evidence1-summary.json"
ARMS = ("mnist1d-large-wide", "mnist1d-100", "mnist1d-100-coarse")  # verdict table columns
LR = {"base": "mnist1d-large-wide",
      "variants": {"mnist1d-large-wide-lrx0.5": 0.5, "mnist1d-large-wide-lrx2": 2.0}}
PRESETS = ARMS + tuple(LR["variants"])  # type: ignore[arg-type]
CROSSOVERS = (
    ("mnist1d-100", "mnist1d-large-wide", "100 vs 10 classes"),
    ("mnist1d-100", "mnist1d-100-coarse", "100 vs 10 coarse classes (same inputs)"),
)
COMPOSITES = ("evidence-sparsity", "evidence-schedule")
RUNS_DIR = "runs/evidence2"
REFRESH_COMMAND = (f".venv/bin/python scripts/refresh_findings.py {RUNS_DIR} "
                   + " ".join(f"--sweep-seconds {c}=SECONDS" for c in COMPOSITES))


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


def _composite_runs(summary: dict[str, Any]) -> dict[str, int]:
    """The finished runs behind each composite: evidence-sparsity's are the arms'
    full-length groups, evidence-schedule's their half-length groups and the lr presets
    (fixed 0.9 at full length is evidence-sparsity's run, shared)."""
    presets = summary["presets"]
    groups = [(name, g) for name in ARMS if name in presets
              for g in presets[name]["groups"].values()]
    full = sum(g["n"] for _, g in groups if g["schedule_fraction"] == 1.0)
    half = sum(g["n"] for _, g in groups if g["schedule_fraction"] != 1.0)
    lr = sum(g["n"] for name in LR["variants"] if name in presets
             for g in presets[name]["groups"].values())
    return {"evidence-sparsity": full, "evidence-schedule": half + lr}


def _sweep_seconds(values: list[str]) -> dict[str, float]:
    out = {}
    for value in values:
        name, _, seconds = value.partition("=")
        if name not in COMPOSITES or not seconds:
            raise SystemExit(f"refresh_findings: --sweep-seconds takes NAME=SECONDS with NAME "
                             f"one of {', '.join(COMPOSITES)}, got {value!r}")
        out[name] = float(seconds)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="?",
                        help=f"the --out of the evidence sweeps ({RUNS_DIR})")
    parser.add_argument("--sweep-seconds", action="append", default=[],
                        metavar="NAME=SECONDS",
                        help="wall time of one composite sweep (repeat for each; kept from "
                             "the last summary if omitted)")
    parser.add_argument("--conditions", default=" on the quiet 2-core machine, `--jobs 2`",
                        help="text after each sweep time")
    parser.add_argument("--previous-only", action="store_true",
                        help="render the earlier data sets alone (no runs needed)")
    args = parser.parse_args(argv)
    if (args.runs is None) != args.previous_only:
        parser.error("give the runs directory, or --previous-only")
    seconds = _sweep_seconds(args.sweep_seconds)
    old = json.loads(PREVIOUS.read_text(encoding="utf-8"))
    last = json.loads(SUMMARY.read_text(encoding="utf-8")) if SUMMARY.exists() else {}
    try:
        summary = collect([args.runs] if args.runs else [], () if args.previous_only
                          else PRESETS, crossovers=() if args.previous_only else CROSSOVERS)
    except ReportError as error:
        print(f"refresh_findings: error: {error}", file=sys.stderr)
        return 1
    summary["previous"] = previous(old, source=str(PREVIOUS.relative_to(ROOT)))
    summary["lr"] = LR
    summary["refresh"] = REFRESH_COMMAND
    sweeps: dict[str, Any] = {}
    if not args.previous_only:
        runs = _composite_runs(summary)
        for name in COMPOSITES:
            entry = dict((last.get("sweeps") or {}).get(name) or {})
            if name in seconds:
                entry = {"seconds": seconds[name], "conditions": args.conditions}
            entry.update(command=f"lcam sweep {name} --out {RUNS_DIR} --jobs 2", runs=runs[name])
            sweeps[name] = entry
    summary["sweeps"] = sweeps
    summary["machine"] = _machine(args.runs) if args.runs else {}
    summary["notes"] = {}
    summary["figures"] = {}
    summary["figures_shortened"] = {}
    FOLDER.mkdir(parents=True, exist_ok=True)
    if args.runs:
        with tempfile.TemporaryDirectory() as scratch:
            report = build_report([args.runs], Path(scratch))
            for preset in PRESETS:
                for kind, where in (("curves", summary["figures"]),
                                    ("shortened", summary["figures_shortened"])):
                    name = f"{figure_stem(preset)}_{kind}.png"
                    source = next((p for p in report.figure_paths if p.name == name), None)
                    if source is not None:
                        shutil.copyfile(source, FOLDER / name)
                        where[preset] = f"findings/{name}"
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
