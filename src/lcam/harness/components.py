"""Build a run's data and model from its settings: registry names or your own code.

``settings.data`` / ``settings.model`` are either registry names (``digits``,
``wrn-28-10``) or a ``package.module:function`` reference, which lets you run the same
protocol (groups, seeds, control, report) on your own model and data::

    # mypackage/experiment.py
    def my_data(*, root, seed):            # -> lcam.harness.data.DataBundle
        ...
    def my_model(*, num_classes, input_shape, **options):   # -> torch.nn.Module
        ...

    lcam sweep digits --out runs --data mypackage.experiment:my_data \\
        --model mypackage.experiment:my_model --epochs 20

The data function receives ``root`` (a ``pathlib.Path``, the run's data root), ``seed``
(the run's seed) and the ``data_options``; the model function receives ``num_classes``,
``input_shape`` (per sample, e.g. ``(3, 32, 32)``) and the ``model_options``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from lcam.harness.config import ConfigError, RunSettings, UnknownNameError
from lcam.harness.data import DataBundle, dataset_names, load_data

__all__ = ["build_model_for", "is_reference", "load_bundle", "resolve_reference",
           "validate_names"]


def is_reference(name: str) -> bool:
    """Whether ``name`` is a ``package.module:function`` reference."""
    return ":" in name


def resolve_reference(reference: str) -> Callable[..., Any]:
    """Import ``package.module`` and return its attribute ``function``."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"invalid reference {reference!r} (expected package.module:function)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"cannot import {module_name!r} for {reference!r}: {error}") from error
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{module_name!r} has no attribute {attribute!r} ({reference!r})")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{reference!r} is not callable")
    return target  # type: ignore[no-any-return]


def validate_names(settings: RunSettings) -> None:
    """Reject an unknown data set, model or option up front, listing the valid ones."""
    from lcam.harness import models
    from lcam.harness.data import dataset_options

    own = "package.module:function"
    if not is_reference(settings.data):
        if settings.data not in dataset_names():
            raise UnknownNameError("data set", settings.data, (*dataset_names(), own))
        _check_options("data option", settings.data_options, dataset_options(settings.data),
                       settings.data)
    if not is_reference(settings.model):
        try:
            accepted = models.model_options(settings.model)
        except ValueError:
            raise UnknownNameError("model", settings.model, (*models.model_names(), own)
                                   ) from None
        _check_options("model option", settings.model_options, accepted, settings.model)


def _check_options(kind: str, given: Mapping[str, Any], accepted: Sequence[str],
                   owner: str) -> None:
    for key in given:
        if key not in accepted:
            raise UnknownNameError(kind, key, accepted or ("(none)",), f"for {owner!r}")


def load_bundle(settings: RunSettings, *, seed: int) -> DataBundle:
    """Load the run's data (on the CPU), reduced to the configured subset sizes.

    The subset is drawn with seed 0 whatever the run's seed, so every group and seed
    of a smoke sweep trains on the same samples.
    """
    root = settings.data_root
    options = dict(settings.data_options)
    if is_reference(settings.data):
        from pathlib import Path

        from lcam.harness.data import default_data_root

        function = resolve_reference(settings.data)
        bundle = function(root=Path(root) if root else default_data_root(), seed=seed, **options)
        if not isinstance(bundle, DataBundle):
            raise ConfigError(
                f"{settings.data} returned {type(bundle).__name__}, not a DataBundle"
            )
    else:
        bundle = load_data(settings.data, root=root, seed=seed, **options)
    if settings.train_subset is not None or settings.test_subset is not None:
        bundle = bundle.subset(train=settings.train_subset, test=settings.test_subset, seed=0)
    return bundle


def build_model_for(settings: RunSettings, bundle: DataBundle) -> nn.Module:
    """The run's model for ``bundle``'s classes and input shape (on the CPU)."""
    options = dict(settings.model_options)
    if is_reference(settings.model):
        function = resolve_reference(settings.model)
        model = function(num_classes=bundle.num_classes, input_shape=bundle.input_shape,
                         **options)
    else:
        from lcam.harness.models import build_model

        model = build_model(settings.model, num_classes=bundle.num_classes,
                            input_shape=bundle.input_shape, **options)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{settings.model} returned {type(model).__name__}, not an nn.Module")
    return model


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"invalid device {name!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available here")
    return device
