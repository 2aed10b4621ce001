"""Find and read run directories written by the harness (`lcam train` / `lcam sweep`).

The input format is the run-directory contract of ``docs/ARCHITECTURE.md``::

    OUT/<preset>/<group>/seed<K>/config.json     written at start
                                 metrics.jsonl   one JSON object per finished epoch
                                 result.json     only once every epoch has finished

Discovery walks each directory given (recursively), so a sweep root, a preset
directory, a single run directory, or several per-run output directories of a cluster
sweep all work. A directory counts as a run when it is named ``seed<K>`` and holds a
``config.json``; other ``config.json`` files (for example a cached Hugging Face model)
are ignored. A ``seed<K>`` directory without ``config.json`` (a run that failed before
it started) is named in a warning, and so is any other directory holding a
``metrics.jsonl`` or ``result.json`` (a run copied to another name, or into a run
directory): its files are not reported.

A run is *finished* iff ``result.json`` exists, otherwise *partial*. Partial runs are
loaded (their epochs so far) so the report can list them, but they never enter the
statistics.

Everything that does not follow the contract raises `ReportError` with a message that
names the file and, for ``metrics.jsonl``, the line::

    runs/c10/m0.9/seed0/metrics.jsonl line 7: not valid JSON (Expecting value: ...)
    runs/c10/m0.9/seed0/metrics.jsonl line 3: missing key 'test_error'

``load_runs(..., leave_out_unreadable=True)`` (what ``lcam report`` does) instead leaves
such a run out with that message as a warning, and raises only when no run is left.

In a partial run, an unparsable last line without its newline is one the harness is
still writing (a sweep in progress): it is left out with a warning, not an error.

A resumed run may append an epoch again (a crash between writing the metrics line and
the checkpoint makes the harness redo that epoch). A line whose ``epoch`` is not larger
than the previous one therefore restarts the history at that epoch: the later lines
win. A gap (epoch 5 after epoch 3) is an error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Discovery",
    "GroupSpec",
    "ReportError",
    "Run",
    "discover_run_dirs",
    "load_run",
    "load_runs",
]

RUN_DIR_PATTERN = re.compile(r"seed\d+")
EXPECTED_LAYOUT = "<preset>/<group>/seed<K>/config.json"

# Keys every metrics.jsonl line must carry (the report reads exactly these).
_METRIC_NUMBERS = ("lr", "train_loss", "test_error")


class ReportError(Exception):
    """Input that the report cannot use; the message names the file (and line)."""


@dataclass(frozen=True)
class GroupSpec:
    """A momentum group, as described by the ``group`` object of ``config.json``."""

    name: str
    optimizer: str
    momentum: float | None = None
    momentum_above: float | None = None
    momentum_below: float | None = None
    role: str | None = None
    matched_to: tuple[str, ...] | None = None
    """For a control: the LCAM groups it is matched to (old files: one name)."""
    schedule_fraction: float = 1.0
    """The fraction of the preset's schedule the group trains for (``0.5``: a
    ``-half`` group, half the epochs with the lr milestones at the same fractions);
    absent from ``config.json`` means the full schedule."""

    @property
    def shortened(self) -> bool:
        """Whether the group trains for less than the preset's full schedule."""
        return self.schedule_fraction != 1.0

    def describe_momentum(self) -> str:
        """Human-readable momentum setting, e.g. ``0.95 below / 0.9 above``."""
        if self.optimizer == "lcam":
            return f"{_fmt(self.momentum_below)} below / {_fmt(self.momentum_above)} above"
        return f"fixed {_fmt(self.momentum)}"


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


@dataclass(frozen=True)
class Run:
    """One run directory: its configuration and its per-epoch curves.

    The curves hold one value per finished epoch, in epoch order (index 0 = epoch 0).
    ``fraction_above`` is ``None`` for epochs that did not record it (plain SGD).
    ``warnings`` says what was left out while reading (an unfinished last line).
    """

    path: Path
    preset: str
    group: GroupSpec
    seed: int
    epochs_planned: int
    data: str | None
    model: str | None
    schedule: str | None
    finished: bool
    test_error: tuple[float, ...]
    train_loss: tuple[float, ...]
    lr: tuple[float, ...]
    fraction_above: tuple[float | None, ...]
    result: dict[str, Any] | None
    warnings: tuple[str, ...] = ()

    @property
    def epochs_completed(self) -> int:
        """Number of epochs with a metrics line."""
        return len(self.test_error)

    @property
    def status(self) -> str:
        """``"finished"`` or ``"partial"``."""
        return "finished" if self.finished else "partial"

    @property
    def final_test_error(self) -> float | None:
        """Test error (percent) after the last recorded epoch."""
        return self.test_error[-1] if self.test_error else None

    @property
    def best_test_error(self) -> float | None:
        """Lowest test error (percent) over the recorded epochs."""
        return min(self.test_error) if self.test_error else None

    @property
    def best_epoch(self) -> int | None:
        """1-based epoch count at which the lowest test error was first reached."""
        if not self.test_error:
            return None
        return self.test_error.index(min(self.test_error)) + 1

    @property
    def mean_fraction_above(self) -> float | None:
        """Mean over epochs of the fraction of steps that used ``momentum_above``.

        Every epoch has the same number of steps, so this is the fraction over the
        whole run. ``None`` when no epoch recorded it (plain SGD).
        """
        values = [v for v in self.fraction_above if v is not None]
        return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Discovery:
    """What a walk over the given directories found.

    ``run_dirs``: directories named ``seed<K>`` holding a ``config.json``, sorted, no
    duplicates. ``unstarted``: ``seed<K>`` directories without one (a sweep created
    them, but the run failed or has not begun before writing its configuration).
    ``stray``: other directories holding a ``metrics.jsonl`` or ``result.json`` (a run
    copied under another name, or nested in a run directory): not runs.
    """

    run_dirs: list[Path]
    unstarted: list[Path]
    stray: list[Path] = field(default_factory=list)


def discover_run_dirs(dirs: Sequence[Path]) -> Discovery:
    """Every run directory under ``dirs`` (each may itself be a run directory).

    Raises `ReportError` for a path that is not a directory and when no run is found.
    """
    if not dirs:
        raise ReportError("no directory given: pass the output directory of `lcam train`")
    found: dict[Path, Path] = {}
    unstarted: dict[Path, Path] = {}
    stray: dict[Path, Path] = {}
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            raise ReportError(f"{root}: not a directory")
        runs_here: set[Path] = set()
        for current, subdirs, files in os.walk(root):
            here = Path(current)
            subdirs.sort()
            names = {*files, *subdirs}  # a directory or a link may stand for a file
            run_like = RUN_DIR_PATTERN.fullmatch(here.name) is not None
            if run_like and runs_here.isdisjoint(here.parents):
                target = found if "config.json" in names else unstarted
                target.setdefault(here.resolve(), here)
                runs_here.add(here)
            elif names & {"metrics.jsonl", "result.json"} or (run_like and "config.json" in names):
                stray.setdefault(here.resolve(), here)
    if not found:
        where = ", ".join(str(d) for d in dirs)
        message = (
            f"no runs found in {where}: expected {EXPECTED_LAYOUT} below it "
            "(run `lcam train` or `lcam sweep` first)"
        )
        if unstarted:
            example = sorted(unstarted.values(), key=lambda p: p.as_posix())[0]
            message += (
                f"; {len(unstarted)} seed<K> directories have no config.json, e.g. "
                f"{example} (did the run fail before it started? see its train.log)"
            )
        if stray:
            example = sorted(stray.values(), key=lambda p: p.as_posix())[0]
            message += (
                f"; {len(stray)} other directories hold metrics.jsonl or result.json, e.g. "
                f"{example} (a run directory renamed?)"
            )
        raise ReportError(message)
    return Discovery(
        run_dirs=sorted(found.values(), key=lambda p: p.as_posix()),
        unstarted=sorted(unstarted.values(), key=lambda p: p.as_posix()),
        stray=sorted(stray.values(), key=lambda p: p.as_posix()),
    )


def load_runs(
    dirs: Sequence[Path], *, leave_out_unreadable: bool = False
) -> tuple[list[Run], list[str]]:
    """Discover and load every run under ``dirs``; also return warnings about them.

    A run whose files break the contract raises `ReportError`, or, with
    ``leave_out_unreadable``, is left out with a warning that names the file (and
    `ReportError` lists every such file when no run is left). Raises `ReportError` when
    two directories hold the same (preset, group, seed), e.g. the same run passed twice
    from different output directories.
    """
    discovery = discover_run_dirs(dirs)
    runs: list[Run] = []
    unreadable: list[str] = []
    for path in discovery.run_dirs:
        try:
            runs.append(load_run(path))
        except ReportError as error:
            if not leave_out_unreadable:
                raise
            unreadable.append(str(error))
    seen: dict[tuple[str, str, int], Run] = {}
    for run in runs:
        key = (run.preset, run.group.name, run.seed)
        if key in seen:
            raise ReportError(
                f"run {run.preset}/{run.group.name}/seed{run.seed} found twice: "
                f"{seen[key].path} and {run.path} (pass only one of them)"
            )
        seen[key] = run
    warnings = [
        f"{path}: no config.json, not reported (did the run fail before it started? "
        "see its train.log)"
        for path in discovery.unstarted
    ]
    warnings += [
        f"{path}: holds run files but is not a run directory ({EXPECTED_LAYOUT}, not "
        "inside another run), not reported"
        for path in discovery.stray
    ]
    if not runs:
        # Every file left out, one per line; a single one is exactly load_run's message.
        problems = unreadable + warnings
        raise ReportError(problems[0] if len(problems) == 1 else (
            "no run could be read:\n" + "\n".join(f"  {m}" for m in problems)))
    warnings += [f"{message} (run left out)" for message in unreadable]
    return runs, warnings


def load_run(path: Path) -> Run:
    """Read one run directory (``config.json``, ``metrics.jsonl``, ``result.json``)."""
    config_path = path / "config.json"
    config = _read_json_object(config_path)
    preset = _require(config, "preset", str, config_path)
    group = _parse_group(_require(config, "group", dict, config_path), config_path)
    seed = _require(config, "seed", int, config_path)
    epochs = _require(config, "epochs", int, config_path)
    data = _optional(config, "data", str, config_path)
    model = _optional(config, "model", str, config_path)
    schedule = _optional(config, "schedule", str, config_path)

    metrics_path = path / "metrics.jsonl"
    result_path = path / "result.json"
    finished = os.path.lexists(result_path)  # a dangling link is named, not skipped
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    if os.path.lexists(metrics_path):
        rows, warnings = _read_metrics(metrics_path, finished=finished)

    result: dict[str, Any] | None = None
    if finished:
        result = _read_json_object(result_path)
        result_epochs = _require(result, "epochs", int, result_path)
        if result_epochs != len(rows):
            raise ReportError(
                f"{result_path}: says {result_epochs} epochs finished but "
                f"{metrics_path} has {len(rows)} epoch lines"
            )
    return Run(
        path=path,
        preset=preset,
        group=group,
        seed=seed,
        epochs_planned=epochs,
        data=data,
        model=model,
        schedule=schedule,
        finished=result is not None,
        test_error=tuple(float(r["test_error"]) for r in rows),
        train_loss=tuple(float(r["train_loss"]) for r in rows),
        lr=tuple(float(r["lr"]) for r in rows),
        fraction_above=tuple(
            None if r["fraction_above"] is None else float(r["fraction_above"]) for r in rows
        ),
        result=result,
        warnings=tuple(warnings),
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _json_loads(text: str, where: Path | str) -> Any:
    """``json.loads``, with every way it can fail (nesting too deep, an integer with too
    many digits) as a `ReportError` naming ``where``."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        reason = str(exc) if isinstance(exc, json.JSONDecodeError) else (
            f"{type(exc).__name__}: {exc}")
        raise ReportError(f"{where}: not valid JSON ({reason})") from exc


def _read_json_object(path: Path) -> dict[str, Any]:
    value = _json_loads(_read_text(path), path)
    if not isinstance(value, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _type_name(kind: type) -> str:
    return {str: "a string", int: "an integer", dict: "an object"}.get(kind, kind.__name__)


def _require(obj: dict[str, Any], key: str, kind: type, where: Path | str) -> Any:
    if key not in obj:
        raise ReportError(f"{where}: missing key '{key}'")
    return _check_type(obj[key], key, kind, where)


def _optional(obj: dict[str, Any], key: str, kind: type, where: Path | str) -> Any:
    value = obj.get(key)
    return None if value is None else _check_type(value, key, kind, where)


def _check_type(value: Any, key: str, kind: type, where: Path | str) -> Any:
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        name = "a number"
    else:
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        name = _type_name(kind)
    if not ok:
        raise ReportError(f"{where}: '{key}' must be {name}, got {value!r}")
    return value


def _parse_group(raw: dict[str, Any], where: Path) -> GroupSpec:
    context = f"{where} (group)"
    optimizer = _require(raw, "optimizer", str, context)
    if optimizer not in ("sgd", "lcam"):
        raise ReportError(f"{context}: 'optimizer' must be 'sgd' or 'lcam', got {optimizer!r}")
    return GroupSpec(
        name=_require(raw, "name", str, context),
        optimizer=optimizer,
        momentum=_optional(raw, "momentum", float, context),
        momentum_above=_optional(raw, "momentum_above", float, context),
        momentum_below=_optional(raw, "momentum_below", float, context),
        role=_optional(raw, "role", str, context),
        matched_to=_parse_matched_to(raw.get("matched_to"), context),
        schedule_fraction=_parse_schedule_fraction(raw.get("schedule_fraction"), context),
    )


def _parse_schedule_fraction(value: Any, where: str) -> float:
    """``schedule_fraction``: a number in (0, 1]; absent (or null) is the full schedule."""
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ReportError(f"{where}: 'schedule_fraction' must be a number in (0, 1], "
                          f"got {value!r}")
    return float(value)


def _parse_matched_to(value: Any, where: str) -> tuple[str, ...] | None:
    """``matched_to``: a list of LCAM group names, or one name (old run directories)."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ReportError(
        f"{where}: 'matched_to' must be a list of group names (or one name), got {value!r}"
    )


def _read_metrics(path: Path, *, finished: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """Parse ``metrics.jsonl`` into one dict per epoch, in epoch order, and warnings.

    In a partial run, a last line without its newline that does not parse is a line the
    harness is still writing: it is left out with a warning instead of an error.
    """
    lines = _read_text(path).split("\n")  # the last item is "" when the file ends with a newline
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = _parse_metrics_line(line, where)
        except ReportError:
            if finished or number != len(lines):
                raise
            warnings.append(f"{where}: left out an unfinished last line (still being written?)")
            break
        epoch = row["epoch"]
        if epoch > len(rows):
            raise ReportError(
                f"{where}: epoch {epoch} follows epoch {len(rows) - 1} (epochs missing)"
            )
        del rows[epoch:]  # a resumed run redid this epoch: the later line wins
        rows.append(row)
    return rows, warnings


def _parse_metrics_line(line: str, where: str) -> dict[str, Any]:
    row = _json_loads(line, where)
    if not isinstance(row, dict):
        raise ReportError(f"{where}: expected a JSON object, got {type(row).__name__}")
    epoch = _require(row, "epoch", int, where)
    if epoch < 0:
        raise ReportError(f"{where}: 'epoch' must be >= 0, got {epoch}")
    for key in _METRIC_NUMBERS:
        _require(row, key, float, where)
    if "fraction_above" not in row:
        raise ReportError(f"{where}: missing key 'fraction_above'")
    _optional(row, "fraction_above", float, where)
    return row
