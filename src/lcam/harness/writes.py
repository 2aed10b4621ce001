"""Failed writes as errors that name the file and the cause, never half-written files.

Every file a run writes (``config.json``, ``metrics.jsonl``, ``checkpoint.pt``,
``result.json``, the lock file, a sweep's ``train.log``) is written inside
:func:`writing`, which turns an :class:`OSError` (no space left, read-only file
system, I/O error, a vanished directory) into :class:`WriteFailedError`::

    cannot write runs/digits/m0.9/seed0/checkpoint.pt: No space left on device (ENOSPC)

The command line reports it as one line and exits with
:data:`lcam.harness.exitstatus.WRITE_FAILED`. Whole files are written under a
temporary name and renamed (:func:`write_text_atomic`, the checkpoints), and a failed
``metrics.jsonl`` append is cut back, so a failed write leaves what was there before.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["WriteFailedError", "describe_os_error", "os_error_in", "write_text_atomic",
           "writing"]


def describe_os_error(error: OSError) -> str:
    """``No space left on device (ENOSPC)``: the system's text and the errno name."""
    text = error.strerror or str(error) or type(error).__name__
    name = errno.errorcode.get(error.errno) if error.errno is not None else None
    return f"{text} ({name})" if name else text


class WriteFailedError(RuntimeError):
    """Writing ``path`` failed with ``cause`` (an :class:`OSError`)."""

    def __init__(self, path: Path | str, cause: OSError) -> None:
        super().__init__(f"cannot write {path}: {describe_os_error(cause)}")
        self.path = Path(path)
        self.cause = cause

    @property
    def disk_full(self) -> bool:
        """Whether the file system ran out of space (or quota)."""
        return self.cause.errno in (errno.ENOSPC, errno.EDQUOT)


def os_error_in(error: BaseException) -> OSError | None:
    """``error`` or the first :class:`OSError` in its cause / context chain.

    ``torch.save`` sometimes reports a failed write of the file as a ``RuntimeError``
    raised while handling the ``OSError``.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Raise :class:`WriteFailedError` naming ``path`` for an ``OSError`` inside."""
    try:
        yield
    except WriteFailedError:
        raise
    except OSError as error:
        raise WriteFailedError(path, error) from error


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    On failure the temporary file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with writing(path):
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
