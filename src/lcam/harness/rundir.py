"""The run directory ``OUT/<preset>/<group>/seed<K>/`` and what may be done with it.

:func:`prepare_run_directory` decides, before anything is computed, whether a run
starts fresh, resumes from its checkpoint, is already finished, or must be refused:
an output directory holding a *different* configuration is never overwritten unless
``overwrite`` is set, and a partial run is continued only with ``resume``. Which
checkpoint a resumed run continues from (``checkpoint.pt``, or ``checkpoint.prev.pt``
when the latest one is unreadable) is decided by
:func:`lcam.harness.checkpoint.load_resume_point`; nothing here reads a checkpoint.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from lcam.harness.checkpoint import previous_checkpoint_path
from lcam.harness.config import ConfigError, RunConfig
from lcam.harness.metrics import write_json_atomic
from lcam.harness.writes import writing

__all__ = [
    "RunDirectory",
    "RunDirectoryError",
    "Start",
    "cpu_model",
    "git_commit",
    "machine_description",
    "package_versions",
    "prepare_run_directory",
    "run_directory",
]

Start = Literal["fresh", "resume", "finished"]

# Packages whose versions config.json records (those present are listed).
_VERSIONED_PACKAGES = ("lcam", "torch", "numpy", "scikit-learn", "scipy", "transformers",
                       "soundfile", "tensorboard")


class RunDirectoryError(ConfigError):
    """The output directory holds another run, a partial run without ``resume``, or a
    partial run that cannot be resumed (no usable checkpoint); the message says what to do."""


@dataclass(frozen=True)
class RunDirectory:
    """Paths of the files of one run (see ``docs/ARCHITECTURE.md``)."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def result(self) -> Path:
        return self.path / "result.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def previous_checkpoint(self) -> Path:
        """``checkpoint.prev.pt``: the checkpoint before the latest, kept while the run
        is unfinished."""
        return previous_checkpoint_path(self.checkpoint)

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def log(self) -> Path:
        """Output of a sweep worker (written by the sweep, not by the run)."""
        return self.path / "train.log"

    def checkpoint_temporaries(self) -> list[Path]:
        """Temporary checkpoint files left by a process killed while writing one."""
        return sorted(self.path.glob(f".{self.checkpoint.name}.*.tmp"))

    def is_finished(self) -> bool:
        """A run is finished iff ``result.json`` exists."""
        return self.result.exists()

    def clear(self) -> None:
        """Delete the run's own files (config, metrics, result, checkpoints, events)."""
        for path in (self.config, self.metrics, self.result, self.checkpoint,
                     self.previous_checkpoint, *self.checkpoint_temporaries()):
            with writing(path):
                path.unlink(missing_ok=True)
        shutil.rmtree(self.tensorboard, ignore_errors=True)


def run_directory(out: Path, config: RunConfig) -> RunDirectory:
    """``out/<preset>/<group>/seed<K>``."""
    return RunDirectory(Path(out) / config.preset / config.group.name / f"seed{config.seed}")


def prepare_run_directory(
    run_dir: RunDirectory, config: RunConfig, *, resume: bool, overwrite: bool
) -> Start:
    """Decide how the run in ``run_dir`` starts, clearing it when ``overwrite`` says so.

    Returns ``"finished"`` (same configuration, ``result.json`` present: nothing to do),
    ``"resume"`` (same configuration, a latest or previous checkpoint, ``resume`` set) or
    ``"fresh"``.
    Raises :class:`RunDirectoryError` for a different configuration, or a partial run
    of the same one, unless ``overwrite`` (or, for the partial run, ``resume``) is set.
    """
    if overwrite:
        run_dir.clear()
        return "fresh"
    if not run_dir.config.exists():
        leftovers = [p.name for p in (run_dir.metrics, run_dir.result, run_dir.checkpoint,
                                      run_dir.previous_checkpoint) if p.exists()]
        if leftovers:
            raise RunDirectoryError(
                f"{run_dir.path} holds {', '.join(leftovers)} but no config.json; "
                "pass --overwrite to start the run over"
            )
        return "fresh"
    saved = json.loads(run_dir.config.read_text(encoding="utf-8"))
    current = json.loads(json.dumps(config.experiment_json()))
    differences = _differences(_experiment_part(saved), current)
    if differences:
        raise RunDirectoryError(
            f"{run_dir.path} holds a run with a different configuration "
            f"({'; '.join(differences)}); pass --overwrite to replace it, or choose "
            "another --out"
        )
    if run_dir.is_finished():
        return "finished"
    if not resume:
        raise RunDirectoryError(
            f"{run_dir.path} holds an unfinished run of this configuration; pass --resume "
            "to continue it or --overwrite to start it over"
        )
    has_checkpoint = run_dir.checkpoint.exists() or run_dir.previous_checkpoint.exists()
    return "resume" if has_checkpoint else "fresh"


def config_document(config: RunConfig, runtime: dict[str, Any]) -> dict[str, Any]:
    """The whole ``config.json``: configuration, versions, git commit, machine, runtime."""
    return {
        **config.to_json(),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "machine": machine_description(),
        "runtime": runtime,
    }


def write_config(run_dir: RunDirectory, config: RunConfig, runtime: dict[str, Any]) -> None:
    """Create the run directory and write ``config.json`` into it."""
    with writing(run_dir.path):
        run_dir.path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir.config, config_document(config, runtime))


def package_versions() -> dict[str, str]:
    """Python and the installed versions of the packages a run depends on."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine_description() -> dict[str, Any]:
    """The machine a run trains on: CPU model, usable logical CPUs, operating system.

    Float reductions differ between CPU kernels, so the same run can end with slightly
    different numbers on another CPU; ``config.json`` records the machine so that
    results can be told apart. The CPU model is the first ``model name`` of
    ``/proc/cpuinfo`` (Linux), else what :func:`platform.processor` reports.
    """
    affinity = getattr(os, "sched_getaffinity", None)
    cpus = len(affinity(0)) if affinity is not None else os.cpu_count()
    return {"cpu": cpu_model(), "cpus": cpus, "platform": platform.platform()}


def cpu_model() -> str:
    """The CPU's model name (``"unknown"`` when the system does not say)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_commit() -> str | None:
    """The commit of the git checkout this package runs from, or ``None``."""
    source = Path(__file__).resolve().parent
    try:
        completed = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = completed.stdout.strip()
    return commit if completed.returncode == 0 and commit else None


def _experiment_part(saved: dict[str, Any]) -> dict[str, Any]:
    from lcam.harness.config import RUNTIME_FIELDS

    keys = ("preset", "group", "seed", "epochs", "data", "model", "schedule", "config")
    out = {key: saved.get(key) for key in keys}
    if isinstance(out["config"], dict):
        out["config"] = {k: v for k, v in out["config"].items() if k not in RUNTIME_FIELDS}
    return out


def _differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: saved != current`` for every leaf that differs."""
    out = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            out.extend(_differences(old, new, f"{prefix}{key}."))
        elif old != new:
            out.append(f"{prefix}{key}: {json.dumps(old)} (saved) != {json.dumps(new)} (now)")
    return out
