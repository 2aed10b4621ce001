"""Run every group x seed of a preset in worker processes, J at a time.

:func:`plan_sweep` turns a preset (a composite one row by row) into :class:`SweepJob`s,
each one ``python -m lcam train PRESET --group G --seed K --out OUT --resume ...``
command; :func:`run_sweep` skips the finished ones (``result.json`` present), runs the
rest with at most ``jobs`` at a time (each continues from its checkpoint if it has
one) and returns a :class:`SweepSummary`. A run's output goes to ``train.log`` in its
run directory; a failure never stops the other runs.

Workers: ``jobs`` long-lived processes that each import torch once and run many jobs,
each job being exactly its command line (``lcam.cli.main`` on the command's
arguments, output redirected to its ``train.log``): with runs of a few seconds,
starting a Python process and importing torch per run would cost as much as the
training. Every run seeds all random generators itself, so a run gives the same
numbers in a worker as from its command line (tested). Data-parallel runs
(``--nproc``) launch ``torchrun``, and run as one process per job. If a worker
process dies (a crash in native code), the jobs that did not finish run again, each
in a process of its own, so only the crashing run fails.

CPU threads: unless ``threads`` is overridden, each of the ``jobs`` workers gets
``cpu_count // jobs`` threads (``cpu_count // (jobs * nproc)`` per process with
``nproc``), so J workers do not oversubscribe the cores.

On a cluster, :func:`job_lines` gives each job's command as one shell line
(``lcam sweep ... --print-commands``): every line is self-contained (absolute paths,
every override, ``--resume``) and writes only its own run directory
``OUT/<preset>/<group>/seed<K>``, so a scheduler may run the lines in any order, on any
node that sees ``OUT``, and rerun any of them; ``lcam report OUT`` merges the results.
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from lcam.harness.config import ConfigError, RunConfig
from lcam.harness.presets import CompositePreset, Preset, get_preset
from lcam.harness.rundir import RunDirectory, run_directory

__all__ = ["SweepJob", "SweepSummary", "job_lines", "plan_sweep", "run_sweep",
           "threads_per_job"]


@dataclass(frozen=True)
class SweepJob:
    """One run of a sweep and the command that runs it."""

    preset: str
    group: str
    seed: int
    run_dir: RunDirectory
    command: tuple[str, ...]
    config: RunConfig

    @property
    def label(self) -> str:
        return f"{self.preset}/{self.group}/seed{self.seed}"


@dataclass
class SweepSummary:
    """What a sweep did with each job."""

    skipped: list[SweepJob] = field(default_factory=list)
    finished: list[SweepJob] = field(default_factory=list)
    failed: list[tuple[SweepJob, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        """A short human summary, with the log of every failed run."""
        lines = [f"sweep: {len(self.finished)} run(s) finished, {len(self.skipped)} already "
                 f"finished (skipped), {len(self.failed)} failed"]
        for job, code in self.failed:
            lines.append(f"  FAILED {job.label} (exit status {code}); log: {job.run_dir.log}")
            lines.extend(f"    | {line}" for line in _tail(job.run_dir.log, 5))
        return "\n".join(lines)


def threads_per_job(jobs: int) -> int:
    """CPU threads for each of ``jobs`` concurrent workers (at least 1)."""
    return max(1, (os.cpu_count() or 1) // jobs)


def plan_sweep(
    preset_name: str,
    out: Path,
    *,
    overrides: Mapping[str, str] | None = None,
    seeds: int | None = None,
    groups: Sequence[str] | None = None,
    jobs: int = 1,
    overwrite: bool = False,
    nproc: int | None = None,
    split_threads: bool = True,
) -> list[SweepJob]:
    """Every run of ``preset_name`` (each row of a composite) as a :class:`SweepJob`.

    Args:
        overrides: ``key=value`` text overrides, passed to every worker.
        seeds: run seeds ``0 .. seeds-1`` (default: the preset's ``seeds``).
        groups: group names to run (default: the preset's sweep groups; a composite's
            rows keep their own groups unless this is given).
        jobs: concurrent workers, used to split the CPU threads.
        overwrite: workers start every run over (``--overwrite``) instead of resuming.
        nproc: every run trains data-parallel on this many processes (``--nproc``).
        split_threads: set ``threads`` to this machine's share per process (unless
            overridden); off for commands that will run on other machines.
    """
    if nproc is not None and nproc < 1:
        raise ConfigError(f"invalid --nproc: {nproc} (must be >= 1)")
    overrides = dict(overrides or {})
    preset = get_preset(preset_name)
    rows: list[tuple[Preset, Sequence[str] | None]]
    if isinstance(preset, CompositePreset):
        rows = [(row_preset, groups or row_groups)
                for row_preset, row_groups in preset.resolved_rows(overrides)]
    else:
        rows = [(preset.with_overrides(overrides), groups)]
    if split_threads and "threads" not in overrides:
        overrides["threads"] = str(threads_per_job(jobs * (nproc or 1)))
    launch = ("--nproc", str(nproc)) if nproc is not None and nproc > 1 else ()
    plan: list[SweepJob] = []
    for row_preset, row_groups in rows:
        plan.extend(_jobs_for(row_preset, out, overrides, seeds, row_groups, overwrite, launch))
    labels = [job.label for job in plan]
    if len(labels) != len(set(labels)):
        raise ConfigError(f"sweep of {preset_name!r} lists a run twice")
    return plan


def _jobs_for(
    preset: Preset,
    out: Path,
    overrides: Mapping[str, str],
    seeds: int | None,
    groups: Sequence[str] | None,
    overwrite: bool,
    launch: Sequence[str],
) -> list[SweepJob]:
    jobs = []
    for group in preset.sweep_groups(groups):
        for seed in range(seeds if seeds is not None else preset.seeds):
            config = preset.run_config(group.name, seed)
            command = [sys.executable, "-m", "lcam", "train", preset.name, "--group",
                       group.name, "--seed", str(seed), "--out", str(out), "--no-progress",
                       "--overwrite" if overwrite else "--resume", *launch]
            for key, value in overrides.items():
                command += ["--set", f"{key}={value}"]
            jobs.append(SweepJob(preset.name, group.name, seed, run_directory(out, config),
                                 tuple(command), config))
    return jobs


def job_lines(plan: Sequence[SweepJob]) -> list[str]:
    """Each job's command as one shell-quoted line (``shlex.join``)."""
    return [shlex.join(job.command) for job in plan]


def run_sweep(
    plan: Sequence[SweepJob],
    *,
    jobs: int = 1,
    skip_finished: bool = True,
    log: Callable[[str], None] | None = None,
    poll_seconds: float = 0.2,
    workers: bool = True,
) -> SweepSummary:
    """Run ``plan`` with at most ``jobs`` at a time.

    Finished runs are skipped when ``skip_finished``; every other job runs its command
    (which resumes from a checkpoint when there is one). With ``workers`` (the
    default), jobs run in ``jobs`` long-lived worker processes; otherwise (and for
    ``--nproc`` jobs) each job is a process of its own. Returns once all are done.
    """
    if jobs < 1:
        raise ConfigError(f"invalid --jobs: {jobs} (must be >= 1)")
    write = log or (lambda line: print(line, flush=True))
    summary = SweepSummary()
    waiting: list[SweepJob] = []
    for job in plan:
        if skip_finished and job.run_dir.is_finished():
            summary.skipped.append(job)
        else:
            waiting.append(job)
    write(f"sweep: {len(plan)} run(s), {len(summary.skipped)} already finished, "
          f"{len(waiting)} to run, {jobs} at a time")
    progress = _Progress(summary, write, len(waiting))
    pooled = [job for job in waiting if workers and "--nproc" not in job.command]
    alone = [job for job in waiting if job not in pooled]
    alone.extend(_run_in_workers(pooled, jobs, progress))
    _run_as_processes(alone, jobs, progress, poll_seconds)
    return summary


class _Progress:
    """Records each finished job in the summary and prints one line for it."""

    def __init__(self, summary: SweepSummary, write: Callable[[str], None], total: int):
        self.summary, self.write, self.total, self.done = summary, write, total, 0

    def record(self, job: SweepJob, code: int, seconds: float) -> None:
        self.done += 1
        if code == 0:
            self.summary.finished.append(job)
            self.write(f"[{self.done}/{self.total}] {job.label} finished ({seconds:.0f}s)")
        else:
            self.summary.failed.append((job, code))
            self.write(f"[{self.done}/{self.total}] {job.label} FAILED with exit status "
                       f"{code} (log: {job.run_dir.log})")


def _run_in_workers(plan: Sequence[SweepJob], jobs: int, progress: _Progress) -> list[SweepJob]:
    """Run ``plan`` in a pool of ``jobs`` workers; return the jobs a dead worker left."""
    if not plan:
        return []
    context = multiprocessing.get_context("spawn")
    left: list[SweepJob] = []
    with ProcessPoolExecutor(max_workers=min(jobs, len(plan)), mp_context=context) as pool:
        pending: dict[Future[tuple[int, float]], SweepJob] = {}
        for job in plan:
            pending[pool.submit(_run_job_in_worker, job)] = job
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    code, seconds = future.result()
                except BrokenProcessPool:
                    left.append(job)
                    continue
                progress.record(job, code, seconds)
    if left:
        progress.write(f"sweep: a worker process died; {len(left)} unfinished run(s) "
                       "run again, each in a process of its own")
    return left


def _run_job_in_worker(job: SweepJob) -> tuple[int, float]:
    """Worker: run the job's ``lcam train`` here, output into its ``train.log``;
    (exit status, seconds). The run directory appears only when the job starts."""
    started = time.perf_counter()
    _start_log(job)
    code = _run_logged(list(job.command[3:]), str(job.run_dir.log))
    return code, time.perf_counter() - started


def _run_logged(argv: list[str], log: str) -> int:
    from lcam.cli import main

    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with open(log, "ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            return main(argv)
        except SystemExit as stop:  # argparse errors, as the command line would exit
            return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        except Exception:
            traceback.print_exc()
            return 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _run_as_processes(
    plan: Sequence[SweepJob], jobs: int, progress: _Progress, poll_seconds: float
) -> None:
    """Run each job of ``plan`` as its own process, at most ``jobs`` at a time."""
    running: list[tuple[SweepJob, subprocess.Popen[bytes], float]] = []
    waiting = list(reversed(plan))
    while waiting or running:
        while waiting and len(running) < jobs:
            job = waiting.pop()
            running.append((job, _launch(job), time.perf_counter()))
        time.sleep(poll_seconds)
        still_running = []
        for job, process, started in running:
            code = process.poll()
            if code is None:
                still_running.append((job, process, started))
                continue
            progress.record(job, code, time.perf_counter() - started)
        running = still_running


def _start_log(job: SweepJob) -> None:
    job.run_dir.path.mkdir(parents=True, exist_ok=True)
    with open(job.run_dir.log, "ab") as log:
        log.write(f"$ {' '.join(job.command)}\n".encode())


def _launch(job: SweepJob) -> subprocess.Popen[bytes]:
    _start_log(job)
    with open(job.run_dir.log, "ab") as log:
        return subprocess.Popen(job.command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []
