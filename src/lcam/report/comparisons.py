"""The family of paired comparisons of one preset, corrected together.

For the final test error of every group over its finished seeds (see
:mod:`lcam.report.paired`):

- every group against the fixed-0.9 group (``"vs m0.9"``);
- every LCAM group against its matched control (``"vs control"``);
- every LCAM pair against its swap, ``m<b>_<a>`` against ``m<a>_<b>``, once, the
  group with the larger ``momentum_below`` first (``"vs swap"``).

Only groups on the full schedule enter: a shortened group (``m0.9-half``) has no
control, and its comparison with fixed 0.9 at full length is claim C3's own family
(:mod:`lcam.report.noninferiority`).

The t-test p-values of the family are Holm-Bonferroni adjusted together, and the
minimum detectable effect is stated at the strictest level Holm can use,
``ALPHA / m`` for ``m`` comparisons: an effect that large is found with 80% power
whatever the other comparisons show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lcam.report.paired import (
    ALPHA,
    PairedComparison,
    from_differences,
    holm,
    paired,
    verdict,
)
from lcam.report.runs import GroupSpec

__all__ = [
    "EQUIVALENCE_MARGIN",
    "KINDS",
    "correct",
    "correct_differences",
    "preset_comparisons",
    "swap_of",
]

EQUIVALENCE_MARGIN = 0.3
"""Default equivalence margin, in percentage points of test error: the smallest gain
of LCAM over fixed 0.9 that the paper's Table 1 reports (0.3 points), so that an
"equivalent" verdict rules out an effect as large as any the paper claims."""

VS_FIXED, VS_CONTROL, VS_SWAP = "vs m0.9", "vs control", "vs swap"
KINDS = (VS_FIXED, VS_CONTROL, VS_SWAP)


def swap_of(spec: GroupSpec, specs: Mapping[str, GroupSpec]) -> str | None:
    """The LCAM group with ``spec``'s two momenta exchanged, if there is one."""
    if spec.optimizer != "lcam" or spec.momentum_above == spec.momentum_below:
        return None
    for name, other in specs.items():
        if (other.optimizer == "lcam" and other.role != "control"
                and other.schedule_fraction == spec.schedule_fraction
                and other.momentum_above == spec.momentum_below
                and other.momentum_below == spec.momentum_above):
            return name
    return None


def preset_comparisons(
    specs: Mapping[str, GroupSpec],
    finals: Mapping[str, Mapping[int, float]],
    *,
    fixed_group: str | None,
    controls: Mapping[str, str | None],
    margin: float = EQUIVALENCE_MARGIN,
    order: Sequence[str] | None = None,
) -> list[PairedComparison]:
    """Every comparison of the preset (``finals``: group -> seed -> final error)."""
    planned: list[tuple[str, str, str]] = []
    for name in order or list(specs):
        spec = specs[name]
        if spec.shortened:
            continue  # a shortened group has no control and its own family (claim C3)
        if fixed_group is not None and name != fixed_group:
            planned.append((name, fixed_group, VS_FIXED))
        control = controls.get(name)
        if spec.optimizer == "lcam" and control is not None:
            planned.append((name, control, VS_CONTROL))
        swap = swap_of(spec, specs)
        if swap is not None and (spec.momentum_below or 0.0) > (spec.momentum_above or 0.0):
            planned.append((name, swap, VS_SWAP))
    return correct(
        [(a, b, kind, finals.get(a, {}), finals.get(b, {})) for a, b, kind in planned],
        margin=margin,
    )


def correct(
    planned: Sequence[tuple[str, str, str, Mapping[int, float], Mapping[int, float]]],
    *,
    margin: float,
) -> list[PairedComparison]:
    """Run the paired comparisons ``(a, b, kind, a_values, b_values)`` as one family:
    Holm-adjusted, minimum detectable effects at ``ALPHA / m``, with verdicts."""
    m = max(1, len(planned))
    comparisons = []
    for a, b, kind, x, y in planned:
        comparison = paired(x, y, name=a, against=b, kind=kind, margin=margin,
                            alpha_mde=ALPHA / m)
        if comparison is not None:
            comparisons.append(comparison)
    return [verdict(c) for c in holm(comparisons)]


def correct_differences(
    planned: Sequence[tuple[str, str, str, Sequence[int], Sequence[float]]],
    *,
    margin: float,
) -> list[PairedComparison]:
    """:func:`correct` for comparisons known by their per-seed differences only,
    ``(a, b, kind, seeds, differences)``: the same statistics and verdicts (used to
    re-evaluate committed summaries at another margin)."""
    m = max(1, len(planned))
    comparisons = [from_differences(seeds, d, name=a, against=b, kind=kind, margin=margin,
                                    alpha_mde=ALPHA / m)
                   for a, b, kind, seeds, d in planned]
    return [verdict(c) for c in holm(comparisons)]
