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

Each function gets only what it asks for: a preset's own options that the function's
signature does not accept are dropped with a note (``lcam sweep mnist1d-large --data
mypkg:load`` does not pass the preset's ``num_samples`` to a ``load`` without that
parameter; :func:`fit_reference_options`), while an option set on the command line
(``--set data_options.x=...``) that it does not accept, or a parameter without a
default that nothing sets, is an error naming both before anything runs
(:func:`validate_names`). A ``**kwargs`` parameter accepts every option.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from lcam.harness.config import ConfigError, RunSettings, UnknownNameError
from lcam.harness.data import DataBundle, dataset_names, load_data

__all__ = ["build_model_for", "check_reference_call", "fit_reference_options", "is_reference",
           "load_bundle", "resolve_reference", "validate_names"]

# What lcam passes to every data / model function besides its options.
_FIXED_ARGUMENTS = {"data": ("root", "seed"), "model": ("num_classes", "input_shape")}


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
    for kind in ("data", "model"):
        reference = getattr(settings, kind)
        if is_reference(reference):
            check_reference_call(kind, reference, getattr(settings, f"{kind}_options"))
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


@dataclasses.dataclass(frozen=True)
class _Parameters:
    """What a function accepts by keyword: ``names``, those without a default
    (``required``), positional-only ones without a default, and ``**kwargs``."""

    text: str
    names: frozenset[str]
    required: tuple[str, ...]
    positional_only: tuple[str, ...]
    any_keyword: bool

    def accepts(self, name: str) -> bool:
        return self.any_keyword or name in self.names


def _parameters(function: Callable[..., Any]) -> _Parameters | None:
    """The keyword parameters of ``function`` (``None`` when Python cannot tell)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = signature.parameters.values()
    return _Parameters(
        text=str(signature),
        names=frozenset(p.name for p in parameters if p.kind in keyword),
        required=tuple(p.name for p in parameters
                       if p.kind in keyword and p.default is inspect.Parameter.empty),
        positional_only=tuple(p.name for p in parameters
                              if p.kind is inspect.Parameter.POSITIONAL_ONLY
                              and p.default is inspect.Parameter.empty),
        any_keyword=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters),
    )


def check_reference_call(kind: str, reference: str, options: Mapping[str, Any]) -> None:
    """Refuse a ``kind`` (``data`` / ``model``) function that cannot take its arguments.

    The call is ``function(<fixed arguments>, **options)``; every option must be a
    parameter (or ``**kwargs`` present), every parameter without a default must be
    given, and the fixed arguments (``root``, ``seed``; ``num_classes``,
    ``input_shape``) must be accepted. Raises :class:`ConfigError` with one line naming
    the option or parameter and the function.
    """
    parameters = _parameters(resolve_reference(reference))
    if parameters is None:
        return
    where = f"{reference}{parameters.text}"
    fixed = _FIXED_ARGUMENTS[kind]
    for name in fixed:
        if not parameters.accepts(name):
            raise ConfigError(f"{where} does not accept {name}=, which lcam passes to every "
                              f"{kind} function (add a parameter {name} or **kwargs)")
    for option in options:
        if option in fixed:
            raise ConfigError(f"{kind}_options.{option} cannot be set: lcam passes {option}= "
                              f"to {reference} itself")
        if not parameters.accepts(option):
            raise ConfigError(f"{kind}_options.{option} is not a parameter of {where}; drop "
                              f"--set {kind}_options.{option} or add the parameter")
    for name in parameters.positional_only:
        raise ConfigError(f"{where}: lcam passes every argument by keyword, so the "
                          f"positional-only parameter {name} cannot be given")
    for name in parameters.required:
        if name not in fixed and name not in options:
            raise ConfigError(f"{where} requires {name}, which nothing sets: add --set "
                              f"{kind}_options.{name}=VALUE")


def fit_reference_options(
    settings: RunSettings, explicit: Collection[str], *, preset: str = "the preset"
) -> tuple[RunSettings, list[str]]:
    """Drop the options a ``package.module:function`` does not accept, unless set explicitly.

    ``explicit`` holds the override keys the user gave (``data_options.size``); those
    options are always kept (:func:`check_reference_call` refuses them if the function
    does not accept them). Every other option the function's signature does not
    accept (a preset's ``num_samples`` for the user's own data function) is removed.
    Returns the settings and one note per dropped option.
    """
    changes: dict[str, Any] = {}
    notes: list[str] = []
    for kind in ("data", "model"):
        reference = getattr(settings, kind)
        if not is_reference(reference):
            continue
        parameters = _parameters(resolve_reference(reference))
        if parameters is None:
            continue
        options = dict(getattr(settings, f"{kind}_options"))
        for option, value in list(options.items()):
            if f"{kind}_options.{option}" in explicit or parameters.accepts(option):
                continue
            del options[option]
            notes.append(f"{kind}_options.{option}={value!r} of {preset} is not passed to "
                         f"{reference}, which does not accept it")
        changes[f"{kind}_options"] = options
    if not notes:
        return settings, []
    return dataclasses.replace(settings, **changes), notes


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
