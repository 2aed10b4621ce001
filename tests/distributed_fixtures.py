"""Data and models for the distributed tests, given to ``lcam train`` as references.

``--data distributed_fixtures:blobs`` and ``--model distributed_fixtures:mlp64`` (with
``tests/`` on ``PYTHONPATH``) run the real CLI on data that costs nothing to build.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from lcam.harness.data import DataBundle, Normalization, Split

SHAPE = (1, 8, 8)


def blobs(
    *, root: Path, seed: int, train_size: int = 203, test_size: int = 101, classes: int = 10
) -> DataBundle:
    """Noisy copies of one random 8 x 8 template per class, uint8, with crop-flip.

    The data do not depend on ``seed`` (every run of a test sees the same images); the
    default train size leaves a last batch of 11 samples at batch 64, which two ranks
    split unequally (6 + 5).
    """
    generator = torch.Generator().manual_seed(1234)
    templates = torch.randint(0, 256, (classes, *SHAPE), generator=generator, dtype=torch.int16)

    def split(size: int) -> Split:
        targets = torch.randint(0, classes, (size,), generator=generator)
        noise = torch.randint(0, 256, (size, *SHAPE), generator=generator, dtype=torch.int16)
        return Split(((templates[targets] + 2 * noise) // 3).to(torch.uint8), targets)

    train = split(train_size)
    return DataBundle(name="blobs", train=train, test=split(test_size), num_classes=classes,
                      input_shape=SHAPE, kind="image",
                      normalization=Normalization(1 / 255, (0.5,), (0.25,)),
                      augment="crop-flip")


class Float64MLP(nn.Module):
    """A two-layer perceptron without BatchNorm that computes in float64."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        features = 1
        for size in input_shape:
            features *= size
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.Tanh(),
                                    nn.Linear(hidden, num_classes)).double()

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.double())


def mlp64(*, num_classes: int, input_shape: tuple[int, ...], hidden: int = 32) -> nn.Module:
    """:class:`Float64MLP` (the model builder the harness calls)."""
    return Float64MLP(num_classes, input_shape, hidden)
