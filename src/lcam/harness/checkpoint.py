"""Atomic checkpoints: everything a run needs to continue as if never stopped.

A checkpoint is written after every epoch (``checkpoint.pt`` in the run directory): the
model, the optimizer (LCAM's loss statistics included, they are part of its
``state_dict``), the lr scheduler, the torch / CUDA / numpy / Python RNG states, the
number of finished epochs and iterations, and the data order. The data order needs no
saved generator: :class:`~lcam.harness.data.loader.BatchLoader` draws epoch ``e``'s
order and augmentation from ``(seed, e)`` alone, so the checkpoint records that pair.

Atomicity: the file is written under a temporary name in the same directory, flushed
to disk, then renamed over the old one with ``os.replace``; a crash at any moment
leaves either the previous checkpoint or the new one, never a torn file.

Checkpoints hold only tensors, numbers, strings, lists and dicts, so they load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "capture_rng_state",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint layout; bumped when a key changes meaning."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing a key, of another format, or of another run."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            torch.save({"format": CHECKPOINT_FORMAT, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    _fsync_directory(path.parent)


def load_checkpoint(path: Path, *, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    state = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path}: checkpoint format {found!r}, expected {CHECKPOINT_FORMAT} "
            "(written by another lcam version; rerun with --overwrite)"
        )
    return state


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
