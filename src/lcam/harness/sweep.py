"""Run every group x seed of a preset in worker processes, J at a time.

:func:`plan_sweep` turns a preset (a composite one row by row) into :class:`SweepJob`s,
each one ``python -m lcam train PRESET --group G --seed K --out OUT --resume ...``
command; :func:`run_sweep` skips the finished ones (``result.json`` present), runs the
rest with at most ``jobs`` at a time (each continues from its checkpoint if it has
one) and returns a :class:`SweepSummary`. A run's output goes to ``train.log`` in its
run directory; a failure never stops the other runs.

Workers: ``jobs`` long-lived processes that each import torch once and run many jobs,
each job being exactly its command line (:func:`run_job`: the ``lcam train`` command
of :mod:`lcam.harness.commands` on the job's arguments, output redirected to its
``train.log``; the harness never imports the command line): with runs of a few seconds,
starting a Python process and importing torch per run would cost as much as the
training. Every run seeds all random generators itself, so a run gives the same
numbers in a worker as from its command line (tested). Data-parallel runs
(``--nproc``) launch ``torchrun``, and run as one process per job. If a worker
process dies (a crash in native code), the jobs that did not finish run again, each
in a process of its own, so only the crashing run fails.

CPU threads: unless ``threads`` is overridden, each of the ``jobs`` workers gets
``cpu_count // jobs`` threads (``cpu_count // (jobs * nproc)`` per process with
``nproc``), so J workers do not oversubscribe the cores.

One writer per run: a run held by another process (another sweep, a requeued task
still running, :mod:`lcam.harness.runlock`) is skipped, said so and counted as held.
A run that cannot write a file (exit status
:data:`~lcam.harness.exitstatus.WRITE_FAILED`: no space left, read-only file system)
stops the sweep from starting further runs; the summary says why and how many runs
were not started.

Signals (:mod:`lcam.harness.stopping`): SIGTERM, SIGINT or SIGUSR1 to the sweep is
forwarded to every worker and job process (each in a process group of its own, so a
terminal's Ctrl-C reaches them once, through the sweep); their runs stop after the
current step with a mid-epoch checkpoint, no further run starts, and once all have
exited the summary counts the stopped runs and the sweep's exit status is
:data:`~lcam.harness.stopping.STOPPED_EXIT_STATUS`. A second signal
(:data:`~lcam.harness.stopping.FORCE_AFTER_SECONDS` later) kills every process below
the sweep (SIGKILL) and exits with 128 + the signal.

On a cluster, :func:`job_lines` gives each job's command as one shell line
(``lcam sweep ... --print-commands``): every line is self-contained (absolute paths,
every override, ``--resume``) and writes only its own run directory
``OUT/<preset>/<group>/seed<K>``, so a scheduler may run the lines in any order, on any
node that sees ``OUT``, and rerun any of them; ``lcam report OUT`` merges the results.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from lcam.harness import exitstatus
from lcam.harness.config import ConfigError, RunConfig
from lcam.harness.presets import CompositePreset, Preset, get_preset
from lcam.harness.rundir import RunDirectory, run_directory
from lcam.harness.runlock import RunHeldError, RunLock, describe_holder, lock_holder
from lcam.harness.stopping import (
    FORCE_AFTER_SECONDS,
    STOPPED_EXIT_STATUS,
    descendants,
    forced_exit_status,
    handle_stop_signals,
    handle_stop_signals_for_good,
    signal_name,
    stop_requested,
)
from lcam.harness.writes import WriteFailedError, writing

__all__ = ["SweepJob", "SweepSummary", "job_lines", "plan_sweep", "run_job", "run_sweep",
           "threads_per_job"]


@dataclass(frozen=True)
class SweepJob:
    """One run of a sweep and the command that runs it.

    ``overrides`` and ``overwrite`` are the command's ``--set`` items and its
    ``--overwrite`` (else ``--resume``): :func:`run_job` runs the same command in-process.
    """

    preset: str
    group: str
    seed: int
    run_dir: RunDirectory
    command: tuple[str, ...]
    config: RunConfig
    overrides: tuple[tuple[str, str], ...]
    overwrite: bool

    @property
    def label(self) -> str:
        return f"{self.preset}/{self.group}/seed{self.seed}"

    @property
    def out(self) -> Path:
        """The output root (``--out``): the run directory is ``out/<preset>/<group>/seed<K>``."""
        return self.run_dir.path.parent.parent.parent


@dataclass
class SweepSummary:
    """What a sweep did with each job.

    ``held``: runs another process held (with who holds them), skipped; ``stopped``: why
    the sweep stopped starting runs (a failed write), ``not_started`` the runs it left.
    """

    skipped: list[SweepJob] = field(default_factory=list)
    finished: list[SweepJob] = field(default_factory=list)
    failed: list[tuple[SweepJob, int]] = field(default_factory=list)
    held: list[tuple[SweepJob, str]] = field(default_factory=list)
    stopped: str | None = None
    not_started: list[SweepJob] = field(default_factory=list)
    # A stop signal (its name): the runs it stopped wrote a checkpoint and exited.
    signalled: str | None = None
    interrupted: list[SweepJob] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None and self.signalled is None

    @property
    def exit_status(self) -> int:
        """``lcam sweep``'s exit status (:mod:`lcam.harness.exitstatus`): a failed write
        first, then a failed run, then runs held elsewhere; a stop signal before all
        (:data:`~lcam.harness.stopping.STOPPED_EXIT_STATUS`)."""
        if self.signalled is not None:
            return STOPPED_EXIT_STATUS
        if self.stopped is not None:
            return exitstatus.WRITE_FAILED
        if self.failed:
            return exitstatus.FAILED
        return exitstatus.RUN_HELD if self.held else exitstatus.OK

    def describe(self) -> str:
        """A short human summary, with the log of every failed run."""
        lines = [f"sweep: {len(self.finished)} run(s) finished, {len(self.skipped)} already "
                 f"finished (skipped), {len(self.held)} held by another process (skipped), "
                 f"{len(self.failed)} failed"
                 + (f", {len(self.interrupted)} stopped" if self.signalled else "")
                 + (f", {len(self.not_started)} not started" if self.not_started else "")]
        for job, holder in self.held:
            lines.append(f"  HELD {job.label}: by {holder}")
        for job, code in self.failed:
            lines.append(f"  FAILED {job.label} (exit status {code}); log: {job.run_dir.log}")
            lines.extend(f"    | {line}" for line in _tail(job.run_dir.log, 5))
        if self.stopped is not None:
            lines.append(f"sweep: stopped starting runs: {self.stopped}")
        if self.signalled is not None:
            lines.append(f"sweep: stopped by {self.signalled}: each stopped run wrote a "
                         "checkpoint of where it was; run the same command again to resume")
        if self.held and self.stopped is None and not self.failed:
            lines.append("sweep: the held runs are another process's to finish; run the "
                         "sweep again once it has ended to see them finished or resume them")
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
                                 tuple(command), config, tuple(overrides.items()), overwrite))
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
    # SIGTERM / SIGINT / SIGUSR1: forwarded to the workers, whose runs stop after their
    # current step with a checkpoint; the sweep waits for them (lcam.harness.stopping).
    with handle_stop_signals(on_first=_forward_stop(summary), on_force=_kill_everything):
        alone.extend(_run_in_workers(pooled, jobs, progress))
        _run_as_processes(alone, jobs, progress, poll_seconds)
    return summary


class _Progress:
    """Records each finished job in the summary and prints one line for it."""

    def __init__(self, summary: SweepSummary, write: Callable[[str], None], total: int):
        self.summary, self.write, self.total, self.done = summary, write, total, 0

    @property
    def stopping(self) -> bool:
        """A run could not write, or a stop signal came: start no further runs."""
        return self.summary.stopped is not None or self.summary.signalled is not None

    def record(self, job: SweepJob, code: int, seconds: float, detail: str | None = None
               ) -> None:
        """Record ``job``'s exit status; ``detail``: its holder (held) or its error line."""
        self.done += 1
        if code == 0:
            self.summary.finished.append(job)
            self.write(f"[{self.done}/{self.total}] {job.label} finished ({seconds:.0f}s)")
            return
        if code == STOPPED_EXIT_STATUS and detail == _NOT_STARTED:
            self.done -= 1
            self.not_started([job])
            return
        if code == STOPPED_EXIT_STATUS and self.summary.signalled is not None:
            self.summary.interrupted.append(job)
            self.write(f"[{self.done}/{self.total}] {job.label} stopped, checkpoint written "
                       f"({seconds:.0f}s; log: {job.run_dir.log})")
            return
        if code == exitstatus.RUN_HELD:
            holder = detail or describe_holder(lock_holder(job.run_dir.path))
            self.summary.held.append((job, holder))
            self.write(f"[{self.done}/{self.total}] {job.label} skipped: held by another "
                       f"process ({holder})")
            return
        self.summary.failed.append((job, code))
        self.write(f"[{self.done}/{self.total}] {job.label} FAILED with exit status "
                   f"{code} (log: {job.run_dir.log})")
        if code == exitstatus.WRITE_FAILED and not self.stopping:
            why = detail or next((line.removeprefix("lcam train: error: ") for line in
                                  reversed(_tail(job.run_dir.log, 5)) if "cannot write" in line),
                                 f"{job.label} could not write a file")
            self.summary.stopped = why
            self.write(f"sweep: {why}; starting no further runs")

    def not_started(self, jobs: Sequence[SweepJob]) -> None:
        self.summary.not_started.extend(jobs)


def _run_in_workers(plan: Sequence[SweepJob], jobs: int, progress: _Progress) -> list[SweepJob]:
    """Run ``plan`` in a pool of ``jobs`` workers; return the jobs a dead worker left."""
    if not plan:
        return []
    if progress.stopping:
        progress.not_started(plan)
        return []
    context = multiprocessing.get_context("spawn")
    left: list[SweepJob] = []
    with ProcessPoolExecutor(max_workers=min(jobs, len(plan)), mp_context=context,
                             initializer=_worker_started) as pool:
        pending: dict[Future[tuple[int, float, str | None]], SweepJob] = {}
        waiting = list(plan)

        def submit() -> None:
            # At most `jobs` in flight (none queued in the pool), so that a stop leaves
            # every run not yet started unstarted.
            while waiting and len(pending) < jobs and not progress.stopping and not left:
                try:
                    future = pool.submit(_run_job_in_worker, waiting[0])
                except BrokenProcessPool:
                    return
                pending[future] = waiting.pop(0)

        submit()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    code, seconds, detail = future.result()
                except BrokenProcessPool:
                    left.append(job)
                    continue
                progress.record(job, code, seconds, detail)
            if progress.stopping:  # the runs not started yet stay so
                cancelled = [future for future in pending if future.cancel()]
                progress.not_started([pending.pop(future) for future in cancelled])
            submit()
        if progress.stopping:
            progress.not_started(waiting)
        else:
            left.extend(waiting)  # a dead worker broke the pool before they started
    if left and progress.stopping:
        progress.not_started(left)
        return []
    if left:
        progress.write(f"sweep: a worker process died; {len(left)} unfinished run(s) "
                       "run again, each in a process of its own")
    return left


def run_job(
    job: SweepJob, *, on_error: Callable[[Exception, int], None] | None = None
) -> int:
    """Run ``job``'s ``lcam train`` command in this process; its exit status.

    What the job's command line does, through :mod:`lcam.harness.commands` (not the
    command line): errors end as one line on standard error and an exit status of
    :mod:`lcam.harness.exitstatus`; ``on_error(error, status)`` is told as well.
    """
    from lcam.harness import commands

    return commands.run_guarded(
        "train",
        lambda: commands.train(job.preset, group=job.group, seed=job.seed, out=job.out,
                               overrides=dict(job.overrides), resume=not job.overwrite,
                               overwrite=job.overwrite, progress=False),
        on_error=on_error)


def _run_job_in_worker(job: SweepJob) -> tuple[int, float, str | None]:
    """Worker: run the job's ``lcam train`` here, output into its ``train.log``;
    (exit status, seconds, the holder of a held run or the error line of a failed
    write). The run directory appears only when the job starts; a run held by another
    process is left alone (its log included)."""
    started = time.perf_counter()
    if stop_requested() is not None:  # the sweep is stopping: start no run
        return STOPPED_EXIT_STATUS, 0.0, _NOT_STARTED
    holder = _held_elsewhere(job)
    if holder is not None:
        return exitstatus.RUN_HELD, 0.0, holder
    details: list[str] = []

    def note(error: Exception, status: int) -> None:
        details.append(describe_holder(error.holder) if isinstance(error, RunHeldError)
                       else str(error))

    try:
        _start_log(job)
        code = _run_logged(lambda: run_job(job, on_error=note), str(job.run_dir.log))
    except WriteFailedError as error:  # the log itself
        return exitstatus.WRITE_FAILED, time.perf_counter() - started, str(error)
    return code, time.perf_counter() - started, details[-1] if details else None


_NOT_STARTED = "not started"


def _worker_started() -> None:
    """Pool initializer: a process group of its own (a terminal's Ctrl-C reaches the
    sweep alone, which forwards it once) and the stop handlers for good, so a signal
    between two runs stops the next one before it starts."""
    os.setpgid(0, 0)
    handle_stop_signals_for_good()


def _held_elsewhere(job: SweepJob) -> str | None:
    """Who holds ``job``'s run directory, or ``None`` when nobody does (a quick look:
    the run itself takes the lock)."""
    lock = RunLock(job.run_dir.path)
    try:
        lock.acquire()
    except RunHeldError as error:
        return describe_holder(error.holder)
    except WriteFailedError:
        return None  # the run says so
    lock.release()
    return None


def _run_logged(action: Callable[[], int], log: str) -> int:
    """Run ``action`` with file descriptors 1 and 2 appended to ``log``; its exit status."""
    _flush_standard_streams()
    with writing(log), open(log, "ab") as handle:
        saved = (os.dup(1), os.dup(2))
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            return action()
        except SystemExit as stop:  # as the command line would exit
            return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        except Exception:
            with contextlib.suppress(OSError):
                traceback.print_exc()
            return exitstatus.FAILED
        finally:
            _flush_standard_streams()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _flush_standard_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a full disk under a log
            stream.flush()


def _run_as_processes(
    plan: Sequence[SweepJob], jobs: int, progress: _Progress, poll_seconds: float
) -> None:
    """Run each job of ``plan`` as its own process, at most ``jobs`` at a time."""
    running: list[tuple[SweepJob, subprocess.Popen[bytes], float]] = []
    waiting = list(reversed(plan))
    while waiting or running:
        if progress.stopping:
            progress.not_started(list(reversed(waiting)))
            waiting = []
        while waiting and len(running) < jobs:
            job = waiting.pop()
            try:
                running.append((job, _launch(job), time.perf_counter()))
            except WriteFailedError as error:
                progress.record(job, exitstatus.WRITE_FAILED, 0.0, str(error))
                break
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
    with writing(job.run_dir.log):
        job.run_dir.path.mkdir(parents=True, exist_ok=True)
        with open(job.run_dir.log, "ab") as log:
            log.write(f"$ {' '.join(job.command)}\n".encode())


def _launch(job: SweepJob) -> subprocess.Popen[bytes]:
    _start_log(job)
    with writing(job.run_dir.log), open(job.run_dir.log, "ab") as log:
        # A session of its own: a terminal's Ctrl-C reaches it once, through the sweep.
        process = subprocess.Popen(job.command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    _PROCESSES.add(process)
    return process


# The job processes of _run_as_processes, to forward a stop signal to.
_PROCESSES: set[subprocess.Popen[bytes]] = set()


def _children() -> list[int]:
    """The sweep's workers and job processes that are still running."""
    for process in list(_PROCESSES):
        if process.poll() is not None:
            _PROCESSES.discard(process)
    return [*(child.pid for child in multiprocessing.active_children() if child.pid),
            *(process.pid for process in _PROCESSES)]


def _say(line: str) -> None:
    """Print from a signal handler (``print`` may be in the middle of a line)."""
    with contextlib.suppress(OSError):
        os.write(1, f"{line}\n".encode())


def _forward_stop(summary: SweepSummary) -> Callable[[int], None]:
    def forward(signum: int) -> None:
        summary.signalled = signal_name(signum)
        children = _children()
        for pid in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
        _say(f"sweep: {signal_name(signum)}: the running runs stop after their current "
             f"step and write a checkpoint ({len(children)} process(es) told); no further "
             f"run starts. A second signal ({FORCE_AFTER_SECONDS:g} s or more later) kills "
             "them at once")
    return forward


def _kill_everything(signum: int) -> None:
    """Second signal: SIGKILL every process below the sweep, then exit from it."""
    _say(f"sweep: second {signal_name(signum)}: killing every worker (SIGKILL); the runs "
         "resume from their last checkpoint")
    for pid in [*descendants(os.getpid()), *_children()]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    os._exit(forced_exit_status(signum))


def _tail(path: Path, lines: int, *, limit: int = 1 << 16) -> list[str]:
    """The last ``lines`` lines of the file ``path`` (of its last ``limit`` bytes); none
    for what is not a regular file."""
    try:
        if not path.is_file():
            return []
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - limit))
            text = handle.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
