"""DataBundle / Split, the registry, the digits and synthetic-cifar data sets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lcam.harness.data import (
    DataBundle,
    Normalization,
    Split,
    dataset_names,
    default_data_root,
    load_data,
)


def test_digits_has_the_fixed_stratified_1437_360_split() -> None:
    bundle = load_data("digits")
    assert (len(bundle.train), len(bundle.test)) == (1437, 360)
    assert bundle.train.inputs.shape == (1437, 1, 8, 8)
    assert bundle.train.inputs.dtype == torch.uint8
    assert int(bundle.train.inputs.max()) == 16
    # stratified: every class holds ~20% of its samples in the test split
    test_counts = bundle.test.targets.bincount(minlength=10)
    total_counts = test_counts + bundle.train.targets.bincount(minlength=10)
    assert torch.all((test_counts.float() / total_counts - 0.2).abs() < 0.01)
    # the split does not depend on the seed
    other = load_data("digits", seed=7)
    assert torch.equal(bundle.test.inputs, other.test.inputs)
    assert (bundle.augment, bundle.kind, bundle.num_classes) == ("none", "image", 10)


def test_digits_normalisation_comes_from_the_train_split() -> None:
    bundle = load_data("digits")
    x = bundle.normalization(bundle.train.inputs)
    assert bundle.normalization.scale == 1 / 16
    assert abs(x.mean().item()) < 1e-5
    assert abs(x.std(unbiased=False).item() - 1) < 1e-5


def test_synthetic_cifar_is_seeded_and_sized_by_options() -> None:
    a = load_data("synthetic-cifar", seed=3, train_size=64, test_size=16, num_classes=4)
    b = load_data("synthetic-cifar", seed=3, train_size=64, test_size=16, num_classes=4)
    c = load_data("synthetic-cifar", seed=4, train_size=64, test_size=16, num_classes=4)
    assert a.train.inputs.shape == (64, 3, 32, 32) and a.train.inputs.dtype == torch.uint8
    assert len(a.test) == 16 and a.num_classes == 4
    assert int(a.train.targets.max()) < 4
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(
        a.test.targets, b.test.targets
    )
    assert not torch.equal(a.train.inputs, c.train.inputs)
    assert a.augment == "crop-flip" and a.normalization.mean == (0.485, 0.456, 0.406)


def test_synthetic_classes_are_separable_by_their_templates() -> None:
    bundle = load_data("synthetic-cifar", train_size=200, test_size=100, num_classes=3)
    x = bundle.train.inputs.float().flatten(1)
    means = torch.stack([x[bundle.train.targets == k].mean(0) for k in range(3)])
    test = bundle.test.inputs.float().flatten(1)
    nearest = torch.cdist(test, means).argmin(1)
    assert (nearest == bundle.test.targets).float().mean() > 0.9


def test_subset_is_deterministic_and_keeps_original_order() -> None:
    bundle = load_data("synthetic-cifar", train_size=100, test_size=50)
    small = bundle.subset(train=10, test=5, seed=1)
    again = bundle.subset(train=10, test=5, seed=1)
    other = bundle.subset(train=10, test=5, seed=2)
    assert (len(small.train), len(small.test)) == (10, 5)
    assert torch.equal(small.train.inputs, again.train.inputs)
    assert not torch.equal(small.train.inputs, other.train.inputs)
    # the kept samples are samples of the original split, in their original order
    flat = bundle.train.inputs.flatten(1)
    positions = [int((flat == row).all(1).nonzero()[0]) for row in small.train.inputs.flatten(1)]
    assert positions == sorted(positions)
    assert bundle.subset(test=5).train is bundle.train
    assert small.name == bundle.name and small.normalization == bundle.normalization


def test_to_moves_both_splits() -> None:
    bundle = load_data("synthetic-cifar", train_size=8, test_size=4).to("meta")
    assert bundle.train.inputs.device.type == "meta" and bundle.test.targets.device.type == "meta"


def test_unknown_name_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="Unknown data set: 'cifar-10'") as info:
        load_data("cifar-10")
    for name in ("digits", "cifar10", "cifar100", "speechcommands", "synthetic-cifar"):
        assert name in str(info.value)
    assert set(dataset_names()) >= {"digits", "cifar10", "speechcommands"}


def test_unknown_option_lists_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match=r"\['train_sise'\].*train_size, test_size, num_classes"):
        load_data("synthetic-cifar", train_sise=10)


def test_default_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LCAM_DATA", "/somewhere/data")
    assert default_data_root() == Path("/somewhere/data")
    monkeypatch.delenv("LCAM_DATA")
    assert default_data_root() == Path("data")


def test_bundle_rejects_inconsistent_fields() -> None:
    good = load_data("synthetic-cifar", train_size=8, test_size=4)
    with pytest.raises(ValueError, match="per-sample shape"):
        replace(good, input_shape=(3, 16, 16))
    with pytest.raises(ValueError, match="targets outside"):
        replace(good, num_classes=1)
    with pytest.raises(ValueError, match="channel"):
        replace(good, normalization=Normalization(scale=1.0, mean=(0.0,), std=(1.0,)))
    with pytest.raises(ValueError, match="crop-flip"):
        DataBundle(
            name="audio",
            train=Split(
                torch.zeros((2, 1, 5), dtype=torch.int16), torch.zeros(2, dtype=torch.int64)
            ),
            test=Split(
                torch.zeros((2, 1, 5), dtype=torch.int16), torch.zeros(2, dtype=torch.int64)
            ),
            num_classes=1,
            input_shape=(1, 5),
            kind="audio",
            normalization=Normalization(scale=1.0, mean=(0.0,), std=(1.0,)),
            augment="crop-flip",
        )
    with pytest.raises(ValueError, match="int64"):
        Split(torch.zeros((2, 1)), torch.zeros(2, dtype=torch.int32))
