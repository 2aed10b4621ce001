"""Atomic checkpoints: everything a run needs to continue as if never stopped.

A checkpoint is written after every epoch (``checkpoint.pt`` in the run directory): the
model, the optimizer (LCAM's loss statistics included, they are part of its
``state_dict``), the lr scheduler, the torch / CUDA / numpy / Python RNG states, the
number of finished epochs and iterations, and the data order. The data order needs no
saved generator: :class:`~lcam.harness.data.loader.BatchLoader` draws epoch ``e``'s
order and augmentation from ``(seed, e)`` alone, so the checkpoint records that pair.
A run stopped by a signal (:mod:`lcam.harness.stopping`) writes one in the middle of
an epoch: its ``mid_epoch`` entry holds the steps taken in that epoch and the epoch's
sums so far (``None`` at an epoch's end; older checkpoints lack the key).

Atomicity and the previous checkpoint: the new file is written under a temporary name
in the same directory and flushed to disk (``fsync``); then the current checkpoint is
renamed to ``checkpoint.prev.pt`` and the temporary file to ``checkpoint.pt`` (both
``os.replace``), and the directory is synced. A crash at any moment therefore leaves

- before the renames: the old ``checkpoint.pt`` and ``checkpoint.prev.pt``, untouched;
- between them: no ``checkpoint.pt``, and ``checkpoint.prev.pt`` = the old latest one;
- after them: the new ``checkpoint.pt`` and the old one as ``checkpoint.prev.pt``;

never a torn file under either name. :func:`load_resume_point` reads the latest
checkpoint and, when it is missing or unreadable (a disk that lost the end of the file,
a copy cut short), the previous one, and says why it skipped the latest.

Checkpoints hold only tensors, numbers, strings, lists and dicts, so they load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import os
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lcam.harness.writes import WriteFailedError, os_error_in

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "NoUsableCheckpointError",
    "ResumePoint",
    "capture_rng_state",
    "load_checkpoint",
    "load_resume_point",
    "previous_checkpoint_path",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint layout; bumped when a key changes meaning."""

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, not a checkpoint, another format or run.

    ``path`` is the file and ``problem`` what is wrong with it, phrased to follow the
    path (``str(error)`` is ``"<path> <problem>"``).
    """

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.path = Path(path)
        self.problem = problem


class NoUsableCheckpointError(CheckpointError):
    """Neither the latest nor the previous checkpoint can be used; ``problems`` says why."""

    def __init__(self, problems: list[CheckpointError]) -> None:
        super().__init__(problems[0].path, "; ".join(
            [problems[0].problem, *(str(problem) for problem in problems[1:])]))
        self.problems = problems


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a run resumes from: its ``state``, its ``path`` and, when that is the
    previous checkpoint, ``skipped``: why the latest one was not used."""

    state: dict[str, Any]
    path: Path
    skipped: CheckpointError | None = None


def previous_checkpoint_path(path: Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``checkpoint.pt`` -> ``checkpoint.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(path: Path, state: dict[str, Any], *, keep_previous: bool = True) -> None:
    """Write ``state`` to ``path`` atomically, keeping the checkpoint it replaces.

    The temporary file is written and fsynced first; then, with ``keep_previous``, the
    current ``path`` (if any) becomes :func:`previous_checkpoint_path` and the temporary
    file becomes ``path``. Without ``keep_previous`` the current file is replaced and
    the previous checkpoint is left as it is (the loop does that once after resuming
    from the previous checkpoint, so an unreadable latest file never becomes the
    "previous" one).

    A failed write (no space, read-only, I/O error) raises
    :class:`~lcam.harness.writes.WriteFailedError` naming ``path``; the temporary file
    is removed, and ``path`` and the previous checkpoint are as they were (a failure
    between the two renames leaves the old latest file as the previous one, which
    :func:`load_resume_point` falls back to).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            torch.save({"format": CHECKPOINT_FORMAT, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous and path.exists():
            os.replace(path, previous_checkpoint_path(path))
        os.replace(temporary, path)
    except Exception as error:
        cause = os_error_in(error)  # torch.save may wrap the OSError in a RuntimeError
        if cause is None:
            raise
        raise WriteFailedError(path, cause) from error
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)


def load_checkpoint(path: Path, *, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: the file is missing, empty, truncated, corrupt, not an lcam
            checkpoint or of another checkpoint format; the message says which.
    """
    path = Path(path)
    _check_readable(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch reports a damaged file with many exception types
        first = str(error).strip().split(". ")[0].splitlines()[0] if str(error).strip() else ""
        detail = f"torch.load: {type(error).__name__}" + (f": {first}" if first else "")
        raise CheckpointError(path, f"is corrupt ({detail})") from error
    if not isinstance(state, dict) or "format" not in state:
        held = "a dict without a 'format' key" if isinstance(state, dict) else (
            f"a {type(state).__name__}")
        raise CheckpointError(path, f"is not an lcam checkpoint (it holds {held})")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            path, f"has checkpoint format {state['format']!r}, expected {CHECKPOINT_FORMAT} "
            "(written by another lcam version)")
    return state


def load_resume_point(
    path: Path,
    *,
    map_location: torch.device | str = "cpu",
    check: Callable[[Path, dict[str, Any]], None] | None = None,
) -> ResumePoint:
    """The latest usable checkpoint: ``path``, else :func:`previous_checkpoint_path`.

    ``check(path, state)`` may reject a checkpoint that loads (for example one of
    another configuration) by raising :class:`CheckpointError`. Nothing is written.

    Raises:
        NoUsableCheckpointError: neither file can be used; ``problems`` holds both reasons.
    """
    problems: list[CheckpointError] = []
    for candidate in (Path(path), previous_checkpoint_path(path)):
        try:
            state = load_checkpoint(candidate, map_location=map_location)
            if check is not None:
                check(candidate, state)
        except CheckpointError as problem:
            problems.append(problem)
            continue
        return ResumePoint(state, candidate, problems[0] if problems else None)
    raise NoUsableCheckpointError(problems)


def _check_readable(path: Path) -> None:
    """Name the usual damage before torch does: missing, empty, cut short, not a torch file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(len(_ZIP_MAGIC))
    except FileNotFoundError:
        raise CheckpointError(path, "is missing") from None
    except OSError as error:
        raise CheckpointError(path, f"cannot be read ({error.strerror or error})") from error
    if size == 0:
        raise CheckpointError(path, "is empty (0 bytes)")
    if head != _ZIP_MAGIC:
        raise CheckpointError(
            path, "is not an lcam checkpoint (not a file written by torch.save)")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            path, f"is truncated ({size} bytes, without the index that ends every complete "
            "checkpoint)")


def capture_rng_state() -> dict[str, Any]:
    """The torch (CPU and every CUDA device), numpy and Python RNG states."""
    kind, keys, position, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    python_version, python_internal, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": python_version,
            "internal": list(python_internal),
            "gauss": python_gauss,
        },
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    numpy_state = state["numpy"]
    np.random.set_state((
        numpy_state["kind"],
        numpy_state["keys"].numpy().astype(np.uint32),
        numpy_state["position"],
        numpy_state["has_gauss"],
        numpy_state["cached_gaussian"],
    ))
    python_state = state["python"]
    random.setstate(
        (python_state["version"], tuple(python_state["internal"]), python_state["gauss"])
    )


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
