"""MNIST-1D with 100 classes: templates made of two digit halves.

The ``mnist1d`` generator turns any set of 1-D templates into a data set (its
``make_dataset(args, template=...)``). :func:`pair_templates` builds 100 templates from
its ten digit templates, deterministically and without any random draw:

* template ``(i, j)`` (``i, j`` in ``0..9``) is the first half of digit ``i`` joined to
  the second half of digit ``j``;
* the join is blended linearly over :data:`BLEND` points around the middle, so the
  signal has no step where the halves meet:
  ``t[k] = d_i[k] + w[k] * (d_j[k] - d_i[k])``, with ``w`` 0 on the first
  ``(12 - BLEND) / 2`` points, rising as ``1/(BLEND+1), ..., BLEND/(BLEND+1)`` over the
  next ``BLEND`` points, and 1 on the rest;
* the ten digits are the diagonal: template ``(i, i)`` equals digit ``i`` exactly.

Labels
    ``fine``: ``10 * i + j`` (100 classes). ``coarse``: ``i``, the digit of the first
    half (10 classes, 10 fine classes each): the same inputs with ten times fewer
    classes, as CIFAR-100's 20 coarse labels group its 100 classes.

Every other generator argument keeps its default, so a data set of these templates
differs from MNIST-1D only in the templates (and in how many there are).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BLEND", "LABELINGS", "NUM_DIGITS", "TEMPLATE_SETS", "blend_weights",
           "coarse_labels", "pair_templates"]

NUM_DIGITS = 10
BLEND = 4
"""Points over which the two halves are blended."""
TEMPLATE_SETS = ("digits", "pairs")
"""``digits``: the generator's ten templates; ``pairs``: :func:`pair_templates`."""
LABELINGS = ("fine", "coarse")


def blend_weights(length: int, blend: int = BLEND) -> np.ndarray:
    """The weight ``w[k]`` of the second digit at each of ``length`` points."""
    if length < 2 or blend < 0 or blend > length - 2 or (length - blend) % 2:
        raise ValueError(
            f"cannot blend over {blend} points of a {length}-point template "
            "(need 0 <= blend <= length - 2 and length - blend even)"
        )
    head = (length - blend) // 2
    ramp = np.arange(1, blend + 1, dtype=np.float64) / (blend + 1)
    return np.concatenate([np.zeros(head), ramp, np.ones(length - head - blend)])


def pair_templates(digits: dict[str, Any], blend: int = BLEND) -> dict[str, Any]:
    """100 templates from the generator's ten (``get_templates()``), fine labels.

    Returns the generator's template format: ``x`` (100 x length), ``t`` (the digits'
    time axis, unchanged) and ``y`` (``10 * i + j``).
    """
    x = np.asarray(digits["x"], dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != NUM_DIGITS:
        raise ValueError(f"expected {NUM_DIGITS} digit templates, got an array of shape {x.shape}")
    w = blend_weights(x.shape[1], blend)
    first = np.repeat(x, NUM_DIGITS, axis=0)  # row 10 * i + j: digit i
    second = np.tile(x, (NUM_DIGITS, 1))  # row 10 * i + j: digit j
    blended = first + w * (second - first)
    # Outside the blend the halves are copied exactly (1.0 * (b - a) + a may round).
    x = np.where(w == 0.0, first, np.where(w == 1.0, second, blended))
    return {"x": x, "t": np.asarray(digits["t"]).copy(),
            "y": np.arange(NUM_DIGITS * NUM_DIGITS)}


def coarse_labels(fine: np.ndarray) -> np.ndarray:
    """The coarse label (the first half's digit) of each fine label ``10 * i + j``."""
    return np.asarray(fine) // NUM_DIGITS
