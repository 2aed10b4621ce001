"""A model for the signal tests, given to ``lcam train`` as a reference (``tests/`` on
``PYTHONPATH``): ``--model signal_fixtures:slow_mlp`` trains a small MLP whose training
steps each take ``$LCAM_TEST_STEP_SECONDS`` (default 0) longer, so a test can signal a
process in the middle of a step."""

from __future__ import annotations

import os
import time

from torch import Tensor, nn


class SlowMLP(nn.Module):
    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        features = 1
        for size in input_shape:
            features *= size
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes))
        self.seconds = float(os.environ.get("LCAM_TEST_STEP_SECONDS", "0"))

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.seconds:
            time.sleep(self.seconds)
        return self.layers(x)


def slow_mlp(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """:class:`SlowMLP` (the model builder the harness calls)."""
    return SlowMLP(num_classes, input_shape)
