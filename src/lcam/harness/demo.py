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
from collections.abc import Sequence
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


def run_demo(out: Path, *, jobs: int | None = None) -> int:
    """Run the demo into ``out``; print the summary table and write the report."""
    started = time.perf_counter()
    preset = get_single_preset(DEMO_PRESET)
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
    """Final test error per group (mean and sample std over seeds), as a text table."""
    rows: dict[str, list[dict[str, float | None]]] = {}
    groups = {}
    for config in configs:
        run = run_directory(out, config)
        result = json.loads(run.result.read_text(encoding="utf-8"))
        lines = [json.loads(line) for line in run.metrics.read_text().splitlines() if line]
        fractions = [ln["fraction_above"] for ln in lines if ln["fraction_above"] is not None]
        rows.setdefault(config.group.name, []).append({
            "final": result["final_test_error"], "best": result["best_test_error"],
            "above": sum(fractions) / len(fractions) if fractions else None,
        })
        groups[config.group.name] = config.group
    header = (f"{'group':<22}{'optimizer / momentum':<26}{'seeds':>6}"
              f"{'final test error %':>22}{'best %':>9}{'above':>7}")
    table = [header, "-" * len(header)]
    for name, results in rows.items():
        group = groups[name]
        if group.optimizer == "lcam":
            momentum = f"LCAM {group.momentum_below:g} below/{group.momentum_above:g} above"
        else:
            momentum = f"SGD {group.momentum:.4g}"
        finals = [float(r["final"]) for r in results]  # type: ignore[arg-type]
        spread = statistics.stdev(finals) if len(finals) > 1 else 0.0
        best = statistics.mean(float(r["best"]) for r in results)  # type: ignore[arg-type]
        above = [r["above"] for r in results if r["above"] is not None]
        above_text = f"{statistics.mean(above):.2f}" if above else "-"  # type: ignore[arg-type]
        table.append(f"{name:<22}{momentum:<26}{len(finals):>6}"
                     f"{statistics.mean(finals):>15.2f} ± {spread:<4.2f}{best:>9.2f}"
                     f"{above_text:>7}")
    return "\n".join(table)


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
