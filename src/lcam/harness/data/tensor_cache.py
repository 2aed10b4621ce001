"""Tensors saved beside a data set so that an expensive decode or generation runs once.

A cache file is a ``torch.save`` dictionary of tensors (plus plain values), written
atomically (a temporary file in the same folder, then ``os.replace``), so a reader
sees either the old file, the new one or none. An unreadable cache is ignored with
a warning and rebuilt; a folder that cannot be written only costs the speed-up.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

__all__ = ["load_tensor_cache", "save_tensor_cache"]


def load_tensor_cache(path: Path, what: str) -> dict[str, Any] | None:
    """The dictionary saved at ``path``; ``None`` (with a warning) when it cannot be read."""
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unreadable or truncated: the caller rebuilds it
        warnings.warn(f"{what}: ignoring unreadable cache {path} ({error})", stacklevel=3)
        return None
    if not isinstance(content, dict):
        warnings.warn(f"{what}: ignoring cache {path} (not a dictionary)", stacklevel=3)
        return None
    return content


def save_tensor_cache(path: Path, content: dict[str, Any], what: str, rebuild: str) -> None:
    """Write ``content`` to ``path`` atomically; warn (``rebuild`` says the cost) on failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(handle)
        try:
            torch.save(content, scratch)
            os.replace(scratch, path)
        finally:
            if os.path.exists(scratch):
                os.remove(scratch)
    except OSError as error:
        warnings.warn(
            f"{what}: cannot write the cache {path} ({error}); the next load {rebuild}",
            stacklevel=3,
        )
