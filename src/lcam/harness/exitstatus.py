"""Exit statuses of the ``lcam`` command line (and of ``lcam train`` inside a sweep).

=====  =================================================================================
  0    done (``lcam sweep``: every run of the plan is finished)
  1    ``lcam sweep``: at least one run failed; any command: an unexpected error
  2    refused before anything ran: bad arguments, unknown names or options, a run
       directory holding another configuration or an unusable checkpoint
  3    the run directory is held by another process (``lcam train``), or ``lcam sweep``
       skipped runs held elsewhere and no run failed (see :mod:`lcam.harness.runlock`)
  4    a file could not be written (no space left, read-only file system, I/O error);
       what was there before is intact (see :mod:`lcam.harness.writes`)
 75    stopped by SIGTERM, SIGINT or SIGUSR1 after writing a checkpoint of where the run
       was (``lcam sweep``: of every running run); rerun with ``--resume`` (the same
       ``lcam sweep``) to continue (see :mod:`lcam.harness.stopping`). A second signal
       2 s later stops at once: 128 + the signal (143 for SIGTERM)
=====  =================================================================================

A sweep worker's run that ends with 3 is counted as "held elsewhere", not as failed;
one that ends with 4 stops the sweep from starting further runs.
"""

from __future__ import annotations

__all__ = ["FAILED", "OK", "REFUSED", "RUN_HELD", "STOPPED", "WRITE_FAILED"]

OK = 0
FAILED = 1
REFUSED = 2
RUN_HELD = 3
WRITE_FAILED = 4
STOPPED = 75  # sysexits.h EX_TEMPFAIL: try again (with --resume)
