"""`build_report`: run directories in, ``report.md`` + ``summary.json`` + figures out.

::

    from lcam.report import build_report
    result = build_report([Path("runs")])          # writes runs/report.md, ...
    result.summary["presets"][0]["groups"][0]["final_test_error"]["mean"]

Several directories are merged (a cluster sweep where every run had its own output
directory); the output goes to ``out_dir``, by default the first directory given:

- ``report.md``: for people (see `lcam.report.markdown`);
- ``summary.json``: every number of ``report.md`` and the per-run finals, for programs
  (NaN is written as ``null``, so the file is strict JSON);
- ``figures/<preset>_*.png`` and ``.svg`` (see `lcam.report.figures`).

Paths inside the report are relative to ``out_dir`` where possible. Files are written
to a temporary name first and then renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcam.report.analysis import PresetResult, RunSummary, analyze, summarize_run
from lcam.report.comparisons import EQUIVALENCE_MARGIN
from lcam.report.controls import merge_controls
from lcam.report.figures import write_preset_figures
from lcam.report.markdown import render_report
from lcam.report.runs import load_runs
from lcam.report.stats import ALPHA, CONFIDENCE

__all__ = ["SUMMARY_FORMAT", "ReportResult", "build_report"]

SUMMARY_FORMAT = "lcam-report/1"


@dataclass(frozen=True)
class ReportResult:
    """What `build_report` wrote, and the summary it wrote into ``summary.json``."""

    out_dir: Path
    report_path: Path
    summary_path: Path
    figure_paths: tuple[Path, ...]
    presets: tuple[str, ...]
    finished_runs: int
    partial_runs: int
    warnings: tuple[str, ...]
    summary: dict[str, Any]


def build_report(
    run_dirs: Sequence[Path], out_dir: Path | None = None, *, figures: bool = True,
    margin: float = EQUIVALENCE_MARGIN,
) -> ReportResult:
    """Read every run under ``run_dirs`` and write the report into ``out_dir``.

    ``out_dir`` defaults to the first of ``run_dirs``; ``margin`` is the equivalence
    margin of the paired comparisons (points of test error). ``figures=False`` skips the
    figures (the slow part) and writes only ``report.md`` and ``summary.json``.

    A run whose files break the run directory contract is left out, with a warning that
    names the file (and the line of ``metrics.jsonl``). Raises `lcam.report.ReportError`
    when no run is found or none can be read (the message names each file), and
    `OSError` when the output cannot be written.
    """
    dirs = [Path(d) for d in run_dirs]
    loaded, discovery_warnings = load_runs(dirs, leave_out_unreadable=True)
    runs, control_warnings = merge_controls(loaded)  # old format: one control per momentum
    discovery_warnings += control_warnings
    out = Path(out_dir) if out_dir is not None else dirs[0]
    out.mkdir(parents=True, exist_ok=True)
    display = {id(run): _relative(run.path, out) for run in runs}
    presets = analyze(runs, display, margin=margin)

    figure_paths: list[Path] = []
    with_figures: list[PresetResult] = []
    for preset in presets:
        written = write_preset_figures(preset, runs, out / "figures") if figures else []
        figure_paths += written
        with_figures.append(
            dataclasses.replace(preset, figures=[_relative(p, out) for p in written])
        )

    run_summaries = [summarize_run(run, display[id(run)]) for run in runs]
    run_summaries.sort(key=lambda r: (r.preset, r.group, r.seed))
    warnings = discovery_warnings + [w for p in with_figures for w in p.warnings]
    sources = [str(d) for d in run_dirs]
    summary = _summary(with_figures, run_summaries, sources, warnings)

    summary_path = out / "summary.json"
    report_path = out / "report.md"
    _write_atomic(summary_path, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    _write_atomic(report_path, render_report(with_figures, run_summaries, sources, warnings))
    finished = sum(r.status == "finished" for r in run_summaries)
    return ReportResult(
        out_dir=out,
        report_path=report_path,
        summary_path=summary_path,
        figure_paths=tuple(figure_paths),
        presets=tuple(p.preset for p in with_figures),
        finished_runs=finished,
        partial_runs=len(run_summaries) - finished,
        warnings=tuple(warnings),
        summary=summary,
    )


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` (POSIX separators), or absolute if impossible."""
    try:
        return Path(os.path.relpath(path, start)).as_posix()
    except ValueError:  # another drive on Windows
        return Path(path).resolve().as_posix()


def _summary(
    presets: Sequence[PresetResult],
    runs: Sequence[RunSummary],
    sources: Sequence[str],
    warnings: Sequence[str],
) -> dict[str, Any]:
    finished = sum(r.status == "finished" for r in runs)
    return {
        "format": SUMMARY_FORMAT,
        "sources": list(sources),
        "conventions": {
            "error_unit": "test error in percent",
            "std": "sample standard deviation over finished seeds (ddof=1); null with 1 seed",
            "test": "Welch two-sided t-test, scipy.stats.ttest_ind(equal_var=False)",
            "difference": "mean(group) - mean(against), percentage points",
            "alpha": ALPHA,
            "confidence": CONFIDENCE,
            "epochs": "1-based count of finished epochs (epoch index + 1)",
            "epochs_to_target": "first epoch at which the mean-over-seeds test error is <= "
            "the fixed-0.9 group's mean final test error",
            "partial_runs": "listed, never in any statistic",
            "comparisons": "paired by seed on the seeds both groups finished: mean of "
            "per-seed differences A - B with t and bootstrap 95% CIs, paired t-test, "
            "Wilcoxon signed-rank, Holm-Bonferroni over the preset's comparisons, "
            "minimum detectable effect at 80% power and level 0.05/m, probability that "
            "A is lower, two one-sided tests at the stated margin",
        },
        "counts": {"runs": len(runs), "finished": finished, "partial": len(runs) - finished},
        "presets": [_jsonable(p) for p in presets],
        "runs": [_jsonable(r) for r in runs],
        "warnings": list(warnings),
    }


def _jsonable(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, NaN/inf to ``None``, paths to strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return value.as_posix()
    return value


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
