"""What each ``lcam`` subcommand does, once :mod:`lcam.cli` has parsed its arguments.

Every function prints its output, returns the exit status and lets
:class:`~lcam.harness.config.ConfigError` (unknown names, refused directories),
data-set errors, :class:`~lcam.harness.runlock.RunHeldError` and
:class:`~lcam.harness.writes.WriteFailedError` propagate; :func:`run_guarded` turns
them into one line on standard error and the exit status of
:mod:`lcam.harness.exitstatus` (the CLI and the sweep's workers both run commands
through it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lcam.harness import exitstatus
from lcam.harness.presets import CompositePreset, get_preset, get_single_preset, preset_names

if TYPE_CHECKING:
    from lcam.harness.sweep import SweepJob

__all__ = ["demo", "launch_train", "presets", "run_guarded", "sweep", "train"]


def run_guarded(
    command: str,
    action: Callable[[], int],
    *,
    on_error: Callable[[Exception, int], None] | None = None,
) -> int:
    """Run ``action`` (the subcommand ``command``) and return its exit status.

    The failures a user can act on end as one line ``lcam COMMAND: error: ...`` on
    standard error, without a traceback: refused names, options or run directories
    (:data:`~lcam.harness.exitstatus.REFUSED`), a run held by another process
    (:data:`~lcam.harness.exitstatus.RUN_HELD`), a file that could not be written
    (:data:`~lcam.harness.exitstatus.WRITE_FAILED`); ``on_error(error, status)`` is
    told as well. Anything else propagates.
    """
    from lcam.harness.config import ConfigError
    from lcam.harness.data import DatasetError
    from lcam.harness.runlock import RunHeldError
    from lcam.harness.writes import WriteFailedError

    try:
        return action()
    except (RunHeldError, WriteFailedError, ConfigError, DatasetError) as error:
        failure: Exception = error
    if isinstance(failure, RunHeldError):
        status, message = exitstatus.RUN_HELD, str(failure)
    elif isinstance(failure, WriteFailedError):
        status, message = exitstatus.WRITE_FAILED, (
            f"{failure}; what was written before is intact (rerun with --resume once it "
            "can be written)")
    else:
        status, message = exitstatus.REFUSED, str(failure)
    if on_error is not None:
        on_error(failure, status)
    try:
        print(f"lcam {command}: error: {message}", file=sys.stderr, flush=True)
    except OSError:
        pass  # standard error on the full disk itself (a sweep worker's train.log)
    return status


def presets(show: str | None, overrides: Mapping[str, str]) -> int:
    """List the presets, or print preset ``show`` resolved (with overrides) as JSON."""
    from lcam.harness.presets import show as show_preset

    if show is not None:
        print(show_preset(show, overrides))
        return 0
    width = max(len(name) for name in preset_names())
    for name in preset_names():
        preset = get_preset(name)
        if isinstance(preset, CompositePreset):
            groups = "rows: " + ", ".join(row.preset for row in preset.rows)
        else:
            groups = "groups: " + ", ".join(g.name for g in preset.with_overrides(
                overrides).sweep_groups())
        print(f"{name:<{width}}  {preset.description}")
        print(f"{'':<{width}}  {groups}")
    print("\n`lcam presets --show NAME` prints every setting of a preset.")
    return 0


def train(
    preset_name: str,
    *,
    group: str,
    seed: int,
    out: Path,
    overrides: Mapping[str, str],
    resume: bool,
    overwrite: bool,
    progress: bool,
) -> int:
    """Run one run of ``preset_name``; print where it is and its final test error.

    Under ``torchrun`` (see :mod:`lcam.harness.distributed`) the run is data-parallel
    over its processes, and only rank 0 prints.
    """
    import os

    from lcam.harness.components import validate_names
    from lcam.harness.distributed import TorchDistributed, launched_by_torchrun
    from lcam.harness.loop import run_training

    preset = get_single_preset(preset_name).with_overrides(overrides)
    config = preset.run_config(group, seed)
    validate_names(config.settings)  # a refused run says only why (no notes first)
    if os.environ.get("RANK", "0") == "0":
        _print_option_notes("train", preset.option_notes)
    if launched_by_torchrun():
        with TorchDistributed.from_environment(config.settings.device) as distributed:
            outcome = run_training(distributed.place(config), out, resume=resume,
                                   overwrite=overwrite, progress=progress,
                                   distributed=distributed)
    else:
        outcome = run_training(config, out, resume=resume, overwrite=overwrite,
                               progress=progress)
    if outcome.result is not None:
        result = outcome.result
        print(f"{outcome.run_dir}: finished {result.epochs} epochs, final test error "
              f"{result.final_test_error:.2f}% (best {result.best_test_error:.2f}% at epoch "
              f"{result.best_epoch})")
    if outcome.stopped is not None:  # run_training has said where (rank 0)
        from lcam.harness.stopping import STOPPED_EXIT_STATUS

        return STOPPED_EXIT_STATUS
    return 0


def launch_train(
    nproc: int, arguments: Sequence[str], *, preset_name: str, group: str, seed: int,
    overrides: Mapping[str, str], out: Path | None = None,
) -> int:
    """``lcam train ... --nproc N``: check the run, then run it under ``torchrun`` on N
    processes; the exit status is the run's.

    ``arguments`` are the ``train`` command's arguments; they are passed on without
    ``--nproc``. Stop signals are forwarded (:func:`~lcam.harness.distributed.launch_torchrun`);
    with ``out``, a run stopped by one exits with
    :data:`~lcam.harness.stopping.STOPPED_EXIT_STATUS`.
    """
    from lcam.harness.components import validate_names
    from lcam.harness.config import ConfigError
    from lcam.harness.distributed import launch_torchrun, launched_by_torchrun, without_nproc
    from lcam.harness.rundir import run_directory

    if nproc < 1:
        raise ConfigError(f"invalid --nproc: {nproc} (must be >= 1)")
    if launched_by_torchrun():
        raise ConfigError("--nproc given to a process torchrun started; drop --nproc")
    config = get_single_preset(preset_name).with_overrides(overrides).run_config(group, seed)
    validate_names(config.settings)
    if config.settings.batch_size % nproc:
        raise ConfigError(f"batch_size {config.settings.batch_size} is the global batch and "
                          f"must be divisible by --nproc {nproc}")
    checkpoint = None if out is None else run_directory(out, config).checkpoint
    return launch_torchrun(nproc, without_nproc(arguments), checkpoint)


def sweep(
    preset_name: str,
    *,
    out: Path,
    overrides: Mapping[str, str],
    seeds: int | None,
    jobs: int,
    groups: Sequence[str] | None,
    overwrite: bool,
    nproc: int | None = None,
    print_commands: bool = False,
) -> int:
    """Run every group x seed of ``preset_name`` as processes; the exit status is
    :attr:`~lcam.harness.sweep.SweepSummary.exit_status` (1 if a run failed, 3 if runs
    were held by another process, 4 if a run could not write and the sweep stopped).

    With ``print_commands`` nothing runs: each run's command is printed as one shell
    line (absolute paths, no thread count from this machine) for a cluster scheduler.
    """
    from lcam.harness.sweep import job_lines, plan_sweep, run_sweep

    if print_commands:
        plan = plan_sweep(preset_name, out.resolve(), overrides=overrides, seeds=seeds,
                          groups=groups, overwrite=overwrite, nproc=nproc,
                          split_threads=False)
        _validate_plan(plan)  # a typo fails here, not in every job on the cluster
        _print_option_notes("sweep", _option_notes(preset_name, overrides))
        print("\n".join(job_lines(plan)))
        return 0
    plan = plan_sweep(preset_name, out, overrides=overrides, seeds=seeds, groups=groups,
                      jobs=jobs, overwrite=overwrite, nproc=nproc)
    _validate_plan(plan)  # a mistake fails here once, not in every worker
    _print_option_notes("sweep", _option_notes(preset_name, overrides))
    summary = run_sweep(plan, jobs=jobs, skip_finished=not overwrite)
    print(summary.describe())
    if summary.ok:
        print(f"report: lcam report {out}")
    return summary.exit_status


def _validate_plan(plan: Sequence[SweepJob]) -> None:
    """Check every distinct setting of ``plan`` (names, options, user functions)."""
    from lcam.harness.components import validate_names

    checked: list[object] = []
    for job in plan:
        settings = job.config.settings
        if settings not in checked:
            validate_names(settings)
            checked.append(settings)


def _option_notes(preset_name: str, overrides: Mapping[str, str]) -> tuple[str, ...]:
    """The preset options (of every row of a composite) that overrides left out."""
    preset = get_preset(preset_name)
    if isinstance(preset, CompositePreset):
        rows = [row for row, _groups in preset.resolved_rows(overrides)]
    else:
        rows = [preset.with_overrides(overrides)]
    return tuple(dict.fromkeys(note for row in rows for note in row.option_notes))


def _print_option_notes(command: str, notes: Sequence[str]) -> None:
    for note in notes:
        print(f"lcam {command}: note: {note}", file=sys.stderr, flush=True)


def demo(*, out: Path, jobs: int | None) -> int:
    """The demo (``make demo``, docs/DEMO.md): digits, every group, 3 seeds, then the report."""
    from lcam.harness.demo import run_demo

    return run_demo(out, jobs=jobs)
