"""Data-parallel training with PyTorch's own engines: ``torchrun`` and DDP.

One run on ``N`` processes (one per GPU, or ``N`` CPU processes with gloo)::

    torchrun --nproc_per_node=N -m lcam train PRESET --group G --seed K --out DIR
    lcam train PRESET --group G --seed K --out DIR --nproc N      # the same, launched for you

``torchrun`` (``python -m torch.distributed.run``) starts the processes and sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
``lcam train`` sees them (:func:`launched_by_torchrun`) and trains with a
:class:`TorchDistributed` context, which implements the training loop's
:class:`~lcam.harness.loop.DistributedContext`:

- device and backend: ``cuda:LOCAL_RANK`` with NCCL when the run's device is ``cuda``
  (or ``auto`` on a CUDA machine), the CPU with gloo otherwise;
- the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which
  broadcasts rank 0's initial weights and averages gradients over the ranks;
- sums of metrics are all-reduced, buffers (BatchNorm running statistics) are copied
  from rank 0 before every evaluation and checkpoint, and a barrier closes each epoch.

What the training loop does with it (see :mod:`lcam.harness.loop`): the configured
``batch_size`` is the *global* batch, each rank trains on ``batch_size / world_size``
of it (:class:`~lcam.harness.data.BatchLoader`), LCAM decides on the loss averaged over
the ranks (``lcam.LCAM(all_reduce_loss=True)``, the default), metrics come from
all-reduced sums, and only rank 0 writes the run directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from lcam.harness.config import ConfigError, RunConfig

__all__ = [
    "NPROC_FLAG",
    "TorchDistributed",
    "launch_torchrun",
    "launched_by_torchrun",
    "rank_device",
    "torchrun_command",
    "without_nproc",
]

NPROC_FLAG = "--nproc"
"""The ``lcam train`` flag that launches the run under ``torchrun`` on this many processes."""

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched_by_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process was started by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` set)."""
    environ = os.environ if environ is None else environ
    return "RANK" in environ and "WORLD_SIZE" in environ


def rank_device(setting: str, local_rank: int) -> torch.device:
    """The device of the rank with ``local_rank`` for the run's ``device`` setting.

    ``cpu`` stays the CPU; ``cuda`` (and ``auto`` where CUDA is available) becomes
    ``cuda:LOCAL_RANK``, one GPU per process. An explicit GPU index would put every
    rank on that GPU, so it is refused, as is any device type that neither gloo nor
    NCCL serves.
    """
    name = ("cuda" if torch.cuda.is_available() else "cpu") if setting == "auto" else setting
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"invalid device {setting!r}: {error}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise ConfigError(f"distributed runs use the CPU (gloo) or CUDA (NCCL), not {setting!r}")
    if device.index is not None:
        raise ConfigError(
            f"--device {setting} under torchrun would put every rank on one GPU; pass "
            "--device cuda and each rank uses cuda:LOCAL_RANK"
        )
    if not torch.cuda.is_available():
        raise ConfigError(f"device {setting!r} requested but CUDA is not available here")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError(
            f"LOCAL_RANK={local_rank} but only {count} GPU(s) are visible: start at most "
            f"{count} processes per node (--nproc_per_node)"
        )
    return torch.device("cuda", local_rank)


@dataclass
class TorchDistributed:
    """The process group of a ``torchrun`` worker, as the loop's ``DistributedContext``.

    Build it with :meth:`from_environment` (which initialises the default process
    group) and use it as a context manager, so the group is destroyed at the end::

        with TorchDistributed.from_environment(config.settings.device) as distributed:
            run_training(distributed.place(config), out, distributed=distributed)

    Attributes:
        rank / world_size: this process's rank and the number of processes.
        local_rank: the rank on this node (selects the GPU).
        device: where this rank trains and communicates.
        backend: ``"nccl"`` (CUDA) or ``"gloo"`` (CPU).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str
    # The group of :meth:`any_rank`'s CPU flags: gloo beside NCCL (None: the default group).
    flag_group: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_environment(
        cls, device_setting: str, environ: Mapping[str, str] | None = None
    ) -> TorchDistributed:
        """Join the process group described by torchrun's environment variables."""
        environ = os.environ if environ is None else environ
        missing = [name for name in _TORCHRUN_VARIABLES if name not in environ]
        if missing:
            raise ConfigError(
                f"{', '.join(missing)} not set: start distributed runs with torchrun "
                "(or `lcam train ... --nproc N`)"
            )
        rank, world_size = int(environ["RANK"]), int(environ["WORLD_SIZE"])
        local_rank = int(environ["LOCAL_RANK"])
        device = rank_device(device_setting, local_rank)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group(backend, init_method="env://", device_id=device)
        else:
            dist.init_process_group(backend, init_method="env://")
        flag_group = dist.new_group(backend="gloo") if backend != "gloo" else None
        return cls(rank, world_size, local_rank, device, backend, flag_group)

    def place(self, config: RunConfig) -> RunConfig:
        """``config`` with this rank's device (``device`` is a runtime setting)."""
        return replace(config, settings=replace(config.settings, device=str(self.device)))

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """``model`` (already on :attr:`device`) in ``DistributedDataParallel``."""
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        """The sum of ``tensor`` over all ranks, on ``tensor``'s device."""
        total = tensor.detach().to(self.device, copy=True)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.to(tensor.device)

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any rank: one all-reduce of a CPU integer (over a
        gloo group beside NCCL), so the training device is not synchronised."""
        total = torch.tensor([int(flag)], dtype=torch.int64)
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=self.flag_group)
        return bool(total.item() > 0)

    def synchronize_buffers(self, module: nn.Module) -> None:
        """Copy rank 0's buffers (e.g. BatchNorm running statistics) into every rank.

        With plain BatchNorm each rank updates its running statistics from its own
        shard; DDP re-broadcasts rank 0's before every training forward pass, but after
        an epoch's last step they differ. Evaluation and checkpoints use rank 0's.
        """
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group (idempotent)."""
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()

    def __enter__(self) -> TorchDistributed:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None and dist.is_available() and dist.is_initialized():
            # Every rank reaches the teardown before any destroys the group: a rank that
            # closes its gloo connections while a peer still has one in flight makes that
            # peer abort ("terminate called without an active exception").
            self.barrier()
        self.close()


def without_nproc(arguments: Sequence[str]) -> list[str]:
    """``arguments`` without ``--nproc N`` / ``--nproc=N`` (or argparse's ``--npr N``)."""
    out: list[str] = []
    skip_value = False
    for argument in arguments:
        if skip_value:
            skip_value = False
            continue
        name, equals, _ = argument.partition("=")
        if len(name) >= len("--np") and NPROC_FLAG.startswith(name):
            skip_value = not equals
            continue
        out.append(argument)
    return out


def torchrun_command(nproc: int, train_arguments: Sequence[str]) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node N -m lcam train ...``.

    ``--standalone`` runs the rendezvous on this node on a free port, so several
    launches on one machine (a sweep, a shared node) never collide.
    """
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", "lcam", "train", *train_arguments]


def launch_torchrun(
    nproc: int, train_arguments: Sequence[str], checkpoint: Path | None = None
) -> int:
    """Run :func:`torchrun_command` and return the run's exit status.

    torchrun runs in a session of its own, so a terminal's Ctrl-C reaches it once,
    through this process: the first stop signal (:mod:`lcam.harness.stopping`) is
    forwarded to torchrun, SIGUSR1 as SIGTERM (every torch version's torchrun passes
    SIGTERM and SIGINT on to the ranks, SIGUSR1 would end it); the ranks stop after the
    same step and rank 0 writes a mid-epoch ``checkpoint``. When torchrun fails and
    ``checkpoint`` is such a stop checkpoint written since the launch (the signal may
    also have reached a rank alone, whose early exit torchrun takes for a failure), the
    exit status is :data:`~lcam.harness.stopping.STOPPED_EXIT_STATUS`. A second
    signal (:data:`~lcam.harness.stopping.FORCE_AFTER_SECONDS` later) kills torchrun
    and the ranks (SIGKILL) and returns ``128 + signal``.
    """
    from lcam.harness.stopping import (
        STOPPED_EXIT_STATUS,
        descendants,
        forced_exit_status,
        handle_stop_signals,
        signal_name,
    )

    command = torchrun_command(nproc, train_arguments)
    sys.stdout.flush()
    sys.stderr.flush()
    launched_at = time.time()
    process = subprocess.Popen(command, start_new_session=True)
    signalled: list[tuple[int, float]] = []
    forced: list[int] = []

    def forward(signum: int) -> None:
        signalled.append((signum, time.time()))
        if process.poll() is None:
            process.send_signal(signal.SIGTERM if signum == signal.SIGUSR1 else signum)

    def force(signum: int) -> None:
        forced.append(signum)
        for pid in [*reversed(descendants(process.pid)), process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    with handle_stop_signals(on_first=forward, on_force=force):
        code = process.wait()
    if forced:
        return forced_exit_status(forced[0])
    if code == 0:
        return 0
    if checkpoint is not None and _is_stop_checkpoint(checkpoint, since=launched_at):
        by = signal_name(signalled[0][0]) if signalled else "a signal to one of its ranks"
        print(f"lcam train: stopped by {by}; {checkpoint} written, continue with --resume",
              file=sys.stderr, flush=True)
        return STOPPED_EXIT_STATUS
    return code if code >= 0 else forced_exit_status(-code)


def _is_stop_checkpoint(path: Path, *, since: float) -> bool:
    """Whether ``path`` was written at ``since`` or later by a run a signal stopped
    (it holds the ``mid_epoch`` position); memory-mapped, the tensors are not read."""
    try:
        if path.stat().st_mtime < since:
            return False
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False
    return isinstance(state, dict) and state.get("mid_epoch") is not None
