"""Batches drawn from an in-memory :class:`~lcam.harness.data.bundle.Split`.

:class:`BatchLoader` follows airbench's ``CifarLoader``: the split stays on the
training device in its stored integer form; each batch is gathered with one
``index_select``, augmented with batched tensor ops and normalised to ``float32``.

Determinism without saved state
    Everything random about epoch ``e`` (the sample order and every crop offset and
    flip) is drawn at the start of the epoch from a CPU ``torch.Generator`` seeded
    from ``(seed, e)`` alone (:func:`epoch_seed`). A run resumed at an epoch boundary
    therefore replays exactly, with no RNG state in the checkpoint, and the draws do
    not depend on the device.

Global batches and ranks
    ``batch_size`` is the *global* batch. Positions ``[k*B, (k+1)*B)`` of the epoch
    order form global batch ``k``; the random augmentation is drawn per position for
    the whole epoch, and rank ``r`` of ``W`` receives part ``r`` of
    ``torch.tensor_split(global_batch, W)``, which for a full batch is the contiguous
    slice ``[r*B/W, (r+1)*B/W)``. A 2-rank run with ``B/2`` per rank thus sees exactly
    the samples and augmentations of a 1-rank run with ``B``.

The last partial batch
    When ``len(split)`` is not a multiple of ``batch_size``, the last global batch is
    smaller; with ``drop_last=False`` it is yielded (every sample is seen once per
    epoch), with ``drop_last=True`` it is skipped. With ``W`` ranks the partial batch
    is split into ``W`` contiguous parts whose sizes differ by at most one, so all
    ranks yield the same number of batches (``len(loader)``), which collective
    operations need. If the partial batch has fewer than ``W`` samples some ranks get
    an empty batch: evaluate with sum reductions, and train with ``drop_last=True``
    (or a batch count that divides) when ``W > 1``.

Augmentation ``"crop-flip"``
    As ``RandomCrop(size, padding=4)`` (zero padding) followed by
    ``RandomHorizontalFlip(p=0.5)`` on the stored values: each image is zero padded by
    4 pixels on every side, an ``H x W`` window at a uniform offset in ``[0, 8]^2`` is
    taken and mirrored left-right with probability 1/2; see :func:`crop_flip`.
    Padding happens before normalisation, so padded pixels are stored-value 0, as in
    the torchvision pipeline (crop, flip, ``ToTensor``, ``Normalize``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lcam.harness.data.bundle import AUGMENTATIONS, Augment, Normalization, Split

CROP_PADDING = 4
"""Zero padding (pixels, every side) of the ``"crop-flip"`` augmentation."""


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit generator seed that depends only on ``(seed, epoch)``."""
    digest = hashlib.blake2b(f"lcam-batches:{seed}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def crop_flip(
    images: Tensor, offsets: Tensor, flips: Tensor, padding: int = CROP_PADDING
) -> Tensor:
    """Crop-and-flip a batch with one gather, no per-sample Python.

    Args:
        images: ``N, C, H, W`` (any dtype).
        offsets: ``N, 2`` integer (row, column) offsets in ``[0, 2 * padding]`` of the
            ``H x W`` window inside the zero-padded ``H + 2p, W + 2p`` image.
        flips: ``N`` booleans; ``True`` mirrors the window left-right.

    Returns:
        ``N, C, H, W`` with ``out[n, c, i, j] = padded[n, c, dy + i, dx + j]``, or
        ``padded[n, c, dy + i, dx + W - 1 - j]`` where ``flips[n]``.
    """
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    padded_height, padded_width = h + 2 * padding, w + 2 * padding
    offsets = offsets.to(device=images.device, dtype=torch.int64)
    flips = flips.to(device=images.device, dtype=torch.bool)
    rows = offsets[:, 0:1] + torch.arange(h, device=images.device)  # N, H
    columns = torch.arange(w, device=images.device).expand(n, w)
    columns = torch.where(flips[:, None], w - 1 - columns, columns) + offsets[:, 1:2]  # N, W
    flat = (rows[:, :, None] * padded_width + columns[:, None, :]).view(n, 1, h * w)
    gathered = padded.reshape(n, c, padded_height * padded_width).gather(
        2, flat.expand(n, c, h * w)
    )
    return gathered.view(n, c, h, w)


@dataclass(frozen=True)
class EpochPlan:
    """The random draws of one epoch, indexed by position in the epoch order.

    ``order[p]`` is the sample at position ``p``; ``offsets[p]`` / ``flips[p]`` its
    crop offset and flip (``None`` without augmentation). Tensors live on the
    loader's device.
    """

    order: Tensor
    offsets: Tensor | None
    flips: Tensor | None


class BatchLoader:
    """Iterate one split in (optionally shuffled and augmented) normalised batches.

    Args:
        split: the data; moved to ``device`` once, here.
        batch_size: the global batch size (all ranks together); must be divisible
            by ``world_size``.
        shuffle: draw a new sample order every epoch (otherwise the stored order).
        augment: ``"crop-flip"`` or ``"none"``.
        normalize: maps stored values to ``float32`` inputs; ``None`` only converts.
        device: where the split lives and batches are produced.
        seed: with the epoch number, the only source of randomness.
        drop_last: skip the last global batch when it is partial.
        rank, world_size: this process's share of every global batch.
        channels_last: return 4-D batches in ``torch.channels_last`` memory format.

    Example:
        >>> loader = BatchLoader(bundle.train, batch_size=128, shuffle=True,
        ...                      augment=bundle.augment, normalize=bundle.normalization,
        ...                      device="cpu", seed=0)
        >>> for x, y in loader.epoch(0):
        ...     loss = criterion(model(x), y)
    """

    def __init__(
        self,
        split: Split,
        *,
        batch_size: int,
        shuffle: bool,
        augment: Augment,
        normalize: Normalization | None,
        device: torch.device | str,
        seed: int,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"Invalid batch_size: {batch_size} (must be >= 1)")
        if world_size < 1:
            raise ValueError(f"Invalid world_size: {world_size} (must be >= 1)")
        if not 0 <= rank < world_size:
            raise ValueError(f"Invalid rank: {rank} (must be in [0, {world_size}))")
        if batch_size % world_size:
            raise ValueError(
                f"Invalid batch_size: {batch_size} (the global batch must be divisible "
                f"by world_size={world_size})"
            )
        if augment not in AUGMENTATIONS:
            raise ValueError(f"Invalid augment: {augment!r} (must be one of {AUGMENTATIONS})")
        if augment == "crop-flip" and split.inputs.dim() != 4:
            raise ValueError(
                "crop-flip augmentation needs N, C, H, W inputs, got shape "
                f"{tuple(split.inputs.shape)}"
            )
        if len(split) == 0:
            raise ValueError("Cannot load batches from an empty split")
        if drop_last and len(split) < batch_size:
            raise ValueError(
                f"drop_last=True with batch_size={batch_size} > {len(split)} samples "
                "would yield no batches"
            )
        self.device = torch.device(device)
        self.split = split.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.normalize = normalize
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.channels_last = channels_last

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        full, rest = divmod(len(self.split), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def epoch_plan(self, epoch: int) -> EpochPlan:
        """The order and augmentation of ``epoch``: a pure function of ``(seed, epoch)``."""
        if epoch < 0:
            raise ValueError(f"Invalid epoch: {epoch} (must be >= 0)")
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        size = len(self.split)
        order = torch.randperm(size, generator=generator) if self.shuffle else torch.arange(size)
        offsets: Tensor | None = None
        flips: Tensor | None = None
        if self.augment == "crop-flip":
            offsets = torch.randint(0, 2 * CROP_PADDING + 1, (size, 2), generator=generator)
            flips = torch.randint(0, 2, (size,), generator=generator).bool()
            offsets, flips = offsets.to(self.device), flips.to(self.device)
        return EpochPlan(order.to(self.device), offsets, flips)

    def rank_positions(self, batch: int) -> tuple[int, int]:
        """Epoch positions ``[start, stop)`` of this rank's part of global batch ``batch``."""
        start = batch * self.batch_size
        size = min(self.batch_size, len(self.split) - start)
        base, extra = divmod(size, self.world_size)
        lo = start + self.rank * base + min(self.rank, extra)
        return lo, lo + base + (1 if self.rank < extra else 0)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield this rank's ``(inputs, targets)`` batches of ``epoch``, from batch ``start``.

        ``inputs`` are ``float32`` (normalised if ``normalize`` was given), ``targets``
        ``int64``, both on the loader's device. ``start > 0`` skips the first batches
        without building them (a run resumed in the middle of an epoch): batch ``k`` is
        the same whatever ``start`` is.
        """
        if not 0 <= start <= len(self):
            raise ValueError(f"Invalid start: {start} (must be in [0, {len(self)}])")
        plan = self.epoch_plan(epoch)
        for batch in range(start, len(self)):
            lo, hi = self.rank_positions(batch)
            indices = plan.order[lo:hi]
            inputs = self.split.inputs.index_select(0, indices)
            if plan.offsets is not None and plan.flips is not None:
                inputs = crop_flip(inputs, plan.offsets[lo:hi], plan.flips[lo:hi])
            x = self.normalize(inputs) if self.normalize is not None else inputs.float()
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.split.targets.index_select(0, indices)
