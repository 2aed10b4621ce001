"""``synthetic-cifar``: random CIFAR-shaped data for benchmarks and smoke tests.

Same shapes, dtype, normalisation and augmentation as ``cifar10`` (``uint8
N, 3, 32, 32``, ImageNet mean/std, ``"crop-flip"``), generated from a CPU
``torch.Generator`` seeded with ``seed``, so it needs no files and costs nothing to
obtain. Each class has a random template image; a sample is the mean of its class's
template and uniform noise, so a network can learn the task (a smoke run shows the
loss going down) but it says nothing about real accuracy. Sizes are options:
``load_data("synthetic-cifar", train_size=512, test_size=256)``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lcam.harness.data.bundle import DataBundle, Normalization, Split
from lcam.harness.data.cifar import IMAGENET_MEAN, IMAGENET_STD

SHAPE = (3, 32, 32)


def _generate(size: int, templates: torch.Tensor, generator: torch.Generator) -> Split:
    targets = torch.randint(0, len(templates), (size,), generator=generator)
    noise = torch.randint(0, 256, (size, *SHAPE), generator=generator, dtype=torch.int16)
    inputs = ((templates[targets] + noise) // 2).to(torch.uint8)
    return Split(inputs, targets)


def load_synthetic_cifar(
    *,
    root: Path,
    seed: int,
    train_size: int = 50_000,
    test_size: int = 10_000,
    num_classes: int = 10,
) -> DataBundle:
    """Generate the synthetic bundle; the same arguments give the same tensors."""
    for option, value in (("train_size", train_size), ("test_size", test_size)):
        if value < 1:
            raise ValueError(f"Invalid {option}: {value} (must be >= 1)")
    if num_classes < 2:
        raise ValueError(f"Invalid num_classes: {num_classes} (must be >= 2)")
    generator = torch.Generator().manual_seed(seed)
    templates = torch.randint(0, 256, (num_classes, *SHAPE), generator=generator, dtype=torch.int16)
    train = _generate(train_size, templates, generator)
    test = _generate(test_size, templates, generator)
    return DataBundle(
        name="synthetic-cifar",
        train=train,
        test=test,
        num_classes=num_classes,
        input_shape=SHAPE,
        kind="image",
        normalization=Normalization(scale=1 / 255, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        augment="crop-flip",
    )
