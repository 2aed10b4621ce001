"""One writer per run: the process training a run holds an OS lock on its directory.

:class:`RunLock` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``run.lock`` inside the run
directory before the directory is inspected, and keeps it until the run returns. The
lock belongs to the open file, so the operating system releases it when its holder
ends in any way (exit, exception, SIGKILL, a crash, a reboot): there is no stale lock
to clean up by hand. The file holds the holder's host, pid and start time (JSON) for
the message a second writer gets::

    runs/digits/m0.9/seed0 is held by another process: pid 4242 on host node7, since
    2026-12-07 14:20:05 UTC (lock file runs/digits/m0.9/seed0/run.lock); wait for it
    to end or stop it, then run again

A holder that ends normally removes the file (after a SIGKILL it stays, unlocked, and
the next run takes it over), and the directories the lock created if they are still
empty (a run refused for its data leaves nothing behind). A process that opened the
file just before its holder removed it notices (the path no longer names the file it
locked) and starts over, so two processes never hold a lock on the same path at once.

What it protects: processes on one machine, and processes on several machines that
share a file system whose locks work across machines (see ``docs/SCALE_OUT.md``: NFS
with working ``lockd`` / NFSv4, Lustre with ``flock``). On a file system without locks
(``ENOLCK``, ``EOPNOTSUPP``) the run goes on unlocked and says so.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lcam.harness.writes import describe_os_error, writing

__all__ = ["LOCK_NAME", "RunHeldError", "RunLock", "lock_holder"]

LOCK_NAME = "run.lock"
"""The lock file inside a run directory."""

_HELD = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


class RunHeldError(RuntimeError):
    """The run directory is held by another process; ``holder`` is what its lock file says."""

    def __init__(self, run_dir: Path, holder: dict[str, Any] | None) -> None:
        self.run_dir = Path(run_dir)
        self.holder = holder
        lock = self.run_dir / LOCK_NAME
        super().__init__(
            f"{run_dir} is held by another process: {describe_holder(holder)} (lock file "
            f"{lock}); wait for it to end or stop it, then run again")


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 4242 on host node7, since 2026-12-07 14:20:05 UTC``."""
    if not holder:
        return "its pid, host and start time are not written yet"
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, since "
            f"{holder.get('since', '?')}")


def lock_holder(run_dir: Path) -> dict[str, Any] | None:
    """What the lock file of ``run_dir`` says about its holder (``None``: nothing readable)."""
    try:
        text = (Path(run_dir) / LOCK_NAME).read_text(encoding="utf-8")
        holder = json.loads(text)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


class RunLock:
    """The lock of one run directory; :meth:`acquire` raises :class:`RunHeldError` if held.

    ``unlocked`` is set (a reason) when the file system has no locks and the run went on
    without one.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.unlocked: str | None = None
        self._descriptor: int | None = None
        self._created: list[Path] = []  # directories acquire() made, deepest first

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def acquire(self) -> None:
        """Take the lock (creating the run directory), or raise :class:`RunHeldError`.

        Raises:
            RunHeldError: another process holds it.
            WriteFailedError: the directory or the lock file cannot be written.
        """
        if self._descriptor is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self._created = []
        for directory in (self.run_dir, *self.run_dir.parents):
            if directory.exists():
                break
            self._created.append(directory)
        with writing(self.run_dir):
            self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            with writing(self.path):
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(descriptor)
                if error.errno in _HELD:
                    raise RunHeldError(self.run_dir, self._read_holder()) from None
                if error.errno in _NO_LOCKS:
                    self.unlocked = (f"cannot lock {self.path} ({describe_os_error(error)}): "
                                     "this file system has no locks, a second process "
                                     "writing this run would not be noticed")
                    return
                raise
            if self._names(descriptor):
                break
            os.close(descriptor)  # its holder removed it meanwhile: lock the new file
        self._descriptor = descriptor
        try:
            self._write_holder(descriptor)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Remove the lock file and release the lock (nothing if not held); remove the
        directories :meth:`acquire` created while they are empty."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        try:
            if self._names(descriptor):
                self.path.unlink(missing_ok=True)
        except OSError:
            pass  # an unlocked file left behind is taken over by the next run
        finally:
            os.close(descriptor)
        for directory in self._created:
            try:
                directory.rmdir()
            except OSError:
                break  # not empty (the run wrote files) or already gone
        self._created = []

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _names(self, descriptor: int) -> bool:
        """Whether the lock file's path still names the file open as ``descriptor``."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(descriptor)
        return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    def _write_holder(self, descriptor: int) -> None:
        holder = {"host": socket.gethostname(), "pid": os.getpid(),
                  "since": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}
        data = (json.dumps(holder) + "\n").encode()
        with writing(self.path):
            os.ftruncate(descriptor, 0)
            if os.pwrite(descriptor, data, 0) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def _read_holder(self) -> dict[str, Any] | None:
        # The holder writes its details right after locking: give it a moment.
        for _ in range(10):
            holder = lock_holder(self.run_dir)
            if holder is not None:
                return holder
            time.sleep(0.05)
        return None
