"""``lcam demo``: the digits preset, every group x 3 seeds, then the report.

The runs are the same as ``lcam sweep digits`` would make (same run directories, same
numbers), but the demo runs them in a small pool of worker processes that each import
torch once and train many runs, instead of one process per run: with a run lasting a
few seconds, process start-up would otherwise dominate. Runs already finished in
``out`` are skipped, so a second ``lcam demo`` only rebuilds the report.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from lcam.harness.config import RunConfig
from lcam.harness.presets import Preset, get_single_preset
from lcam.harness.rundir import run_directory

__all__ = ["DEMO_PRESET", "demo_configs", "run_demo", "summary_table"]

DEMO_PRESET = "digits"


def demo_configs(preset: Preset, *, threads: int) -> list[RunConfig]:
    """Every run of the demo: each sweep group x each seed, with ``threads`` CPU threads."""
    settings = dataclasses.replace(preset.settings, threads=threads)
    preset = dataclasses.replace(preset, settings=settings)
    return [preset.run_config(group.name, seed)
            for seed in range(preset.seeds) for group in preset.sweep_groups()]


def _run_one(config: RunConfig, out: str) -> str:
    """Worker: train one run (resuming or skipping as its directory says)."""
    from lcam.harness.loop import run_training

    outcome = run_training(config, Path(out), resume=True, progress=False, log=lambda _: None)
    return outcome.start


def run_demo(
    out: Path, *, jobs: int | None = None, overrides: Mapping[str, str] | None = None
) -> int:
    """Run the demo into ``out``; print the summary table and write the report.

    ``jobs`` worker processes (default: ``min(2, CPU count)``), each with
    ``CPU count // jobs`` torch threads; ``overrides`` change the preset (for tests).
    """
    started = time.perf_counter()
    preset = get_single_preset(DEMO_PRESET).with_overrides(overrides or {})
    cpus = os.cpu_count() or 1
    jobs = jobs or min(2, cpus)
    configs = demo_configs(preset, threads=max(1, cpus // jobs))
    print(f"lcam demo: preset {preset.name!r}, {len(preset.sweep_groups())} groups x "
          f"{preset.seeds} seeds = {len(configs)} runs of {preset.settings.epochs} epochs, "
          f"{jobs} worker process(es); output in {out}", flush=True)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [(config, pool.submit(_run_one, config, str(out))) for config in configs]
        for done, (config, future) in enumerate(futures, start=1):
            start = future.result()
            what = "already finished" if start == "finished" else "done"
            print(f"[{done}/{len(configs)}] {config.group.name} seed {config.seed}: {what}",
                  flush=True)
    print()
    print(summary_table(out, configs))
    print(f"\n{len(configs)} runs in {time.perf_counter() - started:.0f} s")
    return _write_report(out / preset.name)


def summary_table(out: Path, configs: Sequence[RunConfig]) -> str:
    """Final test error per group (mean ± sample std over seeds), as a text table.

    ``above`` is the mean fraction of steps that used ``momentum_above`` (LCAM only).
    """
    finals: dict[str, list[float]] = {}
    bests: dict[str, list[float]] = {}
    above: dict[str, list[float]] = {}
    groups = {}
    for config in configs:
        run = run_directory(out, config)
        result = json.loads(run.result.read_text(encoding="utf-8"))
        lines = [json.loads(line) for line in run.metrics.read_text().splitlines() if line]
        name = config.group.name
        groups[name] = config.group
        finals.setdefault(name, []).append(float(result["final_test_error"]))
        bests.setdefault(name, []).append(float(result["best_test_error"]))
        fractions = [ln["fraction_above"] for ln in lines if ln["fraction_above"] is not None]
        if fractions:
            above.setdefault(name, []).append(sum(fractions) / len(fractions))
    rows = [("group", "optimizer, momentum", "seeds", "final test error %", "best %", "above")]
    for name, errors in finals.items():
        group = groups[name]
        if group.optimizer == "lcam":
            momentum = f"LCAM {group.momentum_below:g} below, {group.momentum_above:g} above"
        else:
            momentum = f"SGD {group.momentum:.4g}"
        spread = statistics.stdev(errors) if len(errors) > 1 else 0.0
        rows.append((name, momentum, str(len(errors)),
                     f"{statistics.mean(errors):.2f} ± {spread:.2f}",
                     f"{statistics.mean(bests[name]):.2f}",
                     f"{statistics.mean(above[name]):.2f}" if name in above else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = [cell.ljust(w) if i < 2 else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells))
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _write_report(runs: Path) -> int:
    try:
        from lcam.report import ReportError, build_report
    except ImportError as error:  # the report extra (scipy, matplotlib) is not installed
        print(f"(report skipped: {error}; pip install 'lcam[report]')", file=sys.stderr)
        return 0
    try:
        result = build_report([runs])
    except ReportError as error:
        print(f"lcam demo: report failed: {error}", file=sys.stderr)
        return 1
    print(f"report: {result.report_path}")
    return 0
