"""Named data sets: :func:`load_data` and the registry behind it.

A loader is a function ``loader(*, root: Path, seed: int, **options) -> DataBundle``
whose options are keyword arguments with defaults; ``load_data`` forwards the options
and rejects unknown ones with the list of accepted ones, so a typo fails.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lcam.harness.data.bundle import DataBundle
from lcam.harness.data.cifar import load_cifar10, load_cifar100
from lcam.harness.data.digits import load_digits
from lcam.harness.data.mnist1d import load_mnist1d
from lcam.harness.data.speechcommands import load_speechcommands
from lcam.harness.data.synthetic import load_synthetic_cifar

DatasetLoader = Callable[..., DataBundle]

DATA_ROOT_VARIABLE = "LCAM_DATA"
"""Environment variable with the default data root (otherwise ``./data``)."""

_DATASETS: dict[str, DatasetLoader] = {
    "digits": load_digits,
    "mnist1d": load_mnist1d,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "speechcommands": load_speechcommands,
    "synthetic-cifar": load_synthetic_cifar,
}


def dataset_names() -> tuple[str, ...]:
    """The registered data set names."""
    return tuple(_DATASETS)


def register_dataset(name: str, loader: DatasetLoader) -> None:
    """Add ``loader`` under ``name`` (an existing name raises ``ValueError``)."""
    if name in _DATASETS:
        raise ValueError(f"Data set {name!r} is already registered")
    _DATASETS[name] = loader


def default_data_root() -> Path:
    """``$LCAM_DATA`` if set, else ``./data``."""
    return Path(os.environ.get(DATA_ROOT_VARIABLE) or "data")


def dataset_options(name: str) -> tuple[str, ...]:
    """The options ``name``'s loader accepts besides ``root`` and ``seed``."""
    parameters = inspect.signature(_lookup(name)).parameters
    return tuple(p for p in parameters if p not in ("root", "seed"))


def _lookup(name: str) -> DatasetLoader:
    try:
        return _DATASETS[name]
    except KeyError:
        valid = ", ".join(_DATASETS)
        raise ValueError(
            f"Unknown data set: {name!r} (valid names: {valid}; or your own "
            "'package.module:function', which the harness resolves)"
        ) from None


def load_data(
    name: str, *, root: str | os.PathLike[str] | None = None, seed: int = 0, **options: Any
) -> DataBundle:
    """Load the data set ``name`` into memory (on the CPU; use ``bundle.to(device)``).

    Args:
        name: one of :func:`dataset_names`.
        root: where the files are (``None``: :func:`default_data_root`).
        seed: for data sets that are generated or split at random (``synthetic-cifar``);
            the others ignore it.
        options: loader options, e.g. ``download=True`` (CIFAR), ``cache=False``
            (Speech Commands), ``train_size=512`` (synthetic-cifar).

    Raises:
        ValueError: unknown name or option.
        DatasetNotFoundError, DatasetCorruptError: the files are missing or wrong; the
            message says where they were looked for and how to get them.
    """
    loader = _lookup(name)
    unknown = sorted(set(options) - set(dataset_options(name)))
    if unknown:
        accepted = ", ".join(dataset_options(name)) or "none"
        raise ValueError(
            f"Unknown option(s) {unknown} for data set {name!r} (accepted: {accepted})"
        )
    resolved = Path(root).expanduser() if root is not None else default_data_root()
    bundle = loader(root=resolved, seed=seed, **options)
    if not isinstance(bundle, DataBundle):
        raise TypeError(f"Loader for {name!r} returned {type(bundle).__name__}, not a DataBundle")
    return bundle
