"""Vision Transformers through Hugging Face ``transformers``: ``vit-b16`` and ``vit-tiny``.

:class:`ViTClassifier` is a ``transformers.ViTModel`` backbone (patch embedding,
class token, position embeddings, pre-norm encoder, final LayerNorm; no pooler)
followed by a new linear head on the class token, the layout of the ViT paper's
fine-tuning. The data stays 32 x 32 ``uint8`` in memory: ``forward`` resizes the
normalised batch to ``image_size`` with ``F.interpolate`` (bilinear, no corner
alignment) before the patch embedding.

Architectures
    ============  ======  ======  =====  =====  =====  ==========
    name          hidden  layers  heads  MLP    patch  image_size
    ============  ======  ======  =====  =====  =====  ==========
    ``vit-b16``   768     12      12     3072   16     224
    ``vit-tiny``  32      2       2      64     4      32
    ============  ======  ======  =====  =====  =====  ==========

    ``vit-tiny`` runs the same code path in milliseconds, for tests and smoke runs.

Options
    ``pretrained=PATH``: load the backbone from a local Hugging Face model directory
    (``config.json`` plus ``model.safetensors`` or ``pytorch_model.bin``), e.g. a
    copy of ``google/vit-base-patch16-224-in21k`` (the ImageNet-21k weights the
    paper fine-tunes). Nothing is downloaded (``local_files_only=True``); get the
    weights once with ``hf download google/vit-base-patch16-224-in21k --local-dir
    PATH`` or ``ViTModel.from_pretrained(...).save_pretrained(PATH)`` on a machine
    with network access. The checkpoint's architecture must match the name; its
    head, if any, is discarded.

    ``image_size`` (default: the table): the resolution the input is resized to.
    A size other than the checkpoint's interpolates the position embeddings.

The head is zero-initialised (as the ViT paper does for fine-tuning); without
``pretrained`` the backbone has ``transformers``' random initialisation. Dropout is
0, as in the ``transformers`` defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from transformers import ViTConfig, ViTModel

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


class PretrainedWeightsNotFoundError(FileNotFoundError):
    """A ``pretrained=`` path does not hold a usable Hugging Face model directory."""


@dataclass(frozen=True)
class ViTArchitecture:
    """The fields of ``ViTConfig`` that define a named architecture."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    patch_size: int
    image_size: int
    hub_name: str | None = None  # where its pretrained weights are published


ARCHITECTURES = {
    "vit-b16": ViTArchitecture(768, 12, 12, 3072, 16, 224, "google/vit-base-patch16-224-in21k"),
    "vit-tiny": ViTArchitecture(32, 2, 2, 64, 4, 32),
}
_CHECKED_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "patch_size",
)


def _side(value: int | list[int] | tuple[int, int]) -> int:
    """The side of a square size that ``ViTConfig`` may store as an int or a pair."""
    if isinstance(value, int):
        return value
    if len(value) != 2 or value[0] != value[1]:
        raise ValueError(f"Only square ViT images and patches are supported, got {value}")
    return int(value[0])


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as error:
        raise ImportError(
            "The ViT models need Hugging Face transformers: pip install 'lcam[vit]'"
        ) from error
    return transformers


def _how_to_obtain(name: str, path: Path) -> str:
    hub_name = ARCHITECTURES[name].hub_name
    if hub_name is None:
        return f"Save a {name} backbone there with ViTModel.save_pretrained({str(path)!r})."
    return (
        f"Get the weights with `hf download {hub_name} --local-dir {path}` (or "
        f"ViTModel.from_pretrained({hub_name!r}).save_pretrained({str(path)!r}) on a "
        "machine with network access)."
    )


def _load_backbone(name: str, path: Path, channels: int) -> ViTModel:
    transformers = _transformers()
    missing = not (path / "config.json").is_file() or not any(
        (path / f).is_file() for f in WEIGHT_FILES
    )
    if missing:
        raise PretrainedWeightsNotFoundError(
            f"{name}: no Hugging Face model at pretrained={path} (expected config.json and "
            f"one of {', '.join(WEIGHT_FILES)}). {_how_to_obtain(name, path)}"
        )
    try:
        config = transformers.ViTConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise PretrainedWeightsNotFoundError(
            f"{name}: cannot read the ViT config in {path} ({error}). {_how_to_obtain(name, path)}"
        ) from error
    expected = ARCHITECTURES[name]
    found = {field: getattr(config, field) for field in _CHECKED_FIELDS}
    found["patch_size"] = _side(config.patch_size)
    mismatched = [
        f"{field} {value} != {getattr(expected, field)}"
        for field, value in found.items()
        if value != getattr(expected, field)
    ]
    if config.num_channels != channels:
        mismatched.append(f"num_channels {config.num_channels} != {channels}")
    if mismatched:
        differences = "; ".join(mismatched)
        raise ValueError(f"{name}: the checkpoint in {path} is another model ({differences})")
    try:
        backbone = transformers.ViTModel.from_pretrained(
            path, add_pooling_layer=False, local_files_only=True
        )
    except (OSError, ValueError) as error:
        raise PretrainedWeightsNotFoundError(
            f"{name}: cannot load the weights in {path} ({error}). {_how_to_obtain(name, path)}"
        ) from error
    return backbone  # type: ignore[no-any-return]


def _new_config(name: str, channels: int) -> ViTConfig:
    architecture = ARCHITECTURES[name]
    config = _transformers().ViTConfig(
        hidden_size=architecture.hidden_size,
        num_hidden_layers=architecture.num_hidden_layers,
        num_attention_heads=architecture.num_attention_heads,
        intermediate_size=architecture.intermediate_size,
        patch_size=architecture.patch_size,
        image_size=architecture.image_size,
        num_channels=channels,
    )
    return config  # type: ignore[no-any-return]


class ViTClassifier(nn.Module):
    """A ``ViTModel`` backbone, a resize to ``image_size`` and a linear head.

    Args:
        backbone: the ``transformers.ViTModel`` (built without a pooler).
        num_classes: outputs of the new head.
        image_size: inputs are resized to ``image_size x image_size``.
    """

    def __init__(self, backbone: ViTModel, *, num_classes: int, image_size: int) -> None:
        super().__init__()
        patch_size = _side(backbone.config.patch_size)
        if image_size < 1 or image_size % patch_size:
            raise ValueError(
                f"Invalid image_size: {image_size} (must be a positive multiple of the patch "
                f"size {patch_size})"
            )
        self.backbone = backbone
        self.image_size = image_size
        self.interpolate_pos_encoding = image_size != _side(backbone.config.image_size)
        self.head = nn.Linear(backbone.config.hidden_size, num_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(
                x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        hidden = self.backbone(
            pixel_values=x,
            interpolate_pos_encoding=self.interpolate_pos_encoding,
        ).last_hidden_state
        return self.head(hidden[:, 0])


def build_vit(
    name: str,
    *,
    num_classes: int,
    input_shape: tuple[int, ...],
    pretrained: str | Path | None = None,
    image_size: int | None = None,
) -> ViTClassifier:
    """Build ``name`` (a key of :data:`ARCHITECTURES`) for ``C, H, W`` inputs."""
    if len(input_shape) != 3:
        raise ValueError(f"{name} needs C, H, W inputs, got input_shape {input_shape}")
    channels = input_shape[0]
    if pretrained is not None:
        backbone = _load_backbone(name, Path(pretrained).expanduser(), channels)
    else:
        backbone = _transformers().ViTModel(_new_config(name, channels), add_pooling_layer=False)
    size = image_size if image_size is not None else ARCHITECTURES[name].image_size
    return ViTClassifier(backbone, num_classes=num_classes, image_size=size)
