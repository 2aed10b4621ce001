"""What each ``lcam`` subcommand does, once :mod:`lcam.cli` has parsed its arguments.

Every function prints its output, returns the exit status and lets
:class:`~lcam.harness.config.ConfigError` (unknown names, refused directories) and
data-set errors propagate for the CLI to report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from lcam.harness.presets import CompositePreset, get_preset, get_single_preset, preset_names

__all__ = ["demo", "launch_train", "presets", "sweep", "train"]


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
    from lcam.harness.distributed import TorchDistributed, launched_by_torchrun
    from lcam.harness.loop import run_training

    config = get_single_preset(preset_name).with_overrides(overrides).run_config(group, seed)
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
    return 0


def launch_train(
    nproc: int, arguments: Sequence[str], *, preset_name: str, group: str, seed: int,
    overrides: Mapping[str, str],
) -> int:
    """``lcam train ... --nproc N``: check the run, then become ``torchrun`` on N processes.

    ``arguments`` are the ``train`` command's arguments; they are passed on without
    ``--nproc``. Never returns (the process is replaced) unless the run is refused.
    """
    from lcam.harness.components import validate_names
    from lcam.harness.config import ConfigError
    from lcam.harness.distributed import launch_torchrun, launched_by_torchrun, without_nproc

    if nproc < 1:
        raise ConfigError(f"invalid --nproc: {nproc} (must be >= 1)")
    if launched_by_torchrun():
        raise ConfigError("--nproc given to a process torchrun started; drop --nproc")
    config = get_single_preset(preset_name).with_overrides(overrides).run_config(group, seed)
    validate_names(config.settings)
    if config.settings.batch_size % nproc:
        raise ConfigError(f"batch_size {config.settings.batch_size} is the global batch and "
                          f"must be divisible by --nproc {nproc}")
    launch_torchrun(nproc, without_nproc(arguments))


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
    """Run every group x seed of ``preset_name`` as processes; 1 if any run failed.

    With ``print_commands`` nothing runs: each run's command is printed as one shell
    line (absolute paths, no thread count from this machine) for a cluster scheduler.
    """
    from lcam.harness.sweep import job_lines, plan_sweep, run_sweep

    if print_commands:
        from lcam.harness.components import validate_names

        plan = plan_sweep(preset_name, out.resolve(), overrides=overrides, seeds=seeds,
                          groups=groups, overwrite=overwrite, nproc=nproc,
                          split_threads=False)
        for job in plan:  # a typo fails here, not in every job on the cluster
            validate_names(job.config.settings)
        print("\n".join(job_lines(plan)))
        return 0
    plan = plan_sweep(preset_name, out, overrides=overrides, seeds=seeds, groups=groups,
                      jobs=jobs, overwrite=overwrite, nproc=nproc)
    summary = run_sweep(plan, jobs=jobs, skip_finished=not overwrite)
    print(summary.describe())
    if summary.ok:
        print(f"report: lcam report {out}")
    return 0 if summary.ok else 1


def demo(*, out: Path, jobs: int | None) -> int:
    """The README's demo: the digits preset, every group, 3 seeds, then the report."""
    from lcam.harness.demo import run_demo

    return run_demo(out, jobs=jobs)
