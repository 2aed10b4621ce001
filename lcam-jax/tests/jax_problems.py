"""Small generated problems shared by the lcam-jax tests."""

from __future__ import annotations

import numpy as np


def random_tree(rng: np.random.Generator, dtype: type = np.float32) -> dict[str, np.ndarray]:
    """A small parameter-shaped tree: a matrix, a vector and a 3-d tensor."""
    return {
        "w": rng.standard_normal((4, 3)).astype(dtype),
        "b": rng.standard_normal((3,)).astype(dtype),
        "k": rng.standard_normal((2, 2, 3)).astype(dtype),
    }
