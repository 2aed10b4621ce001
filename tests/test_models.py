"""Model registry: shapes, parameter counts, initialisation, ViT weight loading."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from lcam.harness.models import (
    PretrainedWeightsNotFoundError,
    ViTClassifier,
    build_model,
    model_names,
)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(name: str, **kwargs: object) -> nn.Module:
    """Build without allocating or initialising real memory (counts only)."""
    with torch.device("meta"):
        return build_model(name, **kwargs)  # type: ignore[arg-type]


def wrn_parameter_formula(depth: int, width: int, classes: int) -> int:
    """Count of the WRN in the reference description, independent of the code."""
    blocks = (depth - 4) // 6
    widths = [16, 16 * width, 32 * width, 64 * width]
    total = 3 * 16 * 9  # first conv
    for stage in range(3):
        cin, cout = widths[stage], widths[stage + 1]
        for b in range(blocks):
            block_in = cin if b == 0 else cout
            total += 2 * block_in + block_in * cout * 9 + 2 * cout + cout * cout * 9
            if block_in != cout or (b == 0 and stage > 0):
                total += block_in * cout  # 1x1 shortcut
    return total + 2 * widths[3] + widths[3] * classes + classes


def test_wrn_28_10_has_36_5_million_parameters() -> None:
    model = on_meta("wrn-28-10", num_classes=10, input_shape=(3, 32, 32))
    assert parameter_count(model) == 36_479_194 == wrn_parameter_formula(28, 10, 10)
    cifar100 = on_meta("wrn-28-10", num_classes=100, input_shape=(3, 32, 32))
    assert parameter_count(cifar100) == wrn_parameter_formula(28, 10, 100)


def test_wrn_16_4_parameter_count_and_output_shape() -> None:
    model = build_model("wrn-16-4", num_classes=10, input_shape=(3, 32, 32))
    assert parameter_count(model) == 2_748_890 == wrn_parameter_formula(16, 4, 10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_wrn_init_follows_the_reference() -> None:
    model = build_model("wrn-16-4", num_classes=10, input_shape=(3, 32, 32))
    batch_norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(batch_norms) == 2 * 3 * 2 + 1
    for bn in batch_norms:
        assert torch.equal(bn.weight, torch.ones_like(bn.weight))
        assert torch.equal(bn.bias, torch.zeros_like(bn.bias))
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linear) == 1 and torch.equal(linear[0].bias, torch.zeros(10))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    widest = max(convs, key=lambda c: c.weight.numel())  # 256 x 256 x 3 x 3
    expected_std = math.sqrt(2 / (widest.out_channels * 9))  # Kaiming, fan_out, ReLU gain
    assert abs(widest.weight.std().item() / expected_std - 1) < 0.02
    assert abs(widest.weight.mean().item()) < 0.01 * expected_std


def test_wrn_blocks_are_pre_activation_without_dropout() -> None:
    model = build_model("wrn-10-1", num_classes=3, input_shape=(3, 16, 16))
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    block = model.stages[1][0]
    names = [n for n, _ in block.named_children()]
    assert names == ["bn1", "conv1", "bn2", "conv2", "shortcut"]
    assert block.shortcut.kernel_size == (1, 1) and block.shortcut.stride == (2, 2)
    assert model.stages[0][0].shortcut is None  # 16 -> 16 channels, stride 1: identity
    widened = build_model("wrn-10-2", num_classes=3, input_shape=(3, 16, 16))
    assert widened.stages[0][0].shortcut.stride == (1, 1)  # 16 -> 32 channels
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 3)


def test_m11_layers_and_parameter_count() -> None:
    model = build_model("m11", num_classes=35, input_shape=(1, 8000))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == 10  # + the linear layer: 11 weight layers
    assert (convs[0].kernel_size, convs[0].stride, convs[0].out_channels) == ((80,), (4,), 64)
    assert [c.out_channels for c in convs[1:]] == [64, 64, 128, 128, 256, 256, 256, 512, 512]
    assert sum(isinstance(m, nn.MaxPool1d) for m in model.modules()) == 4
    conv_weights = 80 * 64 + 3 * (
        2 * 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 2 * 256 * 256 + 256 * 512 + 512 * 512
    )
    batch_norm = 2 * sum(c.out_channels for c in convs)
    assert parameter_count(model) == conv_weights + batch_norm + 512 * 35 + 35
    assert (
        1.75e6 < parameter_count(build_model("m11", num_classes=10, input_shape=(1, 8000))) < 1.85e6
    )
    assert model(torch.randn(2, 1, 8000)).shape == (2, 35)
    assert torch.equal(model.fc.bias, torch.zeros(35))


def test_m11_first_layer_gives_2000_frames_for_one_second() -> None:
    model = build_model("m11", num_classes=35, input_shape=(1, 8000))
    assert model.features[0](torch.randn(1, 1, 8000)).shape == (1, 64, 2000)


def test_digits_cnn_is_small_and_fits_8x8() -> None:
    model = build_model("digits-cnn", num_classes=10, input_shape=(1, 8, 8))
    assert parameter_count(model) == 9_978
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 10)


def test_vit_b16_has_the_reference_parameter_count() -> None:
    model = on_meta("vit-b16", num_classes=1000, input_shape=(3, 32, 32))
    assert isinstance(model, ViTClassifier)
    assert parameter_count(model) == 86_567_656  # ViT-B/16 at 224 with a 1000-way head
    assert model.image_size == 224 and not model.interpolate_pos_encoding


def test_vit_tiny_upsamples_the_input_to_image_size() -> None:
    model = build_model("vit-tiny", num_classes=4, input_shape=(3, 32, 32), image_size=64)
    seen: list[tuple[int, ...]] = []
    model.backbone.embeddings.patch_embeddings.register_forward_pre_hook(
        lambda _, args: seen.append(tuple(args[0].shape))
    )
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    assert seen == [(2, 3, 64, 64)]
    assert torch.equal(model.head.weight, torch.zeros(4, 32))  # zero-initialised head


def test_vit_tiny_loads_local_pretrained_weights_with_a_new_head(tmp_path: Path) -> None:
    from transformers import ViTModel

    source = build_model("vit-tiny", num_classes=10, input_shape=(3, 32, 32))
    assert isinstance(source, ViTClassifier)
    # an ImageNet-21k style checkpoint: a ViTModel with its pooler
    checkpoint = ViTModel(source.backbone.config, add_pooling_layer=True)
    checkpoint.load_state_dict(source.backbone.state_dict(), strict=False)
    checkpoint.save_pretrained(tmp_path)

    loaded = build_model("vit-tiny", num_classes=7, input_shape=(3, 32, 32), pretrained=tmp_path)
    assert isinstance(loaded, ViTClassifier)
    expected = source.backbone.state_dict()
    got = loaded.backbone.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert loaded.head.out_features == 7
    x = torch.randn(3, 3, 32, 32)
    source.eval(), loaded.eval()
    with torch.no_grad():
        features = source.backbone(pixel_values=x).last_hidden_state
        assert torch.equal(loaded.backbone(pixel_values=x).last_hidden_state, features)
        assert loaded(x).shape == (3, 7)


def test_missing_pretrained_path_names_it_and_how_to_get_weights(tmp_path: Path) -> None:
    missing = tmp_path / "vit-in21k"
    with pytest.raises(PretrainedWeightsNotFoundError) as info:
        build_model("vit-b16", num_classes=10, input_shape=(3, 32, 32), pretrained=missing)
    message = str(info.value)
    assert str(missing) in message and "config.json" in message
    assert "google/vit-base-patch16-224-in21k" in message and "hf download" in message


def test_pretrained_checkpoint_of_another_architecture_is_rejected(tmp_path: Path) -> None:
    tiny = build_model("vit-tiny", num_classes=2, input_shape=(3, 32, 32))
    assert isinstance(tiny, ViTClassifier)
    tiny.backbone.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="hidden_size 32 != 768"):
        build_model("vit-b16", num_classes=2, input_shape=(3, 32, 32), pretrained=tmp_path)


def test_unknown_model_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="Unknown model: 'resnet18'") as info:
        build_model("resnet18", num_classes=10, input_shape=(3, 32, 32))
    for name in model_names():
        assert name in str(info.value)
    assert set(model_names()) == {"wrn-<depth>-<width>", "m11", "vit-b16", "vit-tiny", "digits-cnn",
                                  "mnist1d-cnn", "mnist1d-mlp"}


def test_mnist1d_models_have_the_reference_layers() -> None:
    cnn = build_model("mnist1d-cnn", num_classes=10, input_shape=(1, 40))
    convs = [m for m in cnn.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding)
            for c in convs] == [(1, 25, (5,), (2,), (1,)), (25, 25, (3,), (2,), (1,)),
                                (25, 25, (3,), (2,), (1,))]
    assert sum(p.numel() for p in cnn.parameters()) == 5210  # linear 125 -> 10
    assert cnn(torch.zeros(3, 1, 40)).shape == (3, 10)
    mlp = build_model("mnist1d-mlp", num_classes=10, input_shape=(1, 40))
    assert sum(p.numel() for p in mlp.parameters()) == 40 * 100 + 100 + 100 * 100 + 100 + 1010
    # h = relu(W1 x); h = h + relu(W2 h); W3 h: the reference's residual hidden layer
    x = torch.randn(4, 1, 40)
    h = mlp.linear1(x.flatten(1)).relu()
    assert torch.equal(mlp(x), mlp.linear3(h + mlp.linear2(h).relu()))
    wide = build_model("mnist1d-mlp", num_classes=10, input_shape=(1, 40), hidden_size=256)
    assert wide.linear1.out_features == 256
    with pytest.raises(ValueError, match="mnist1d-cnn needs C, T"):
        build_model("mnist1d-cnn", num_classes=10, input_shape=(3, 8, 8))


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("wrn-27-10", {}, "6n \\+ 4"),
        ("m11", {"pretrained": "x"}, r"Unknown option\(s\) \['pretrained'\]"),
        ("vit-tiny", {"image_sise": 64}, "accepted: pretrained, image_size"),
        ("vit-tiny", {"image_size": 30}, "multiple of the patch size 4"),
    ],
)
def test_invalid_names_and_options_are_rejected(
    name: str, kwargs: dict[str, object], message: str
) -> None:
    shape = (1, 8000) if name == "m11" else (3, 32, 32)
    with pytest.raises(ValueError, match=message):
        build_model(name, num_classes=10, input_shape=shape, **kwargs)


def test_input_shape_of_the_wrong_rank_is_rejected() -> None:
    with pytest.raises(ValueError, match="m11 needs C, T"):
        build_model("m11", num_classes=10, input_shape=(3, 32, 32))
    with pytest.raises(ValueError, match="C, H, W"):
        build_model("wrn-16-4", num_classes=10, input_shape=(1, 8000))
