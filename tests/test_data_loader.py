"""BatchLoader: determinism from (seed, epoch), crop/flip, ranks, normalisation."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lcam.harness.data import (
    CROP_PADDING,
    BatchLoader,
    Normalization,
    Split,
    crop_flip,
)

IMAGENET = Normalization(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def images(count: int, seed: int = 0, size: int = 8) -> Split:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randint(1, 256, (count, 3, size, size), generator=generator, dtype=torch.uint8)
    return Split(inputs, torch.arange(count) % 10)


def loader(split: Split, **overrides: object) -> BatchLoader:
    options: dict[str, object] = dict(
        batch_size=4, shuffle=True, augment="crop-flip", normalize=IMAGENET, device="cpu", seed=0
    )
    options.update(overrides)
    return BatchLoader(split, **options)  # type: ignore[arg-type]


def batches(batch_loader: BatchLoader, epoch: int) -> list[tuple[Tensor, Tensor]]:
    return list(batch_loader.epoch(epoch))


def assert_same_batches(a: list[tuple[Tensor, Tensor]], b: list[tuple[Tensor, Tensor]]) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def naive_crop_flip(image: Tensor, dy: int, dx: int, flip: bool) -> Tensor:
    """Per-sample reference: zero pad, take the window, mirror it."""
    c, h, w = image.shape
    padded = torch.zeros((c, h + 2 * CROP_PADDING, w + 2 * CROP_PADDING), dtype=image.dtype)
    padded[:, CROP_PADDING : CROP_PADDING + h, CROP_PADDING : CROP_PADDING + w] = image
    window = padded[:, dy : dy + h, dx : dx + w]
    return window.flip(-1) if flip else window


def test_epoch_is_a_pure_function_of_seed_and_epoch() -> None:
    split = images(18)
    first = loader(split)
    for epoch in range(3):  # iterate epochs 0..2 on one loader
        batches(first, epoch)
    resumed = loader(split)  # a fresh loader jumping straight to epoch 3
    assert_same_batches(batches(first, 3), batches(resumed, 3))
    assert_same_batches(batches(first, 1), batches(first, 1))


def test_epochs_and_seeds_draw_different_orders_and_augmentations() -> None:
    split = images(64)
    base = loader(split).epoch_plan(0)
    for other in (loader(split).epoch_plan(1), loader(split, seed=1).epoch_plan(0)):
        assert not torch.equal(base.order, other.order)
        assert base.offsets is not None and other.offsets is not None
        assert not torch.equal(base.offsets, other.offsets)


def test_crop_flip_is_a_shifted_window_of_the_zero_padded_image() -> None:
    generator = torch.Generator().manual_seed(3)
    batch = torch.randint(0, 256, (40, 3, 6, 7), generator=generator, dtype=torch.uint8)
    offsets = torch.randint(0, 2 * CROP_PADDING + 1, (40, 2), generator=generator)
    flips = torch.randint(0, 2, (40,), generator=generator).bool()
    offsets[0], offsets[1], flips[:2] = torch.tensor([0, 0]), torch.tensor([8, 8]), True  # corners
    result = crop_flip(batch, offsets, flips)
    for n in range(len(batch)):
        expected = naive_crop_flip(batch[n], int(offsets[n, 0]), int(offsets[n, 1]), bool(flips[n]))
        assert torch.equal(result[n], expected), n


def test_loader_batches_equal_the_plan_applied_by_hand() -> None:
    split = images(10)
    batch_loader = loader(split, batch_size=4)
    plan = batch_loader.epoch_plan(2)
    assert plan.offsets is not None and plan.flips is not None
    positions = [(0, 4), (4, 8), (8, 10)]
    for (x, y), (lo, hi) in zip(batch_loader.epoch(2), positions, strict=True):
        expected = torch.stack(
            [
                naive_crop_flip(
                    split.inputs[int(plan.order[p])],
                    int(plan.offsets[p, 0]),
                    int(plan.offsets[p, 1]),
                    bool(plan.flips[p]),
                )
                for p in range(lo, hi)
            ]
        )
        assert torch.equal(x, IMAGENET(expected))
        assert torch.equal(y, split.targets[plan.order[lo:hi]])


def test_augmentation_draws_cover_all_offsets_and_flip_half_the_time() -> None:
    plan = loader(images(4000, size=2)).epoch_plan(0)
    assert plan.offsets is not None and plan.flips is not None
    assert set(plan.offsets.flatten().tolist()) == set(range(2 * CROP_PADDING + 1))
    assert abs(plan.flips.float().mean().item() - 0.5) < 0.03
    assert sorted(plan.order.tolist()) == list(range(4000))


@pytest.mark.parametrize(
    ("size", "batch_size", "world_size"), [(16, 8, 2), (11, 4, 2), (9, 4, 2), (13, 6, 3)]
)
def test_rank_slices_concatenate_to_the_single_rank_batch(
    size: int, batch_size: int, world_size: int
) -> None:
    split = images(size)
    single = batches(loader(split, batch_size=batch_size), 1)
    per_rank = [
        batches(loader(split, batch_size=batch_size, rank=r, world_size=world_size), 1)
        for r in range(world_size)
    ]
    assert all(len(b) == len(single) for b in per_rank)
    for k, (x, y) in enumerate(single):
        assert torch.equal(torch.cat([per_rank[r][k][0] for r in range(world_size)]), x)
        assert torch.equal(torch.cat([per_rank[r][k][1] for r in range(world_size)]), y)
    # full batches split evenly
    assert len(per_rank[0][0][1]) == batch_size // world_size


def test_partial_last_batch_is_kept_or_dropped() -> None:
    split = images(10)
    kept = loader(split, batch_size=4)
    assert len(kept) == 3
    assert [len(y) for _, y in kept.epoch(0)] == [4, 4, 2]
    dropped = loader(split, batch_size=4, drop_last=True)
    assert len(dropped) == 2
    assert [len(y) for _, y in dropped.epoch(0)] == [4, 4]
    # every sample once per epoch without drop_last
    assert sorted(torch.cat([y for _, y in kept.epoch(5)]).tolist()) == sorted(
        split.targets.tolist()
    )


def test_normalisation_values() -> None:
    inputs = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).repeat(2, 1, 1, 1)
    split = Split(inputs, torch.tensor([0, 1]))
    ((x, _),) = loader(split, shuffle=False, augment="none", batch_size=2).epoch(0)
    expected = torch.tensor([(0 - 0.485) / 0.229, (0.2 - 0.456) / 0.224, (1 - 0.406) / 0.225])
    assert x.dtype == torch.float32
    torch.testing.assert_close(x[0].flatten(), expected, rtol=1e-6, atol=1e-6)


def test_unshuffled_unaugmented_loader_returns_the_split_in_order() -> None:
    split = images(7)
    batch_loader = loader(split, shuffle=False, augment="none", normalize=None, batch_size=3)
    x = torch.cat([x for x, _ in batch_loader.epoch(4)])
    assert torch.equal(x, split.inputs.float())


def test_audio_batches_are_int16_over_32768() -> None:
    inputs = torch.tensor([[-32768, 0, 16384, 32767]], dtype=torch.int16).view(1, 1, 4)
    split = Split(inputs, torch.tensor([0]))
    norm = Normalization(scale=1 / 32768, mean=(0.0,), std=(1.0,))
    ((x, _),) = loader(split, augment="none", normalize=norm, batch_size=1).epoch(0)
    assert torch.equal(x, torch.tensor([[[-1.0, 0.0, 0.5, 32767 / 32768]]]))


def test_channels_last_only_changes_the_memory_format() -> None:
    split = images(4)
    plain, _ = next(loader(split).epoch(0))
    cl, _ = next(loader(split, channels_last=True).epoch(0))
    assert cl.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(plain, cl)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 5, "world_size": 2}, "divisible"),
        ({"rank": 2, "world_size": 2}, "rank"),
        ({"augment": "flip"}, "augment"),
        ({"batch_size": 20, "drop_last": True}, "no batches"),
    ],
)
def test_invalid_arguments_are_rejected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        loader(images(8), **overrides)


def test_crop_flip_needs_image_batches() -> None:
    audio = Split(torch.zeros((4, 1, 100), dtype=torch.int16), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="N, C, H, W"):
        loader(audio)
