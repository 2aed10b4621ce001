"""One control group per distinct momentum, also for run directories of the old format.

The harness trains one control per distinct matched momentum: ``control-m0.933333``
with ``"matched_to": ["m0.95_0.9", "m0.9_0.95"]``. Run directories written before
that trained one control per LCAM group (``control-m0.95_0.9`` and
``control-m0.9_0.95``, each ``"matched_to": "m0.95_0.9"`` as a string) with the *same*
fixed momentum, so their runs of one seed are the same training.

`merge_controls` is the one place where such duplicates become one group, before any
statistic, table or figure sees them. Within each preset, all control groups (role
``control``) with the same fixed momentum become one group:

- named by the current rule, ``control-m<momentum:g>``;
- matched to the union of their LCAM groups, sorted by name;
- one run per seed: a finished run before a partial one, then the directory already
  named by the current rule, then the first path. When two finished runs of one seed
  end at different test errors (they should be the same training), a warning names
  both directories.

A control whose momentum no other control shares keeps its name (and its directory
stays the group's only source).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from lcam.report.runs import GroupSpec, Run

__all__ = ["control_name", "merge_controls"]


def control_name(momentum: float) -> str:
    """The name of the control with this fixed momentum: ``control-m0.933333``."""
    return f"control-m{momentum:g}"


def merge_controls(runs: Sequence[Run]) -> tuple[list[Run], list[str]]:
    """The runs with each preset's same-momentum controls merged; and warnings.

    Runs of other groups are returned unchanged (the same objects), in the given order;
    the merged control runs follow them.
    """
    clusters: dict[tuple[str, float], dict[str, list[Run]]] = {}
    for run in runs:
        spec = run.group
        if spec.role == "control" and spec.momentum is not None:
            key = (run.preset, round(spec.momentum, 9))
            clusters.setdefault(key, {}).setdefault(spec.name, []).append(run)
    merged_away = {
        id(run)
        for by_name in clusters.values()
        if len(by_name) > 1
        for group_runs in by_name.values()
        for run in group_runs
    }
    out = [run for run in runs if id(run) not in merged_away]
    warnings: list[str] = []
    for (preset, _), by_name in sorted(clusters.items()):
        if len(by_name) > 1:
            out.extend(_merge(preset, by_name, warnings))
    return out, warnings


def _merge(preset: str, by_name: dict[str, list[Run]], warnings: list[str]) -> list[Run]:
    first = by_name[sorted(by_name)[0]][0].group
    assert first.momentum is not None
    name = control_name(first.momentum)
    matched = sorted(
        {m for group_runs in by_name.values() for r in group_runs for m in _matched(r.group)}
    )
    spec = dataclasses.replace(first, name=name, matched_to=tuple(matched) or None)
    by_seed: dict[int, list[Run]] = {}
    for group_runs in by_name.values():
        for run in group_runs:
            by_seed.setdefault(run.seed, []).append(run)
    chosen = []
    for seed in sorted(by_seed):
        candidates = sorted(
            by_seed[seed],
            key=lambda r: (not r.finished, r.group.name != name, r.path.as_posix()),
        )
        kept = candidates[0]
        for other in candidates[1:]:
            if kept.finished and other.finished and not _same(
                kept.final_test_error, other.final_test_error
            ):
                warnings.append(
                    f"preset {preset}: controls {kept.group.name} and {other.group.name} "
                    f"(both momentum {first.momentum:g}, so one control {name}) differ at "
                    f"seed {seed}: final test error {kept.final_test_error} in {kept.path} "
                    f"but {other.final_test_error} in {other.path}; the report uses "
                    f"{kept.path}"
                )
        chosen.append(dataclasses.replace(kept, group=spec))
    return chosen


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _matched(spec: GroupSpec) -> tuple[str, ...]:
    return spec.matched_to or ()
