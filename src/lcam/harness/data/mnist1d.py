"""MNIST-1D: the published 1-D benchmark, generated locally by the ``mnist1d`` package.

MNIST-1D (Greydanus & Kobak, "Scaling down deep learning", ICML 2024) turns ten
fixed 1-D templates of the digits into 40-sample signals by random padding,
translation, shear, scaling and correlated plus white noise. The ``mnist1d`` package
*generates* it from those templates with a fixed numpy seed, so the data set needs no
download: ``make_dataset(get_dataset_args())`` builds the published 4,000 / 1,000
split. Published test accuracies on that split: logistic regression 32%, MLP 68%,
CNN 94%, GRU 91%, human 96%.

Options
    ``num_samples`` (default 5,000, the published size) and ``train_split`` (0.8)
    are passed to the generator; every other generator argument keeps its default
    (template length 12, final length 40, seed 42, ...). ``num_samples=50000`` gives
    40,000 / 10,000 (the ``mnist1d-large`` preset): a test-error resolution of 0.01
    points. ``generator_seed`` (default 42, the published data) draws an independent
    data set from the same generator: the presets' hyper-parameters were chosen on
    ``generator_seed=0``, never on the benchmark's test split. ``seed`` (the run's
    seed) does not change the data: seeds vary the training, not the data.

``templates`` (default ``"digits"``, the published ten) may be ``"pairs"``: the 100
    two-digit templates of :mod:`lcam.harness.data.mnist1d_pairs` (100 classes,
    ``num_samples // 100`` per class). ``labels`` (``"fine"``, default) may be
    ``"coarse"`` with ``templates="pairs"``: the same inputs labelled with the digit of
    the template's first half (10 classes). ``mnist1d-100`` and ``mnist1d-100-coarse``
    are these two with ``num_samples=50000``.

Storage and normalisation
    The generator's float64 arrays unchanged, as ``float64 N, 1, 40`` (equal to
    ``make_dataset``'s ``x`` / ``x_test`` bit for bit). The generator already centres
    the whole set and scales it to std 1, so the normalisation is the identity (the
    batches are the float32 values the reference code trains on). No augmentation.

Cache
    Generating 50,000 samples takes about 20 s, so the arrays are saved under the
    data root, ``ROOT/mnist1d/mnist1d-<key>.pt``, where ``<key>`` hashes the options
    and the ``mnist1d`` package version (whose defaults fix every other argument).
    The generator reseeds numpy's and Python's *global* random number generators;
    both states are restored afterwards, so generating (or not, on a cache hit) never
    changes a run's other random draws.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lcam.harness.data.bundle import DataBundle, Normalization, Split
from lcam.harness.data.errors import DatasetDependencyError
from lcam.harness.data.mnist1d_pairs import (
    LABELINGS,
    NUM_DIGITS,
    TEMPLATE_SETS,
    coarse_labels,
    pair_templates,
)
from lcam.harness.data.tensor_cache import load_tensor_cache, save_tensor_cache

__all__ = ["CACHE_FOLDER", "cache_path", "generator_arguments", "load_mnist1d", "make_arrays"]

CACHE_FOLDER = "mnist1d"
CACHE_FORMAT = 1
SIGNAL_LENGTH = 40
INSTALL_HINT = (
    "the mnist1d data set needs the 'mnist1d' package: pip install 'lcam[harness]' "
    "(or pip install mnist1d)"
)


def _package() -> Any:
    try:
        import mnist1d.data
    except ImportError as error:
        raise DatasetDependencyError(f"{INSTALL_HINT} ({error})") from None
    return mnist1d


def _check_templates(templates: str, labels: str) -> None:
    if templates not in TEMPLATE_SETS:
        raise ValueError(f"Invalid templates for mnist1d: {templates!r} (one of "
                         f"{', '.join(TEMPLATE_SETS)})")
    if labels not in LABELINGS:
        raise ValueError(f"Invalid labels for mnist1d: {labels!r} (one of {', '.join(LABELINGS)})")
    if labels == "coarse" and templates != "pairs":
        raise ValueError("labels='coarse' needs templates='pairs' (the ten digit templates "
                         "have no coarser labelling)")


def _check_options(num_samples: int, train_split: float, generator_seed: int) -> None:
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 20:
        raise ValueError(f"Invalid num_samples for mnist1d: {num_samples!r} (an integer >= 20)")
    if not isinstance(train_split, (int, float)) or not 0.0 < train_split < 1.0:
        raise ValueError(f"Invalid train_split for mnist1d: {train_split!r} (must be in (0, 1))")
    if not isinstance(generator_seed, int) or isinstance(generator_seed, bool) or (
        generator_seed < 0
    ):
        raise ValueError(
            f"Invalid generator_seed for mnist1d: {generator_seed!r} (an integer >= 0)"
        )


def generator_arguments(
    num_samples: int = 5000, train_split: float = 0.8, generator_seed: int = 42
) -> dict[str, Any]:
    """The generator's default arguments with ``num_samples``, ``train_split`` and
    ``seed`` (``generator_seed``) set."""
    _check_options(num_samples, train_split, generator_seed)
    mnist1d = _package()
    arguments = dict(mnist1d.data.get_dataset_args(as_dict=True))
    arguments.update(num_samples=num_samples, train_split=train_split, seed=generator_seed)
    return arguments


def make_arrays(arguments: dict[str, Any], templates: str = "digits") -> dict[str, np.ndarray]:
    """Run the generator with ``arguments`` on the ``templates`` set (fine labels); the
    global RNG states are left as they were."""
    _check_templates(templates, "fine")
    mnist1d = _package()
    from mnist1d.utils import ObjectView

    numpy_state = np.random.get_state()
    python_state = random.getstate()
    try:
        digits = mnist1d.data.get_templates()
        template = digits if templates == "digits" else pair_templates(digits)
        data = mnist1d.data.make_dataset(ObjectView(dict(arguments)), template=template)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {key: data[key] for key in ("x", "y", "x_test", "y_test")}


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mnist1d")
    except PackageNotFoundError:
        raise DatasetDependencyError(INSTALL_HINT) from None


def cache_path(
    root: Path, num_samples: int = 5000, train_split: float = 0.8, generator_seed: int = 42,
    templates: str = "digits",
) -> Path:
    """Where the arrays generated with these options are cached under ``root``.

    The key hashes the options and the installed ``mnist1d`` version (every other
    generator argument is that version's default), so a cache hit needs no import of
    the generator.
    """
    text = json.dumps({"format": CACHE_FORMAT, "version": _package_version(),
                       "num_samples": num_samples, "train_split": float(train_split),
                       "generator_seed": generator_seed}, sort_keys=True)
    if templates != "digits":  # the digits' key predates the option: caches stay valid
        text += f"|templates={templates}"
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    return root / CACHE_FOLDER / f"mnist1d-{key}.pt"


def _split(inputs: Any, targets: Any) -> Split:
    x = torch.as_tensor(np.ascontiguousarray(inputs), dtype=torch.float64)
    return Split(x.reshape(len(x), 1, -1), torch.as_tensor(np.asarray(targets), dtype=torch.int64))


def _from_cache(path: Path, train: int, test: int) -> tuple[Split, Split] | None:
    content = load_tensor_cache(path, "mnist1d")
    if content is None:
        return None
    try:
        splits = (_split(content["x"], content["y"]), _split(content["x_test"], content["y_test"]))
    except (KeyError, ValueError, TypeError, RuntimeError):
        return None
    if (len(splits[0]), len(splits[1])) != (train, test):
        return None
    return splits


def load_mnist1d(
    *, root: Path, seed: int, num_samples: int = 5000, train_split: float = 0.8,
    generator_seed: int = 42, templates: str = "digits", labels: str = "fine",
    cache: bool = True,
) -> DataBundle:
    """MNIST-1D (40-sample signals; 10 classes, or 100 with ``templates="pairs"`` unless
    ``labels="coarse"``); ``seed`` is unused (the data are fixed)."""
    _check_options(num_samples, train_split, generator_seed)
    _check_templates(templates, labels)
    per_class = NUM_DIGITS if templates == "digits" else NUM_DIGITS * NUM_DIGITS
    total = (num_samples // per_class) * per_class
    if total == 0:
        raise ValueError(f"Invalid num_samples for mnist1d: {num_samples} gives no sample "
                         f"of each of the {per_class} templates (need >= {per_class})")
    train_size = int(total * train_split)
    path = cache_path(Path(root), num_samples, train_split, generator_seed, templates)
    splits = _from_cache(path, train_size, total - train_size) if cache and path.is_file() else None
    if splits is None:
        arrays = make_arrays(generator_arguments(num_samples, train_split, generator_seed),
                             templates)
        splits = (_split(arrays["x"], arrays["y"]), _split(arrays["x_test"], arrays["y_test"]))
        if cache:
            save_tensor_cache(
                path,
                {key: torch.from_numpy(np.ascontiguousarray(value))
                 for key, value in arrays.items()},
                "mnist1d", "generates the data again",
            )
    train, test = splits
    num_classes, class_names = 10, tuple(str(d) for d in range(NUM_DIGITS))
    if templates == "pairs" and labels == "coarse":
        train, test = (Split(split.inputs, torch.from_numpy(coarse_labels(split.targets.numpy())))
                       for split in (train, test))
    elif templates == "pairs":
        num_classes = NUM_DIGITS * NUM_DIGITS
        class_names = tuple(f"{i}{j}" for i in range(NUM_DIGITS) for j in range(NUM_DIGITS))
    return DataBundle(
        name="mnist1d",
        train=train,
        test=test,
        num_classes=num_classes,
        input_shape=(1, SIGNAL_LENGTH),
        kind="signal",
        normalization=Normalization(scale=1.0, mean=(0.0,), std=(1.0,)),
        augment="none",
        class_names=class_names,
    )
