"""Shared fixtures of the lcam-jax tests.

``jax_enable_x64`` is switched on only inside the tests that ask for the ``x64``
fixture, so the rest run in JAX's default precision, as users do.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import pytest


@pytest.fixture
def x64() -> Iterator[None]:
    with jax.enable_x64(True):
        yield

