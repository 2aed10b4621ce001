"""The paper's Table 1 as data, and how a preset and its groups map onto it.

Table 1 of the paper reports final test error (%) as mean with the std over seeds for
three momentum settings, written ``M<below>-<above>`` (the momentum while the loss is
below its running average first):

============  ====================================================
column        group of ours (read from ``config.json``)
============  ====================================================
M0.9          optimizer ``sgd``, momentum 0.9 (not a control group)
M0.857-0.93   optimizer ``lcam``, momentum_below 0.857, momentum_above 0.93
M0.93-0.857   optimizer ``lcam``, momentum_below 0.93, momentum_above 0.857
============  ====================================================

0.857 is the paper's rounding of the balanced partner of 0.93 (``1 - 0.01/0.07`` =
0.857142...), so momenta match within `MOMENTUM_TOLERANCE`.

A preset matches a row by ``(data, model, schedule)`` from its ``config.json``. The
ViT-B/16 rows were fine-tuned with plain SGD at a constant learning rate, so their
schedule is ``"constant"``; the others used SGD with the Cdlr schedule (``"cdlr"``).
The table's reference rows (ViT-B/16 by its authors with SGD+cosine, and Adam) have a
value in the M0.9 column only and are kept apart in `REFERENCE_RESULTS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lcam.report.runs import GroupSpec

__all__ = [
    "COLUMNS",
    "MOMENTUM_TOLERANCE",
    "PaperColumn",
    "PaperReference",
    "PaperRow",
    "PaperValue",
    "REFERENCE_RESULTS",
    "TABLE1",
    "column_for",
    "find_row",
    "references_for",
]

MOMENTUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class PaperColumn:
    """A momentum column of Table 1."""

    name: str
    optimizer: str
    momentum: float | None = None
    momentum_below: float | None = None
    momentum_above: float | None = None


COLUMNS: tuple[PaperColumn, ...] = (
    PaperColumn("M0.9", "sgd", momentum=0.9),
    PaperColumn("M0.857-0.93", "lcam", momentum_below=0.857, momentum_above=0.93),
    PaperColumn("M0.93-0.857", "lcam", momentum_below=0.93, momentum_above=0.857),
)


@dataclass(frozen=True)
class PaperValue:
    """A published mean ± std (``std`` is ``None`` where the paper gives none)."""

    mean: float
    std: float | None
    decimals: int

    def text(self) -> str:
        """The value as printed in the paper, e.g. ``5.788 ± 0.142``."""
        mean = f"{self.mean:.{self.decimals}f}"
        return mean if self.std is None else f"{mean} ± {self.std:.{self.decimals}f}"


@dataclass(frozen=True)
class PaperRow:
    """One result row of Table 1 (test error %, one value per column)."""

    data: str
    model: str
    schedule: str
    label: str
    values: dict[str, PaperValue]
    best: str

    def value(self, column: str) -> PaperValue | None:
        """The published value of ``column`` (``None`` if the row has none)."""
        return self.values.get(column)


def _row(
    data: str,
    model: str,
    schedule: str,
    label: str,
    best: str,
    decimals: int,
    *values: tuple[float, float],
) -> PaperRow:
    cells = {
        column.name: PaperValue(mean, std, decimals)
        for column, (mean, std) in zip(COLUMNS, values, strict=True)
    }
    return PaperRow(data, model, schedule, label, cells, best)


TABLE1: tuple[PaperRow, ...] = (
    _row("speechcommands", "m11", "cdlr", "Speech Commands, M11, SGD+Cdlr", "M0.857-0.93", 3,
         (5.788, 0.142), (5.470, 0.091), (5.625, 0.173)),
    _row("cifar10", "wrn-28-10", "cdlr", "CIFAR-10, WRN-28-10, SGD+Cdlr", "M0.857-0.93", 2,
         (4.11, 0.09), (3.95, 0.12), (4.05, 0.08)),
    _row("cifar10", "vit-b16", "constant", "CIFAR-10, ViT-B/16, SGD", "M0.857-0.93", 2,
         (1.24, 0.07), (1.20, 0.08), (1.25, 0.07)),
    _row("cifar100", "wrn-28-10", "cdlr", "CIFAR-100, WRN-28-10, SGD+Cdlr", "M0.93-0.857", 2,
         (19.21, 0.08), (19.24, 0.13), (19.11, 0.21)),
    _row("cifar100", "vit-b16", "constant", "CIFAR-100, ViT-B/16, SGD", "M0.9", 2,
         (7.37, 0.18), (7.61, 0.12), (7.59, 0.24)),
)  # fmt: skip


@dataclass(frozen=True)
class PaperReference:
    """A reference row of Table 1 (someone else's method; M0.9 column only)."""

    data: str
    model: str
    method: str
    source: str
    value: PaperValue


REFERENCE_RESULTS: tuple[PaperReference, ...] = (
    PaperReference("cifar10", "vit-b16", "SGD+cosine", "ViT authors", PaperValue(1.09, None, 2)),
    PaperReference("cifar10", "vit-b16", "Adam", "paper", PaperValue(1.58, 0.37, 2)),
    PaperReference("cifar100", "vit-b16", "SGD+cosine", "ViT authors", PaperValue(7.94, None, 2)),
    PaperReference("cifar100", "vit-b16", "Adam", "paper", PaperValue(8.00, 0.63, 2)),
)


def find_row(data: str | None, model: str | None, schedule: str | None) -> PaperRow | None:
    """The Table 1 row run with this data set, model and schedule, if any."""
    for row in TABLE1:
        if (row.data, row.model, row.schedule) == (data, model, schedule):
            return row
    return None


def references_for(data: str | None, model: str | None) -> list[PaperReference]:
    """Table 1's reference rows for this data set and model."""
    return [r for r in REFERENCE_RESULTS if (r.data, r.model) == (data, model)]


def _same(value: float | None, expected: float | None) -> bool:
    if value is None or expected is None:
        return value is expected
    return math.isclose(value, expected, rel_tol=0.0, abs_tol=MOMENTUM_TOLERANCE)


def column_for(group: GroupSpec) -> str | None:
    """The Table 1 column whose momentum setting ``group`` runs, if any.

    Control groups never map to a column: they are our addition, not the paper's.
    """
    if group.role == "control":
        return None
    for column in COLUMNS:
        if group.optimizer != column.optimizer:
            continue
        if column.optimizer == "sgd" and _same(group.momentum, column.momentum):
            return column.name
        if (
            column.optimizer == "lcam"
            and _same(group.momentum_below, column.momentum_below)
            and _same(group.momentum_above, column.momentum_above)
        ):
            return column.name
    return None
