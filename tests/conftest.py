"""Shared pytest configuration: the hypothesis profiles of the property-based tests.

``ci`` (the default) keeps the fuzz tests (tests/test_fuzz_*.py) within about 40 s on 2
cores and is reproducible (derandomized, no example database). ``long`` runs many more,
random examples: ``HYPOTHESIS_PROFILE=long pytest tests/test_fuzz_optimizer.py`` or
``pytest --hypothesis-profile=long ...``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=2000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
