"""Per-epoch metrics and their sinks: ``metrics.jsonl``, ``result.json``, TensorBoard.

The line format is the run-directory contract of ``docs/ARCHITECTURE.md``; the report
reads these files and nothing else, so every figure and table is derived from them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcam.harness.writes import write_text_atomic, writing

__all__ = [
    "TIMING_FIELDS",
    "EpochMetrics",
    "MetricsLog",
    "RunResult",
    "TensorBoardLog",
    "write_json_atomic",
]

TIMING_FIELDS: frozenset[str] = frozenset({"seconds", "samples_per_second"})
"""Fields of a metrics line that measure time (they differ between identical runs)."""


@dataclass(frozen=True)
class EpochMetrics:
    """One line of ``metrics.jsonl``.

    Attributes:
        epoch: 0-based epoch index.
        lr: learning rate of the epoch's last iteration.
        weight_decay: weight decay in force.
        train_loss: mean of the epoch's mini-batch losses (as the demo logs it).
        train_accuracy: percent of training samples classified right during the epoch
            (train mode, augmented inputs).
        test_loss: mean per-sample loss on the test split.
        test_error: percent of test samples classified wrong.
        fraction_above: LCAM: fraction of this epoch's steps that used
            ``momentum_above``; plain SGD: ``None``.
        loss_average: LCAM: the running loss average at the end of the epoch; SGD: ``None``.
        steps: optimizer steps in this epoch.
        seconds: wall time of the epoch (training and evaluation).
        samples_per_second: training samples per second of training time.
    """

    epoch: int
    lr: float
    weight_decay: float
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_error: float
    fraction_above: float | None
    loss_average: float | None
    steps: int
    seconds: float
    samples_per_second: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class MetricsLog:
    """The append-only ``metrics.jsonl`` of one run (one JSON object per epoch)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        """Every complete line, in order (an empty list when the file is missing)."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").split("\n")
        # A line without its newline was cut by a crash mid-write: not a finished epoch.
        return [json.loads(line) for line in lines[:-1] if line.strip()]

    def append(self, metrics: EpochMetrics) -> None:
        """Append one line and flush it to disk.

        A failed write raises :class:`~lcam.harness.writes.WriteFailedError` and cuts
        the file back to the lines it held (as far as the file system still allows).
        """
        data = (json.dumps(metrics.to_json()) + "\n").encode("utf-8")
        with writing(self.path), open(self.path, "ab") as handle:
            size = handle.seek(0, os.SEEK_END)
            try:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                with contextlib.suppress(OSError):
                    handle.truncate(size)
                raise

    def truncate(self, epochs: int) -> None:
        """Keep the lines of the first ``epochs`` epochs (those a checkpoint covers).

        Lines written after the last checkpoint (a crash between writing an epoch's
        line and its checkpoint) are dropped, so the resumed run appends each epoch
        exactly once.
        """
        kept = [row for row in self.read() if row["epoch"] < epochs]
        if [row["epoch"] for row in kept] != list(range(epochs)):
            raise RuntimeError(
                f"{self.path}: holds epochs {[row['epoch'] for row in kept]}, "
                f"but the checkpoint covers {epochs} epochs"
            )
        write_text_atomic(self.path, "".join(json.dumps(row) + "\n" for row in kept))


@dataclass(frozen=True)
class RunResult:
    """``result.json``: written only once a run has finished all its epochs.

    ``best_epoch`` is the 0-based index of the epoch with the lowest test error (the
    first one on ties), as in ``metrics.jsonl``.
    """

    status: str
    epochs: int
    final_test_error: float
    best_test_error: float
    best_epoch: int
    seconds: float

    @classmethod
    def from_history(cls, history: Sequence[dict[str, Any]], seconds: float) -> RunResult:
        errors = [float(row["test_error"]) for row in history]
        best = min(range(len(errors)), key=errors.__getitem__)
        return cls(status="finished", epochs=len(errors), final_test_error=errors[-1],
                   best_test_error=errors[best], best_epoch=best, seconds=seconds)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON to ``path`` via a temporary file and a rename.

    A failed write raises :class:`~lcam.harness.writes.WriteFailedError` naming ``path``;
    ``path`` keeps what it held.
    """
    write_text_atomic(path, json.dumps(value, indent=2) + "\n")


class TensorBoardLog:
    """Optional TensorBoard event files: the scalars the authors' demo logged, plus LCAM's.

    Written to ``<run dir>/tensorboard``; one point per epoch at step ``epoch + 1``
    (the demo's convention): test error, train loss, learning rate, weight decay and,
    for LCAM groups, the fraction of steps above the average loss.
    """

    def __init__(self, directory: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(directory))

    def add_epoch(self, metrics: EpochMetrics) -> None:
        step = metrics.epoch + 1
        scalars = {
            "TestError / Epoch": metrics.test_error,
            "TrainLoss / Epoch": metrics.train_loss,
            "Learning Rate / Epoch": metrics.lr,
            "Weight Decay / Epoch": metrics.weight_decay,
            "TestLoss / Epoch": metrics.test_loss,
        }
        if metrics.fraction_above is not None:
            scalars["FractionAbove / Epoch"] = metrics.fraction_above
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
