"""The in-memory representation of a data set: :class:`Split` and :class:`DataBundle`.

A whole data set is two tensors per split, kept in their stored integer form (images
``uint8`` ``N, C, H, W``; audio ``int16`` ``N, 1, T``) so that it fits on the
training device: CIFAR-10's 50,000 training images take 150 MB as ``uint8`` against
600 MB as ``float32``. Batches are converted to ``float32`` only when they are drawn
(:class:`~lcam.harness.data.loader.BatchLoader`), with :class:`Normalization`:

    x_float = (x_stored * scale - mean[c]) / std[c]

``scale`` maps the stored integers to the unit range (``1/255`` for 8-bit images,
``1/32768`` for 16-bit audio); ``mean`` and ``std`` are per channel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import Tensor

Kind = Literal["image", "audio", "signal"]
Augment = Literal["crop-flip", "none"]

KINDS: tuple[str, ...] = ("image", "audio", "signal")
AUGMENTATIONS: tuple[str, ...] = ("crop-flip", "none")


@dataclass(frozen=True)
class Normalization:
    """Maps stored values to network inputs: ``(x * scale - mean[c]) / std[c]``."""

    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"Invalid normalization scale: {self.scale} (must be > 0)")
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"Normalization mean and std differ in length: {len(self.mean)} != {len(self.std)}"
            )
        if any(not s > 0 for s in self.std):
            raise ValueError(f"Invalid normalization std: {self.std} (all must be > 0)")

    def __call__(self, x: Tensor) -> Tensor:
        """Return ``x`` (``N, C, ...``, any real dtype) normalised as ``float32``."""
        channels = x.shape[1]
        if channels != len(self.mean):
            raise ValueError(
                f"Normalization has {len(self.mean)} channel(s) but the batch has {channels}"
            )
        mean, std = _channel_tensors(self.mean, self.std, x.device, x.dim())
        return (x.to(torch.float32) * self.scale - mean) / std


@functools.lru_cache(maxsize=32)
def _channel_tensors(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device, dims: int
) -> tuple[Tensor, Tensor]:
    """``mean`` and ``std`` as ``1, C, 1, ...`` float32 tensors on ``device`` (cached:
    building them per batch would cost a host-to-device copy every step)."""
    view = (1, len(mean)) + (1,) * (dims - 2)
    return (
        torch.tensor(mean, dtype=torch.float32, device=device).view(view),
        torch.tensor(std, dtype=torch.float32, device=device).view(view),
    )


@dataclass(frozen=True)
class Split:
    """One split of a data set: ``inputs`` (``N, ...``) and ``targets`` (``int64``, ``N``)."""

    inputs: Tensor
    targets: Tensor

    def __post_init__(self) -> None:
        if self.targets.dtype != torch.int64 or self.targets.dim() != 1:
            raise ValueError(
                "Split targets must be a 1-D int64 tensor, got "
                f"{self.targets.dtype} with shape {tuple(self.targets.shape)}"
            )
        if self.inputs.dim() < 2 or len(self.inputs) != len(self.targets):
            raise ValueError(
                f"Split inputs {tuple(self.inputs.shape)} do not match {len(self.targets)} targets"
            )
        if self.inputs.device != self.targets.device:
            raise ValueError(
                f"Split inputs on {self.inputs.device} but targets on {self.targets.device}"
            )

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def to(self, device: torch.device | str) -> Split:
        """Return the split on ``device`` (``self`` when it is already there)."""
        device = torch.device(device)
        if self.inputs.device == device and self.targets.device == device:
            return self
        return Split(self.inputs.to(device), self.targets.to(device))

    def take(self, indices: Tensor) -> Split:
        """Return the samples at ``indices`` (in that order)."""
        indices = indices.to(self.inputs.device)
        return Split(self.inputs[indices], self.targets[indices])


def _subset_indices(size: int, keep: int, seed: int) -> Tensor:
    """The first ``keep`` entries of a seeded permutation of ``range(size)``, sorted."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(size, generator=generator)[:keep].sort().values


@dataclass(frozen=True)
class DataBundle:
    """A data set held in memory, with what the harness needs to train on it.

    Attributes:
        name: registry name (``"cifar10"``) or a user's own.
        train, test: the two splits.
        num_classes: number of classes; targets are in ``[0, num_classes)``.
        input_shape: the per-sample shape, e.g. ``(3, 32, 32)`` or ``(1, 8000)``.
        kind: ``"image"``, ``"audio"`` or ``"signal"`` (a 1-D sequence, ``C, T``).
        normalization: how stored values become network inputs.
        augment: training augmentation, ``"crop-flip"`` (4-pixel zero padding, random
            crop back to the input size, horizontal flip with p=0.5) or ``"none"``.
        class_names: optional label names, index = class.

    Construction checks that the fields agree (shapes, channels, and for CPU tensors
    the target range) and raises ``ValueError`` otherwise.
    """

    name: str
    train: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    kind: Kind
    normalization: Normalization
    augment: Augment
    class_names: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Invalid data kind: {self.kind!r} (must be one of {KINDS})")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(
                f"Invalid augmentation: {self.augment!r} (must be one of {AUGMENTATIONS})"
            )
        if self.augment == "crop-flip" and len(self.input_shape) != 3:
            raise ValueError(
                f"crop-flip augmentation needs C, H, W inputs, got input_shape {self.input_shape}"
            )
        if self.num_classes < 1:
            raise ValueError(f"Invalid num_classes: {self.num_classes} (must be >= 1)")
        for split_name, split in (("train", self.train), ("test", self.test)):
            if tuple(split.inputs.shape[1:]) != tuple(self.input_shape):
                raise ValueError(
                    f"{self.name}: {split_name} inputs have per-sample shape "
                    f"{tuple(split.inputs.shape[1:])}, expected {tuple(self.input_shape)}"
                )
            # Value checks only on the CPU: on an accelerator they would synchronise.
            on_cpu = split.targets.device.type == "cpu"
            if (
                on_cpu
                and len(split)
                and not 0 <= split.targets.min() <= split.targets.max() < (self.num_classes)
            ):
                raise ValueError(
                    f"{self.name}: {split_name} targets outside [0, {self.num_classes})"
                )
        if len(self.normalization.mean) != self.input_shape[0]:
            raise ValueError(
                f"{self.name}: normalization has {len(self.normalization.mean)} channel(s), "
                f"inputs have {self.input_shape[0]}"
            )
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{self.name}: {len(self.class_names)} class names for {self.num_classes} classes"
            )

    def to(self, device: torch.device | str) -> DataBundle:
        """Return the bundle with both splits on ``device``."""
        return replace(self, train=self.train.to(device), test=self.test.to(device))

    def subset(
        self, *, train: int | None = None, test: int | None = None, seed: int = 0
    ) -> DataBundle:
        """Return a bundle with at most ``train`` / ``test`` samples (``None``: all).

        The samples kept are a seeded random choice (not stratified), in their original
        order; the same arguments always keep the same samples. Meant for smoke runs.
        """
        splits: dict[str, Split] = {}
        for split_name, split, keep, offset in (
            ("train", self.train, train, 0),
            ("test", self.test, test, 1),
        ):
            if keep is None or keep >= len(split):
                splits[split_name] = split
                continue
            if keep < 1:
                raise ValueError(f"Invalid subset size {split_name}={keep} (must be >= 1)")
            splits[split_name] = split.take(_subset_indices(len(split), keep, 2 * seed + offset))
        return replace(self, train=splits["train"], test=splits["test"])


def channel_statistics(inputs: Tensor, scale: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``inputs * scale`` over all samples and positions."""
    values = inputs.to(torch.float64).transpose(0, 1).reshape(inputs.shape[1], -1) * scale
    mean = values.mean(dim=1)
    std = values.std(dim=1, unbiased=False)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)
