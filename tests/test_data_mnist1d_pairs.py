"""MNIST-1D with 100 two-digit templates (mnist1d-100) and its coarse labels.

The templates are deterministic functions of the generator's ten digits; the data
set is the generator run on them (bit for bit); the coarse variant has the very same
inputs; classes are balanced; the global random states are untouched.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from lcam.harness.data import load_data
from lcam.harness.data import mnist1d as mnist1d_module
from lcam.harness.data.mnist1d_pairs import blend_weights, coarse_labels, pair_templates

mnist1d = pytest.importorskip("mnist1d", reason="needs the mnist1d package (lcam[harness])")

SAMPLES = 2000  # 20 signals of each of the 100 templates


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mnist1d-pairs-root")


def test_templates_join_two_halves_and_keep_the_digits_on_the_diagonal() -> None:
    from mnist1d.data import get_templates

    digits = get_templates()
    pairs = pair_templates(digits)
    assert pairs["x"].shape == (100, 12) and list(pairs["y"]) == list(range(100))
    assert np.array_equal(pairs["t"], digits["t"])
    w = blend_weights(12)
    assert list(w) == [0, 0, 0, 0, 0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1]
    for i in range(10):
        assert np.array_equal(pairs["x"][11 * i], digits["x"][i])  # (i, i) is digit i
        for j in range(10):
            row = pairs["x"][10 * i + j]
            assert np.array_equal(row[:4], digits["x"][i][:4])  # first half: digit i
            assert np.array_equal(row[8:], digits["x"][j][8:])  # second half: digit j
            expected = digits["x"][i] + w * (digits["x"][j] - digits["x"][i])
            assert np.array_equal(row[4:8], expected[4:8])
    # Deterministic, and all 100 templates differ from each other.
    assert np.array_equal(pair_templates(digits)["x"], pairs["x"])
    assert len({row.tobytes() for row in pairs["x"]}) == 100
    assert list(coarse_labels(np.array([0, 9, 10, 57, 99]))) == [0, 0, 1, 5, 9]


def test_blend_weights_reject_an_impossible_blend() -> None:
    with pytest.raises(ValueError, match="cannot blend over 5 points"):
        blend_weights(12, 5)


def test_the_data_set_is_the_generator_run_on_the_pair_templates(root: Path) -> None:
    from mnist1d.data import get_dataset_args, get_templates, make_dataset

    args = get_dataset_args()
    args.num_samples = SAMPLES
    reference = make_dataset(args, template=pair_templates(get_templates()))
    for use_cache in (False, True, True):  # generate, write the cache, read it
        bundle = load_data("mnist1d", root=root, num_samples=SAMPLES, templates="pairs",
                           cache=use_cache)
        assert bundle.num_classes == 100 and len(bundle.class_names) == 100
        assert np.array_equal(bundle.train.inputs[:, 0].numpy(), reference["x"])
        assert np.array_equal(bundle.test.inputs[:, 0].numpy(), reference["x_test"])
        assert np.array_equal(bundle.train.targets.numpy(), reference["y"])
        assert np.array_equal(bundle.test.targets.numpy(), reference["y_test"])
    assert mnist1d_module.cache_path(root, SAMPLES, templates="pairs").is_file()


def test_every_class_has_the_same_number_of_signals(root: Path) -> None:
    fine = load_data("mnist1d", root=root, num_samples=SAMPLES, templates="pairs")
    labels = torch.cat([fine.train.targets, fine.test.targets])
    assert torch.equal(torch.bincount(labels, minlength=100), torch.full((100,), 20))
    assert (len(fine.train), len(fine.test)) == (1600, 400)
    coarse = load_data("mnist1d", root=root, num_samples=SAMPLES, templates="pairs",
                       labels="coarse")
    labels = torch.cat([coarse.train.targets, coarse.test.targets])
    assert coarse.num_classes == 10
    assert torch.equal(torch.bincount(labels, minlength=10), torch.full((10,), 200))


def test_the_coarse_variant_has_the_fine_inputs_and_the_first_digit_as_label(root: Path) -> None:
    fine = load_data("mnist1d", root=root, num_samples=SAMPLES, templates="pairs")
    coarse = load_data("mnist1d", root=root, num_samples=SAMPLES, templates="pairs",
                       labels="coarse")
    for a, b in ((fine.train, coarse.train), (fine.test, coarse.test)):
        assert torch.equal(a.inputs, b.inputs)
        assert torch.equal(b.targets, a.targets // 10)
        assert b.targets.dtype == torch.int64


def test_generation_leaves_the_global_random_states_unchanged(tmp_path: Path) -> None:
    np.random.seed(7)
    random.seed(7)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    load_data("mnist1d", root=tmp_path, num_samples=500, templates="pairs", cache=False)
    after = np.random.get_state()
    assert np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]
    assert random.getstate() == python_state


def test_pairs_and_digits_never_share_a_cache_file(root: Path) -> None:
    digits = mnist1d_module.cache_path(root, SAMPLES)
    pairs = mnist1d_module.cache_path(root, SAMPLES, templates="pairs")
    assert digits != pairs and digits.parent == pairs.parent


@pytest.mark.parametrize(("options", "message"), [
    ({"templates": "letters"}, "Invalid templates for mnist1d: 'letters'"),
    ({"labels": "fine-grained"}, "Invalid labels for mnist1d: 'fine-grained'"),
    ({"labels": "coarse"}, "labels='coarse' needs templates='pairs'"),
    ({"templates": "pairs", "num_samples": 50}, "no sample of each of the 100 templates"),
])
def test_bad_options_are_rejected_before_anything_is_written(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_data("mnist1d", root=tmp_path, **options)
    assert not (tmp_path / "mnist1d").exists()
