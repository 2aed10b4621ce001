"""Stopping on a signal: finish the step, checkpoint mid-epoch, exit with status 75.

SIGTERM (``kill``, ``timeout``, systemd, a scheduler's preemption), SIGINT (Ctrl-C)
and SIGUSR1 (Slurm's ``--signal=USR1@SECONDS`` before a time limit) ask a run to stop:

- ``lcam train`` finishes the optimizer step it is in, writes a checkpoint of that
  position in the epoch (:mod:`lcam.harness.loop`: the step within the epoch's seeded
  order, the RNG states, the optimizer with LCAM's loss window, the epoch's metric
  sums so far) and exits with :data:`STOPPED_EXIT_STATUS`; ``--resume`` continues
  from that step and ends bit for bit where an uninterrupted run ends. Data-parallel
  ranks agree on the step: every step they all-reduce their stop flags, so a signal
  that reaches one rank stops all of them after the same step.
- ``lcam sweep`` forwards the signal to its workers (each in a process group of its
  own, so a terminal's Ctrl-C reaches them once), starts no further run, waits until
  every running run has written its checkpoint and exited, and exits with
  :data:`STOPPED_EXIT_STATUS`; no worker outlives it.
- ``lcam train --nproc N`` forwards the signal to torchrun (SIGUSR1 as SIGTERM), which
  forwards it to the ranks.

A second signal :data:`FORCE_AFTER_SECONDS` or more after the first stops at once:
``lcam train`` dies from it (exit status 128 + the signal number, e.g. 143 for
SIGTERM), ``lcam sweep`` kills its workers (SIGKILL) and exits likewise. Nothing is
lost that a SIGKILL would not lose: checkpoints are written atomically, the run
resumes from the last one. A repeat within :data:`FORCE_AFTER_SECONDS` is taken as
the same request (Ctrl-C reaches torchrun and its ranks, which torchrun then signals
again). A signal after a run's last step lets the run finish (exit status 0).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from lcam.harness import exitstatus

__all__ = [
    "FORCE_AFTER_SECONDS",
    "STOPPED_EXIT_STATUS",
    "STOP_SIGNALS",
    "clear",
    "descendants",
    "forced_exit_status",
    "handle_stop_signals",
    "request_stop",
    "signal_name",
    "stop_requested",
]

STOPPED_EXIT_STATUS = exitstatus.STOPPED
"""Exit status of a run or sweep stopped by a signal after writing its checkpoints
(``EX_TEMPFAIL`` of sysexits.h: run the same command with ``--resume`` to continue)."""

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
"""The signals that stop a run cleanly."""

FORCE_AFTER_SECONDS = 2.0
"""A second signal at least this long after the first stops at once."""


class _State:
    signum: int | None = None
    at: float = 0.0
    depth: int = 0
    on_first: Callable[[int], None] | None = None
    on_force: Callable[[int], None] | None = None


_state = _State()


def stop_requested() -> signal.Signals | None:
    """The signal that asked this process to stop, or ``None``."""
    return None if _state.signum is None else signal.Signals(_state.signum)


def request_stop(signum: int = signal.SIGTERM) -> None:
    """Ask this process to stop as if ``signum`` had arrived (first request only)."""
    if _state.signum is None:
        _state.signum, _state.at = int(signum), time.monotonic()


def clear() -> None:
    """Forget a stop request (a new run in the same process starts afresh)."""
    _state.signum = None


def signal_name(signum: int) -> str:
    """``"SIGTERM"`` for 15."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def forced_exit_status(signum: int) -> int:
    """The exit status of a process killed by ``signum``, as a shell reports it."""
    return 128 + int(signum)


def _die(signum: int) -> None:
    """Die from ``signum`` (its default action), as if no handler had been installed."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(1)
    os._exit(forced_exit_status(signum))  # a signal whose default action is to go on


def _handle(signum: int, frame: FrameType | None) -> None:
    now = time.monotonic()
    if _state.signum is None:
        _state.signum, _state.at = signum, now
        if _state.on_first is not None:
            _state.on_first(signum)
        return
    if now - _state.at < FORCE_AFTER_SECONDS:
        return  # the same request, delivered twice
    (_state.on_force or _die)(signum)


@contextlib.contextmanager
def handle_stop_signals(
    on_first: Callable[[int], None] | None = None,
    on_force: Callable[[int], None] | None = None,
) -> Iterator[None]:
    """Record :data:`STOP_SIGNALS` as a stop request instead of dying from them.

    ``on_first(signum)`` runs (in the signal handler) on the first signal, after it is
    recorded; ``on_force(signum)`` on a second one :data:`FORCE_AFTER_SECONDS` later
    (default: die from it). Nested uses keep the outer handlers and callbacks; the
    outermost one restores the previous handlers on exit and forgets the request. Off
    the main thread (where Python cannot install handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _state.depth:
        _state.depth += 1
        try:
            yield
        finally:
            _state.depth -= 1
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    _state.on_first, _state.on_force = on_first, on_force
    _state.depth = 1
    for signum in STOP_SIGNALS:
        signal.signal(signum, _handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        _state.depth = 0
        _state.on_first = _state.on_force = None
        clear()


def handle_stop_signals_for_good(on_first: Callable[[int], None] | None = None) -> None:
    """Install the handlers of :func:`handle_stop_signals` for the process's lifetime
    (a sweep worker: a request that arrives between two runs stops the next one)."""
    handle_stop_signals(on_first).__enter__()


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (children first), from Linux ``/proc``;
    empty where there is no ``/proc``."""
    parents: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] in ("Z", "X"):
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found.extend(children)
        frontier.extend(children)
    return found
