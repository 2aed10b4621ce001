"""Train and evaluate one run: :func:`run_training` (used by ``lcam train``, sweeps, demo).

Per epoch: train over the loader's batches, evaluate on the test split, append one
line to ``metrics.jsonl``, then write the checkpoint (in that order; on resume the
metrics are cut back to the checkpoint's epoch count, so a crash between the two
cannot duplicate a line). ``result.json`` marks the end; the previous checkpoint
(``checkpoint.prev.pt``) is then deleted, a finished run needs only the latest.

Stop signals (:mod:`lcam.harness.stopping`: SIGTERM, SIGINT, SIGUSR1): before every
step the loop asks whether one arrived (all ranks together, :meth:`_Trainer.stop_agreed`);
if so it writes a checkpoint of the position inside the epoch (``mid_epoch``: the step,
the epoch's per-rank loss and accuracy sums so far, the last lr used) and
:func:`run_training` returns with :attr:`RunOutcome.stopped` set. Resuming from it
skips the epoch's first steps in the loader (the order is a function of seed and
epoch) and continues with the saved sums, so the run ends bit for bit as if never
stopped.

Resume reads ``checkpoint.pt`` or, when that is missing or unreadable, the previous
checkpoint (:func:`~lcam.harness.checkpoint.load_resume_point`), and says so in a
warning naming both files and the epoch it continues after. Everything is checked
before the first write: a run that cannot be resumed raises
:class:`~lcam.harness.rundir.RunDirectoryError` (both files and what is wrong with
them, and ``--overwrite`` as the way out) and leaves the run directory as it was.

The hot loop has no host synchronisation: losses and correct counts are summed as
device tensors and read once per epoch; LCAM receives the loss tensor
(``opt.step(loss=loss)``) and decides on the device.

Distributed training plugs in through :class:`DistributedContext` (rank, world size,
model wrapping, sum reduction, buffer broadcast, barrier); the default
:data:`SINGLE_PROCESS` does nothing, :class:`lcam.harness.distributed.TorchDistributed`
is torchrun + DDP. With ``W`` ranks:

- ``batch_size`` is the global batch; each rank trains on its ``batch_size / W`` part
  (:class:`~lcam.harness.data.BatchLoader`). DDP averages the ranks' gradients; where
  the last partial batch splits unequally, each rank's loss is weighted
  (:func:`shard_loss_weights`) so the average is still the gradient of the global-batch
  mean loss, and the loss LCAM averages over the ranks is the global-batch mean.
- Train loss, train accuracy and test error come from all-reduced sums, so they equal
  the single-process values; LCAM's ``fraction_above`` is checked to agree on all ranks.
- Before evaluating, every rank takes rank 0's buffers (BatchNorm running statistics),
  so evaluation and checkpoints see the same model everywhere.
- Only rank 0 inspects, clears or writes the run directory; the others learn its
  decision (fresh / resume / finished / refused) through a collective. After rank 0
  has written an epoch's checkpoint all ranks meet at a barrier; on resume every rank
  loads that checkpoint.

Debugging aid: with the environment variable :data:`RANK_STATE_ENV`
(``LCAM_RANK_STATE_DIR``) set to a directory, every rank saves its model and optimizer
``state_dict`` there after every epoch as ``epoch<E>-rank<R>.pt``, so the ranks can be
compared (``tests/test_distributed.py`` does). It never writes into the run directory.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcam import LCAM
from lcam.harness.checkpoint import (
    CheckpointError,
    NoUsableCheckpointError,
    ResumePoint,
    capture_rng_state,
    load_resume_point,
    restore_rng_state,
    save_checkpoint,
)
from lcam.harness.components import build_model_for, load_bundle, resolve_device, validate_names
from lcam.harness.config import ConfigError, GroupSpec, RunConfig, RunSettings
from lcam.harness.data import BatchLoader, DataBundle
from lcam.harness.metrics import (
    EpochMetrics,
    MetricsLog,
    RunResult,
    TensorBoardLog,
    write_json_atomic,
)
from lcam.harness.rundir import (
    RunDirectory,
    RunDirectoryError,
    Start,
    prepare_run_directory,
    run_directory,
    write_config,
)
from lcam.harness.runlock import RunLock
from lcam.harness.schedules import LrSchedule, build_schedule
from lcam.harness.stopping import handle_stop_signals, signal_name, stop_requested
from lcam.harness.writes import writing

__all__ = [
    "RANK_STATE_ENV",
    "SINGLE_PROCESS",
    "DistributedContext",
    "RunOutcome",
    "SingleProcess",
    "StopPoint",
    "build_optimizer",
    "run_training",
    "seed_everything",
    "shard_loss_weights",
]

RANK_STATE_ENV = "LCAM_RANK_STATE_DIR"
"""Environment variable: a directory where every rank saves its state after every epoch."""


class DistributedContext(Protocol):
    """What the loop needs to know about the process group it runs in."""

    @property
    def rank(self) -> int: ...

    @property
    def world_size(self) -> int: ...

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The module to train (e.g. wrapped in ``DistributedDataParallel``)."""
        ...

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        """The sum of ``tensor`` over all ranks."""
        ...

    def synchronize_buffers(self, module: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics) into every rank's ``module``."""
        ...

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        ...


@dataclass(frozen=True)
class SingleProcess:
    """One process, no communication."""

    rank: int = 0
    world_size: int = 1

    def wrap_model(self, model: nn.Module) -> nn.Module:
        return model

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        return tensor

    def synchronize_buffers(self, module: nn.Module) -> None:
        pass

    def barrier(self) -> None:
        pass


SINGLE_PROCESS = SingleProcess()


@dataclass(frozen=True)
class StopPoint:
    """Where a run stopped on a signal: after ``step`` of the ``steps`` steps of epoch
    ``epoch`` (0-based), with a checkpoint of that position in ``checkpoint``."""

    signal: str
    epoch: int
    step: int
    steps: int
    checkpoint: Path

    def describe(self) -> str:
        return (f"stopped by {self.signal} after step {self.step}/{self.steps} of epoch "
                f"{self.epoch + 1}; checkpoint {self.checkpoint} written, continue with "
                "--resume")


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`run_training` did: ``start`` says whether it ran, resumed or skipped;
    ``stopped`` says where a signal stopped it (then ``result`` is ``None``)."""

    run_dir: Path
    start: Start
    epochs_run: int
    result: RunResult | None
    stopped: StopPoint | None = None


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(
    group: GroupSpec, parameters: Any, settings: RunSettings
) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` for a fixed-momentum group, ``lcam.LCAM`` for an LCAM group.

    Both as the demo scripts run SGD: no Nesterov, no dampening, L2 weight decay.
    """
    if group.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=settings.lr, momentum=group.momentum or 0.0,
                               weight_decay=settings.weight_decay)
    assert group.momentum_above is not None and group.momentum_below is not None
    return LCAM(parameters, lr=settings.lr, momentum_above=group.momentum_above,
                momentum_below=group.momentum_below, weight_decay=settings.weight_decay,
                decision=settings.decision, loss_average=settings.loss_average)


@dataclass
class _Totals:
    """Device-side sums over an epoch, read once at its end."""

    loss: Tensor
    correct: Tensor
    samples: int = 0
    steps: int = 0

    @classmethod
    def zeros(cls, device: torch.device) -> _Totals:
        return cls(torch.zeros((), dtype=torch.float64, device=device),
                   torch.zeros((), dtype=torch.int64, device=device))


class _Trainer:
    """The state of one run between epochs: model, optimizer, schedule, loaders."""

    def __init__(self, config: RunConfig, distributed: DistributedContext) -> None:
        settings = config.settings
        self.config = config
        self.settings = settings
        self.distributed = distributed
        self.device = resolve_device(settings.device)
        seed_everything(config.seed)
        bundle: DataBundle = load_bundle(settings, seed=config.seed)
        model = build_model_for(settings, bundle).to(self.device)
        if settings.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if settings.batch_norm == "sync" and distributed.world_size > 1:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        self.train_model = distributed.wrap_model(model)
        self.optimizer = build_optimizer(config.group, model.parameters(), settings)
        self.lcam = self.optimizer if isinstance(self.optimizer, LCAM) else None
        common = dict(normalize=bundle.normalization, device=self.device, seed=config.seed,
                      rank=distributed.rank, world_size=distributed.world_size,
                      channels_last=settings.channels_last)
        # A last global batch smaller than the number of ranks would leave a rank with no
        # sample to train on: only then is it dropped.
        remainder = len(bundle.train) % settings.batch_size
        self.drop_last = 0 < remainder < distributed.world_size
        self.train_loader = BatchLoader(
            bundle.train, batch_size=settings.batch_size, shuffle=True,
            augment=bundle.augment if settings.augment else "none", drop_last=self.drop_last,
            **common,  # type: ignore[arg-type]
        )
        self.loss_weights = shard_loss_weights(self.train_loader)
        self.test_loader = BatchLoader(
            bundle.test, batch_size=settings.eval_batch_size, shuffle=False, augment="none",
            **common,  # type: ignore[arg-type]
        )
        self.schedule: LrSchedule = build_schedule(settings, self.optimizer,
                                                   steps_per_epoch=len(self.train_loader))
        # Training samples per epoch, all ranks together.
        self.train_size = len(bundle.train) - (remainder if self.drop_last else 0)
        self.epoch = 0
        self.iteration = 0
        self.seconds = 0.0
        # False for the first checkpoint after resuming from the previous one.
        self.keep_previous_checkpoint = True
        # The epoch in progress when a run stopped mid-epoch, from its checkpoint.
        self.partial: _PartialEpoch | None = None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.settings.amp == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_epoch(
        self, batches: Iterator[tuple[Tensor, Tensor]], partial: _PartialEpoch
    ) -> bool:
        """Train over ``batches`` from step ``partial.totals.steps``, adding to ``partial``.

        Before every step the ranks agree whether to stop (:meth:`stop_agreed`); returns
        ``True`` if they did, with ``partial`` holding the steps taken so far.
        """
        model, optimizer, schedule = self.train_model, self.optimizer, self.schedule
        group = optimizer.param_groups[0]
        totals = partial.totals
        weights = self.loss_weights
        model.train()
        for index, (inputs, targets) in enumerate(batches, start=totals.steps):
            if self.stop_agreed():
                return True
            with self.autocast():
                logits = model(inputs)
                loss = F.cross_entropy(logits, targets)
                if weights is not None and weights[index] != 1.0:
                    loss = loss * weights[index]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            partial.lr_used = float(group["lr"])
            if self.lcam is not None:
                self.lcam.step(loss=loss.detach())
            else:
                optimizer.step()
            schedule.after_iteration()
            totals.loss += loss.detach()
            totals.correct += (logits.detach().argmax(dim=1) == targets).sum()
            totals.samples += len(targets)
            totals.steps += 1
            self.iteration += 1
        return False

    def stop_agreed(self) -> bool:
        """Whether a stop signal reached this process or, distributed, any rank.

        Every rank asks at every step (one all-reduce of a flag, on the CPU where the
        context offers ``any_rank``), so all ranks stop after the same step.
        """
        local = stop_requested() is not None
        distributed = self.distributed
        if distributed.world_size == 1:
            return local
        any_rank = getattr(distributed, "any_rank", None)
        if any_rank is not None:
            return bool(any_rank(local))
        return bool(distributed.all_reduce_sum(torch.tensor(int(local))) > 0)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """Mean per-sample test loss and test error (percent) over all ranks.

        Each rank evaluates its share of the test split with the unwrapped model (no
        collective inside, so a rank left without samples simply skips the batch);
        the sums are all-reduced.
        """
        model = self.model
        model.eval()
        loss = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        count = torch.zeros((), dtype=torch.int64, device=self.device)
        for inputs, targets in self.test_loader.epoch(0):
            if len(targets) == 0:
                continue
            with self.autocast():
                logits = model(inputs)
            # At least float32 (bf16 autocast), float64 models keep float64.
            loss += F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)),
                                    targets, reduction="sum")
            correct += (logits.argmax(dim=1) == targets).sum()
            count += len(targets)
        reduce = self.distributed.all_reduce_sum
        total = int(reduce(count))
        wrong = total - int(reduce(correct))
        return float(reduce(loss)) / total, 100.0 * wrong / total

    def finish_epoch_statistics(self) -> tuple[float | None, float | None]:
        """LCAM's fraction of steps above the average and the average; starts a new window."""
        if self.lcam is None:
            return None, None
        statistics = self.lcam.statistics()
        if self.distributed.world_size > 1 and not _same_on_every_rank(
            self.distributed, [statistics.steps_above, statistics.steps]
        ):
            raise RuntimeError(
                "LCAM took different decisions on different ranks (steps above the "
                "average differ); was the optimizer built with all_reduce_loss=False?"
            )
        self.lcam.end_epoch()
        return statistics.fraction_above, statistics.loss_average

    def state_dict(self, partial: _PartialEpoch | None = None) -> dict[str, Any]:
        """The checkpoint; with ``partial``, of a position inside epoch ``self.epoch``
        (then a collective: every rank calls it)."""
        step = 0 if partial is None else partial.totals.steps
        mid_epoch = None if partial is None else partial.state_dict(self.distributed)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": capture_rng_state(),
            "epoch": self.epoch,
            "iteration": self.iteration,
            "seconds": self.seconds,
            "data_order": {"seed": self.config.seed, "next_epoch": self.epoch,
                           "next_step": step},
            "config": self.config.experiment_json(),
            "mid_epoch": mid_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``, a checkpoint :func:`_resume_point` has checked."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        restore_rng_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.iteration = int(state["iteration"])
        self.seconds = float(state["seconds"])
        mid_epoch = state.get("mid_epoch")
        self.partial = None if mid_epoch is None else _PartialEpoch.from_state_dict(
            mid_epoch, self.device, self.distributed)


@dataclass
class _PartialEpoch:
    """The epoch in progress: its sums so far, the last lr used and seconds spent.

    In a checkpoint the sums are kept per rank (vectors indexed by rank, gathered by
    :meth:`state_dict`), so that each rank resumes its own sums and the epoch's
    all-reduced metrics come out bit for bit as without the stop.
    """

    totals: _Totals
    lr_used: float
    train_seconds: float = 0.0
    seconds: float = 0.0

    @classmethod
    def start(cls, trainer: _Trainer) -> _PartialEpoch:
        return cls(_Totals.zeros(trainer.device), float(trainer.optimizer.param_groups[0]["lr"]))

    def state_dict(self, distributed: DistributedContext) -> dict[str, Any]:
        """The checkpoint's ``mid_epoch`` entry; a collective: every rank calls it."""
        totals = self.totals
        rank, world_size = distributed.rank, distributed.world_size

        def gather(value: Tensor) -> Tensor:  # exact: every other rank adds zeros
            vector = torch.zeros(world_size, dtype=value.dtype, device=value.device)
            vector[rank] = value
            return distributed.all_reduce_sum(vector).detach().cpu().clone()

        return {"step": totals.steps, "lr_used": self.lr_used,
                "train_loss_sum": gather(totals.loss), "train_correct": gather(totals.correct),
                "samples": gather(torch.tensor(totals.samples, dtype=torch.int64)),
                "train_seconds": self.train_seconds, "seconds": self.seconds}

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Any], device: torch.device, distributed: DistributedContext
    ) -> _PartialEpoch:
        """This rank's part of ``state``; resumed on another number of ranks, rank 0
        takes the sums of all and the others start from zero (the metrics then differ
        in the last bits, as the training itself does)."""
        rank, world_size = distributed.rank, distributed.world_size

        def mine(vector: Tensor) -> Tensor:
            vector = vector.reshape(-1)
            if len(vector) == world_size:
                return vector[rank].to(device)
            return (vector.sum() if rank == 0 else torch.zeros_like(vector[0])).to(device)

        totals = _Totals(mine(state["train_loss_sum"]), mine(state["train_correct"]),
                         int(mine(state["samples"])), int(state["step"]))
        return cls(totals, float(state["lr_used"]), float(state["train_seconds"]),
                   float(state["seconds"]))


_CHECKPOINT_KEYS = ("model", "optimizer", "schedule", "rng", "epoch", "iteration", "seconds",
                    "config")


def _resume_point(trainer: _Trainer, run_dir: RunDirectory, metrics: MetricsLog) -> ResumePoint:
    """The checkpoint to resume from, checked on every rank before anything is written.

    Each rank reads the checkpoint files itself (they are where rank 0 wrote them);
    one collective makes sure all ranks chose the same file, so that either all of
    them resume from it or all of them stop. Rank 0 also checks that ``metrics.jsonl``
    holds every epoch the chosen checkpoint covers (it is cut back to them later).
    """
    expected = _json_roundtrip(trainer.config.experiment_json())

    def check(path: Path, state: dict[str, Any]) -> None:
        missing = [key for key in _CHECKPOINT_KEYS if key not in state]
        if missing:
            raise CheckpointError(path, f"is not a checkpoint of an lcam run (it lacks "
                                        f"{', '.join(missing)})")
        if state["config"] != expected:
            raise CheckpointError(path, "belongs to another configuration than config.json")

    failure: RunDirectoryError | None = None
    code = 2
    try:
        point = load_resume_point(run_dir.checkpoint, map_location=trainer.device, check=check)
        if trainer.distributed.rank == 0:
            _check_metrics_cover(run_dir, metrics, point)
        code = 0 if point.skipped is None else 1
    except NoUsableCheckpointError as error:
        problems = " and ".join(str(problem) for problem in error.problems)
        failure = RunDirectoryError(
            f"cannot resume {run_dir.path}: {problems}; pass --overwrite to start the run "
            "over (this deletes its metrics and checkpoints)")
    except RunDirectoryError as error:
        failure = error
    distributed = trainer.distributed
    if distributed.world_size > 1 and not _same_on_every_rank(distributed, [code]):
        failure = failure or RunDirectoryError(
            f"cannot resume {run_dir.path}: rank {distributed.rank} chose "
            f"{'the latest' if code == 0 else 'the previous'} checkpoint, another rank did "
            "not (do all ranks see the same run directory?)")
    if failure is not None:
        raise failure
    return point


def _check_metrics_cover(run_dir: RunDirectory, metrics: MetricsLog, point: ResumePoint) -> None:
    """``metrics.jsonl`` must hold epochs ``0 .. E-1`` of a checkpoint taken after ``E``."""
    epochs = int(point.state["epoch"])
    try:
        logged = [row["epoch"] for row in metrics.read()]
    except (ValueError, KeyError, TypeError) as error:
        raise RunDirectoryError(
            f"cannot resume {run_dir.path}: {run_dir.metrics} is not a metrics log "
            f"({error}); pass --overwrite to start the run over") from error
    if [epoch for epoch in logged if epoch < epochs] != list(range(epochs)):
        raise RunDirectoryError(
            f"cannot resume {run_dir.path}: {run_dir.metrics} holds epochs {logged}, but "
            f"{point.path} covers epochs 0-{epochs - 1}; pass --overwrite to start the run "
            "over")


def shard_loss_weights(loader: BatchLoader) -> list[float] | None:
    """Per batch of an epoch, the factor on this rank's mean loss; ``None`` if all are 1.

    DDP averages the ranks' gradients, so with rank ``r`` holding ``n_r`` of a global
    batch of ``n`` samples and minimising its mean loss, the update follows
    ``(1/W) sum_r mean_r``; the single-process update follows the global mean
    ``sum_r n_r mean_r / n``. They agree when every ``n_r = n / W`` (all full batches:
    the loader requires ``batch_size % W == 0``). For a last partial batch that splits
    unequally, weighting rank ``r``'s loss by ``n_r W / n`` makes them agree; the loss
    LCAM all-reduces and averages is then the global-batch mean as well.
    """
    world_size = loader.world_size
    if world_size == 1:
        return None
    size = len(loader.split)
    weights = []
    for batch in range(len(loader)):
        start, stop = loader.rank_positions(batch)
        global_size = min(loader.batch_size, size - batch * loader.batch_size)
        weights.append((stop - start) * world_size / global_size)
    return None if all(weight == 1.0 for weight in weights) else weights


def _same_on_every_rank(distributed: DistributedContext, values: list[int]) -> bool:
    """Whether every rank holds the same integers ``values`` (one collective, exact).

    With ``s1 = sum_r x_r`` and ``s2 = sum_r x_r**2`` over ``W`` ranks,
    ``W * s2 >= s1**2`` with equality only when all ``x_r`` are equal; so
    ``s1 == W x`` and ``s2 == W x**2`` on a rank holding ``x`` hold iff all are equal,
    and every rank reaches the same verdict.
    """
    local = torch.tensor([*values, *(v * v for v in values)], dtype=torch.int64)
    total = distributed.all_reduce_sum(local)
    return bool(torch.equal(total, local * distributed.world_size))


def _json_roundtrip(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


def run_training(
    config: RunConfig,
    out: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    distributed: DistributedContext = SINGLE_PROCESS,
    log: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Run (or resume, or skip) the run ``config`` under ``out/<preset>/<group>/seed<K>``.

    Args:
        config: the resolved run.
        out: output root; the run directory is created below it.
        resume: continue a partial run of the same configuration from its checkpoint.
        overwrite: delete whatever the run directory holds and start over.
        progress: show progress bars (otherwise one log line per epoch).
        distributed: rank / world size / model wrapping; single process by default.
        log: where progress lines go (default: standard error).

    Returns:
        :class:`RunOutcome`; ``start == "finished"`` means the run was already done.

    Raises:
        RunDirectoryError: the directory holds another configuration or an unfinished
            run and neither ``resume`` nor ``overwrite`` allows touching it, or (with
            ``resume``) neither its latest nor its previous checkpoint can be used; the
            directory is then left unchanged.
        RunHeldError: another process holds the run directory (it trains this run).
        WriteFailedError: a file of the run could not be written (it names the file
            and the cause); the files written before are intact.
    """
    is_main = distributed.rank == 0
    write = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if not is_main:
        write = _silent
    settings = config.settings
    validate_names(settings)
    # An unusable device or process layout fails before any file is touched.
    device = resolve_device(settings.device)
    _check_distributed(settings, device, distributed)
    run_dir = run_directory(out, config)
    lock = RunLock(run_dir.path)  # rank 0 holds it from the decision to the return
    start = _decide_start(run_dir, config, resume, overwrite, distributed, lock)
    try:
        if lock.unlocked:
            write(f"{run_dir.path}: warning: {lock.unlocked}")
        with handle_stop_signals():  # SIGTERM, SIGINT, SIGUSR1: stop after a step
            return _run_held(config, run_dir, start, progress, distributed, write)
    finally:
        lock.release()


def _run_held(
    config: RunConfig,
    run_dir: RunDirectory,
    start: Start,
    progress: bool,
    distributed: DistributedContext,
    write: Callable[[str], None],
) -> RunOutcome:
    """:func:`run_training` once rank 0 holds the run directory's lock."""
    is_main = distributed.rank == 0
    settings = config.settings
    if start == "finished":
        write(f"{run_dir.path}: already finished, skipped")
        return RunOutcome(run_dir.path, start, 0, None)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)

    trainer = _Trainer(config, distributed)
    metrics = MetricsLog(run_dir.metrics)
    if start == "resume":
        point = _resume_point(trainer, run_dir, metrics)
        trainer.load_state_dict(point.state)
        if point.skipped is not None:
            # The unreadable latest file is replaced by the next checkpoint, not kept as
            # the "previous" one: the good previous checkpoint stays until then.
            trainer.keep_previous_checkpoint = False
            write(f"{run_dir.path}: warning: {point.skipped}; resuming from the previous "
                  f"checkpoint {point.path} instead, after epoch {trainer.epoch - 1}")
    if trainer.drop_last:
        remainder = len(trainer.train_loader.split) % settings.batch_size
        write(f"{run_dir.path}: the last batch of each epoch ({remainder} samples) is dropped: "
              f"it cannot be split over {distributed.world_size} ranks")
    if is_main:
        write_config(run_dir, config, _runtime(trainer, distributed))
        if start == "resume":
            metrics.truncate(trainer.epoch)
            for leftover in run_dir.checkpoint_temporaries():  # from a kill mid-write
                leftover.unlink(missing_ok=True)
        else:
            with writing(run_dir.metrics):
                run_dir.metrics.write_text("", encoding="utf-8")
    board = TensorBoardLog(run_dir.tensorboard) if settings.tensorboard and is_main else None
    if start == "resume" and trainer.partial is not None:
        write(f"{run_dir.path}: resuming after step {trainer.partial.totals.steps}/"
              f"{len(trainer.train_loader)} of epoch {trainer.epoch + 1} (stopped there by a "
              "signal)")
    elif start == "resume":
        write(f"{run_dir.path}: resuming after epoch {trainer.epoch - 1}")
    epochs_run, stopped = _train_epochs(trainer, run_dir, metrics, board, progress and is_main,
                                        write)
    if board is not None:
        board.close()
    if stopped is not None:
        write(f"{run_dir.path}: {stopped.describe()}")
        return RunOutcome(run_dir.path, start, epochs_run, None, stopped)

    if not is_main:  # only rank 0 holds the files
        return RunOutcome(run_dir.path, start, epochs_run, None)
    result = RunResult.from_history(metrics.read(), trainer.seconds)
    write_json_atomic(run_dir.result, result.to_json())
    run_dir.previous_checkpoint.unlink(missing_ok=True)  # only an unfinished run resumes
    return RunOutcome(run_dir.path, start, epochs_run, result)


def _silent(line: str) -> None:
    """The log of ranks other than 0."""


def _check_distributed(
    settings: RunSettings, device: torch.device, distributed: DistributedContext
) -> None:
    """Refuse a process layout the run cannot use (before the run directory is touched)."""
    world_size = distributed.world_size
    if world_size == 1:
        return
    if settings.batch_size % world_size:
        raise ConfigError(
            f"batch_size {settings.batch_size} is the global batch and must be divisible by "
            f"the {world_size} processes"
        )
    if settings.batch_norm == "sync" and device.type != "cuda":
        raise ConfigError(
            f"batch_norm=sync needs CUDA (torch.nn.SyncBatchNorm has no {device.type} "
            "implementation); use batch_norm=plain"
        )


_STARTS: tuple[Start, ...] = get_args(Start)


def _decide_start(
    run_dir: RunDirectory,
    config: RunConfig,
    resume: bool,
    overwrite: bool,
    distributed: DistributedContext,
    lock: RunLock,
) -> Start:
    """Rank 0 takes ``lock`` and inspects (with ``overwrite``: clears) the run directory;
    every rank gets its answer.

    The other ranks never look at the directory: rank 0's decision reaches them as a
    sum over ranks to which only rank 0 contributes (0 = refused). A refusal (the run
    held by another process included) raises on every rank, rank 0 with the real
    message; rank 0 then no longer holds the lock.
    """
    if distributed.world_size == 1:
        return _lock_and_prepare(run_dir, config, resume, overwrite, lock)
    code, failure = 0, None
    if distributed.rank == 0:
        try:
            code = 1 + _STARTS.index(_lock_and_prepare(run_dir, config, resume, overwrite,
                                                       lock))
        except Exception as error:  # re-raised below, once every rank knows
            failure = error
    decided = int(distributed.all_reduce_sum(torch.tensor(code, dtype=torch.int64)))
    if failure is not None:
        raise failure
    if decided == 0:
        raise RunDirectoryError(f"{run_dir.path}: refused by rank 0 (its message says why)")
    return _STARTS[decided - 1]


def _lock_and_prepare(
    run_dir: RunDirectory, config: RunConfig, resume: bool, overwrite: bool, lock: RunLock
) -> Start:
    """Take ``lock`` (or raise :class:`~lcam.harness.runlock.RunHeldError`), then decide;
    a refusal releases it."""
    lock.acquire()
    try:
        return prepare_run_directory(run_dir, config, resume=resume, overwrite=overwrite)
    except BaseException:
        lock.release()
        raise


def _train_epochs(
    trainer: _Trainer,
    run_dir: RunDirectory,
    metrics: MetricsLog,
    board: TensorBoardLog | None,
    progress: bool,
    write: Callable[[str], None],
) -> tuple[int, StopPoint | None]:
    """Train from ``trainer.epoch`` (and ``trainer.partial``'s step) to the last epoch.

    Returns the number of epochs finished here and, when a stop signal ended the
    training early (:meth:`_Trainer.stop_agreed`), where: a checkpoint of that position
    is then written (rank 0) and every rank has reached it.
    """
    settings, config = trainer.settings, trainer.config
    label = f"{config.preset}/{config.group.name}/seed{config.seed}"
    epochs_run = 0
    bars = _ProgressBars(label, settings.epochs, trainer.epoch, len(trainer.train_loader),
                         enabled=progress)
    try:
        while trainer.epoch < settings.epochs:
            epoch = trainer.epoch
            started = time.perf_counter()
            partial, trainer.partial = trainer.partial or _PartialEpoch.start(trainer), None
            batches = bars.wrap_batches(
                trainer.train_loader.epoch(epoch, start=partial.totals.steps),
                done=partial.totals.steps)
            if trainer.train_epoch(batches, partial):
                elapsed = time.perf_counter() - started
                partial.train_seconds += elapsed
                partial.seconds += elapsed
                return epochs_run, _stop(trainer, run_dir, partial)
            totals, lr_used = partial.totals, partial.lr_used
            reduce = trainer.distributed.all_reduce_sum
            train_loss = float(reduce(totals.loss)) / trainer.distributed.world_size / max(
                totals.steps, 1)
            train_correct = int(reduce(totals.correct))
            train_seconds = partial.train_seconds + time.perf_counter() - started
            trainer.distributed.synchronize_buffers(trainer.model)
            test_loss, test_error = trainer.evaluate()
            fraction_above, loss_average = trainer.finish_epoch_statistics()
            trainer.schedule.after_epoch()
            seconds = partial.seconds + time.perf_counter() - started
            line = EpochMetrics(
                epoch=epoch, lr=lr_used, weight_decay=settings.weight_decay,
                train_loss=train_loss,
                train_accuracy=100.0 * train_correct / trainer.train_size,
                test_loss=test_loss, test_error=test_error, fraction_above=fraction_above,
                loss_average=loss_average, steps=totals.steps, seconds=seconds,
                samples_per_second=trainer.train_size / max(train_seconds, 1e-9),
            )
            trainer.epoch += 1
            trainer.seconds += seconds
            epochs_run += 1
            if trainer.distributed.rank == 0:
                metrics.append(line)
                save_checkpoint(run_dir.checkpoint, trainer.state_dict(),
                                keep_previous=trainer.keep_previous_checkpoint)
                trainer.keep_previous_checkpoint = True
                if board is not None:
                    board.add_epoch(line)
            trainer.distributed.barrier()  # every rank moves on once the checkpoint exists
            _save_rank_state(trainer, epoch)
            message = _epoch_message(label, line, settings.epochs)
            if progress:
                bars.epoch_done(line)
            else:
                write(message)
    finally:
        bars.close()
    return epochs_run, None


def _stop(trainer: _Trainer, run_dir: RunDirectory, partial: _PartialEpoch) -> StopPoint:
    """Checkpoint the position ``partial`` of epoch ``trainer.epoch`` (rank 0) and wait
    until every rank is there. The checkpoint is written even at an epoch boundary, so
    its time says the run stopped (``lcam train --nproc`` reads it)."""
    state = trainer.state_dict(partial)  # every rank: the epoch's sums are gathered
    if trainer.distributed.rank == 0:
        save_checkpoint(run_dir.checkpoint, state, keep_previous=trainer.keep_previous_checkpoint)
        trainer.keep_previous_checkpoint = True
    trainer.distributed.barrier()
    requested = stop_requested()
    return StopPoint(signal_name(requested) if requested is not None else "another rank",
                     trainer.epoch, partial.totals.steps, len(trainer.train_loader),
                     run_dir.checkpoint)


def _save_rank_state(trainer: _Trainer, epoch: int) -> None:
    """Save this rank's model and optimizer into ``$LCAM_RANK_STATE_DIR`` (if set)."""
    directory = os.environ.get(RANK_STATE_ENV)
    if not directory:
        return
    rank = trainer.distributed.rank
    path = Path(directory) / f"epoch{epoch}-rank{rank}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                "epoch": epoch, "rank": rank}, path)


def _epoch_message(label: str, line: EpochMetrics, epochs: int) -> str:
    above = "" if line.fraction_above is None else f" above {line.fraction_above:.2f}"
    return (f"{label} epoch {line.epoch + 1}/{epochs}: lr {line.lr:.4g} "
            f"train loss {line.train_loss:.4f} test error {line.test_error:.2f}%"
            f"{above} ({line.seconds:.1f}s)")


def _runtime(trainer: _Trainer, distributed: DistributedContext) -> dict[str, Any]:
    return {
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
        "world_size": distributed.world_size,
        "steps_per_epoch": len(trainer.train_loader),
        "drop_last": trainer.drop_last,
    }


class _ProgressBars:
    """An epoch bar and a batch bar (tqdm), or nothing when disabled."""

    def __init__(self, label: str, epochs: int, done: int, batches: int, *, enabled: bool):
        self.enabled = enabled
        self.batches = batches
        if not enabled:
            return
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.epoch_bar = tqdm(total=epochs, initial=done, desc=label, unit="epoch",
                              dynamic_ncols=True)

    def wrap_batches(
        self, batches: Iterator[tuple[Tensor, Tensor]], done: int = 0
    ) -> Iterator[tuple[Tensor, Tensor]]:
        if not self.enabled:
            return batches
        return iter(self._tqdm(batches, total=self.batches, initial=done, leave=False,
                               unit="batch", dynamic_ncols=True, mininterval=0.5))

    def epoch_done(self, line: EpochMetrics) -> None:
        if not self.enabled:
            return
        postfix = {"loss": f"{line.train_loss:.4f}", "test_err": f"{line.test_error:.2f}%",
                   "lr": f"{line.lr:.3g}"}
        if line.fraction_above is not None:
            postfix["above"] = f"{line.fraction_above:.2f}"
        self.epoch_bar.set_postfix(postfix)
        self.epoch_bar.update(1)

    def close(self) -> None:
        if self.enabled:
            self.epoch_bar.close()
