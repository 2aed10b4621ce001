"""Named models: :func:`build_model` and the registry behind it.

A registry entry is a full-match pattern (``wrn-(?P<depth>\\d+)-(?P<width>\\d+)`` or a
plain name), the usage shown in error messages and a builder
``build(*, num_classes, input_shape, <named groups>, <options>)``. Options are the
builder's other keyword arguments; unknown ones are rejected with the accepted list.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from lcam.harness.models.digits_cnn import DigitsCNN
from lcam.harness.models.m11 import M11
from lcam.harness.models.mnist1d import Mnist1dCNN, Mnist1dMLP
from lcam.harness.models.vit import build_vit
from lcam.harness.models.wrn import WideResNet

ModelBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelFamily:
    """Names matching ``pattern`` are built by ``build``."""

    pattern: str
    usage: str
    build: ModelBuilder

    def options(self) -> tuple[str, ...]:
        groups = set(re.compile(self.pattern).groupindex)
        fixed = groups | {"num_classes", "input_shape"}
        return tuple(p for p in inspect.signature(self.build).parameters if p not in fixed)


def _require_rank(name: str, input_shape: tuple[int, ...], rank: int, layout: str) -> None:
    if len(input_shape) != rank:
        raise ValueError(f"{name} needs {layout} inputs, got input_shape {tuple(input_shape)}")


def _build_wrn(
    *, depth: str, width: str, num_classes: int, input_shape: tuple[int, ...]
) -> nn.Module:
    _require_rank(f"wrn-{depth}-{width}", input_shape, 3, "C, H, W")
    return WideResNet(int(depth), int(width), num_classes, in_channels=input_shape[0])


def _build_m11(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    _require_rank("m11", input_shape, 2, "C, T (waveform)")
    return M11(num_classes, in_channels=input_shape[0])


def _build_digits_cnn(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return DigitsCNN(num_classes, tuple(input_shape))


def _build_mnist1d_cnn(
    *, num_classes: int, input_shape: tuple[int, ...], channels: int = 25
) -> nn.Module:
    _require_rank("mnist1d-cnn", input_shape, 2, "C, T (signal)")
    return Mnist1dCNN(num_classes, in_channels=input_shape[0], length=input_shape[1],
                      channels=int(channels))


def _build_mnist1d_mlp(
    *, num_classes: int, input_shape: tuple[int, ...], hidden_size: int = 100
) -> nn.Module:
    size = 1
    for dim in input_shape:
        size *= dim
    return Mnist1dMLP(num_classes, input_size=size, hidden_size=int(hidden_size))


_MODELS: list[ModelFamily] = [
    ModelFamily(r"wrn-(?P<depth>\d+)-(?P<width>\d+)", "wrn-<depth>-<width>", _build_wrn),
    ModelFamily("m11", "m11", _build_m11),
    ModelFamily("vit-b16", "vit-b16", functools.partial(build_vit, "vit-b16")),
    ModelFamily("vit-tiny", "vit-tiny", functools.partial(build_vit, "vit-tiny")),
    ModelFamily("digits-cnn", "digits-cnn", _build_digits_cnn),
    ModelFamily("mnist1d-cnn", "mnist1d-cnn", _build_mnist1d_cnn),
    ModelFamily("mnist1d-mlp", "mnist1d-mlp", _build_mnist1d_mlp),
]


def model_names() -> tuple[str, ...]:
    """The registered names, parametric ones as patterns (``wrn-<depth>-<width>``)."""
    return tuple(family.usage for family in _MODELS)


def register_model(pattern: str, build: ModelBuilder, *, usage: str | None = None) -> None:
    """Add a family: names fully matching ``pattern`` go to ``build``."""
    if any(family.pattern == pattern for family in _MODELS):
        raise ValueError(f"Model pattern {pattern!r} is already registered")
    _MODELS.append(ModelFamily(pattern, usage or pattern, build))


def _lookup(name: str) -> tuple[ModelFamily, dict[str, str]]:
    for family in _MODELS:
        match = re.fullmatch(family.pattern, name)
        if match:
            return family, match.groupdict()
    valid = ", ".join(model_names())
    raise ValueError(
        f"Unknown model: {name!r} (valid names: {valid}, e.g. wrn-28-10, wrn-16-4; or your "
        "own 'package.module:function', which the harness resolves)"
    )


def model_options(name: str) -> tuple[str, ...]:
    """The options ``name`` accepts besides ``num_classes`` and ``input_shape``."""
    return _lookup(name)[0].options()


def build_model(
    name: str, *, num_classes: int, input_shape: tuple[int, ...], **options: Any
) -> nn.Module:
    """Build the model ``name`` with freshly initialised (or ``pretrained``) weights.

    Args:
        name: ``wrn-<depth>-<width>``, ``m11``, ``vit-b16``, ``vit-tiny``,
            ``digits-cnn``, ``mnist1d-cnn``, ``mnist1d-mlp`` (see :func:`model_names`).
        num_classes: outputs of the final layer.
        input_shape: the per-sample input shape, e.g. ``(3, 32, 32)``, ``(1, 8000)``.
        options: model options, e.g. ``pretrained=PATH`` and ``image_size=224`` for
            the ViTs, ``hidden_size=256`` for ``mnist1d-mlp``.

    Raises:
        ValueError: unknown name or option, an input shape the model cannot take.
        PretrainedWeightsNotFoundError: ``pretrained`` does not hold usable weights.
    """
    family, groups = _lookup(name)
    unknown = sorted(set(options) - set(family.options()))
    if unknown:
        accepted = ", ".join(family.options()) or "none"
        raise ValueError(f"Unknown option(s) {unknown} for model {name!r} (accepted: {accepted})")
    if num_classes < 1:
        raise ValueError(f"Invalid num_classes: {num_classes} (must be >= 1)")
    return family.build(
        num_classes=num_classes, input_shape=tuple(input_shape), **groups, **options
    )
