"""MNIST-1D: the published split bit for bit, the cache, the global RNG, a missing package."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lcam.harness.data import DatasetDependencyError, DatasetError, load_data
from lcam.harness.data import mnist1d as mnist1d_module

mnist1d = pytest.importorskip("mnist1d", reason="needs the mnist1d package (lcam[harness])")


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A data root holding the cache of the default split, and the generator's own arrays."""
    from mnist1d.data import get_dataset_args, make_dataset

    root = tmp_path_factory.mktemp("mnist1d-root")
    load_data("mnist1d", root=root)  # generates and caches
    return root, make_dataset(get_dataset_args())


def test_arrays_equal_the_published_split_bit_for_bit(
    published: tuple[Path, dict[str, np.ndarray]],
) -> None:
    root, reference = published
    for use_cache in (True, False):
        bundle = load_data("mnist1d", root=root, cache=use_cache)
        assert (len(bundle.train), len(bundle.test)) == (4000, 1000)
        assert bundle.input_shape == (1, 40) and bundle.kind == "signal"
        assert bundle.train.inputs.dtype == torch.float64
        assert np.array_equal(bundle.train.inputs[:, 0].numpy(), reference["x"])
        assert np.array_equal(bundle.test.inputs[:, 0].numpy(), reference["x_test"])
        assert np.array_equal(bundle.train.targets.numpy(), reference["y"])
        assert np.array_equal(bundle.test.targets.numpy(), reference["y_test"])
    # The normalisation is the identity: the network sees the generator's values.
    batch = bundle.normalization(bundle.train.inputs[:4])
    assert torch.equal(batch, bundle.train.inputs[:4].to(torch.float32))


def test_a_cache_hit_does_not_run_the_generator(
    published: tuple[Path, dict[str, np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, reference = published
    path = mnist1d_module.cache_path(root)
    assert path.parent == root / "mnist1d" and path.is_file()

    def refuse(arguments: object) -> None:
        raise AssertionError("the generator ran on a cache hit")

    monkeypatch.setattr(mnist1d_module, "make_arrays", refuse)
    bundle = load_data("mnist1d", root=root)
    assert np.array_equal(bundle.test.inputs[:, 0].numpy(), reference["x_test"])


def test_the_cache_key_covers_the_options_and_the_package_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = {mnist1d_module.cache_path(tmp_path),
             mnist1d_module.cache_path(tmp_path, num_samples=50000),
             mnist1d_module.cache_path(tmp_path, train_split=0.5),
             mnist1d_module.cache_path(tmp_path, generator_seed=0)}
    assert len(paths) == 4
    before = mnist1d_module.cache_path(tmp_path)
    monkeypatch.setattr(mnist1d_module, "_package_version", lambda: "99.0")
    assert mnist1d_module.cache_path(tmp_path) != before


def test_an_unreadable_cache_is_regenerated(tmp_path: Path) -> None:
    path = mnist1d_module.cache_path(tmp_path, num_samples=100)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="ignoring unreadable cache"):
        bundle = load_data("mnist1d", root=tmp_path, num_samples=100)
    assert (len(bundle.train), len(bundle.test)) == (80, 20)
    assert mnist1d_module.load_tensor_cache(path, "test") is not None  # rewritten


@pytest.mark.parametrize("use_cache_file", [False, True])
def test_generation_leaves_the_global_random_states_unchanged(
    tmp_path: Path, use_cache_file: bool
) -> None:
    if use_cache_file:
        load_data("mnist1d", root=tmp_path, num_samples=100)
    np.random.seed(1234)
    random.seed(1234)
    expected = (np.random.rand(3).tolist(), random.random())
    np.random.seed(1234)
    random.seed(1234)
    load_data("mnist1d", root=tmp_path, num_samples=100, cache=use_cache_file)
    assert (np.random.rand(3).tolist(), random.random()) == expected


def test_an_independent_draw_differs_from_the_published_data(tmp_path: Path) -> None:
    a = load_data("mnist1d", root=tmp_path, num_samples=100)
    b = load_data("mnist1d", root=tmp_path, num_samples=100, generator_seed=0)
    assert not torch.equal(a.train.inputs, b.train.inputs)


@pytest.mark.parametrize(("options", "message"), [
    ({"num_samples": 5}, "Invalid num_samples for mnist1d: 5 (an integer >= 20)"),
    ({"train_split": 1.0}, "Invalid train_split for mnist1d: 1.0 (must be in (0, 1))"),
    ({"generator_seed": -1}, "Invalid generator_seed for mnist1d: -1 (an integer >= 0)"),
])
def test_bad_options_are_rejected_before_anything_is_written(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_data("mnist1d", root=tmp_path, **options)
    assert not any(tmp_path.iterdir())


def test_a_missing_package_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mnist1d", None)  # import mnist1d raises ImportError
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(DatasetDependencyError, match=r"pip install 'lcam\[harness\]'") as error:
        load_data("mnist1d", root=tmp_path, cache=False)
    assert isinstance(error.value, DatasetError) and isinstance(error.value, ImportError)
