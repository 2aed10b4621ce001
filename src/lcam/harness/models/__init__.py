"""The networks of the paper's experiments, built by name with :func:`build_model`.

    ========================  ===========================================================
    ``wrn-<depth>-<width>``   Wide ResNet, pre-activation blocks (``wrn-28-10``: CIFAR)
    ``m11``                   Dai et al.'s 11-layer raw-waveform CNN (Speech Commands)
    ``vit-b16``               ViT-B/16 via ``transformers``; ``pretrained=PATH`` loads
                              local ImageNet-21k weights, ``image_size`` (224) the
                              resolution the 32x32 input is resized to
    ``vit-tiny``              the same code path at toy size, for tests and smoke runs
    ``digits-cnn``            two convolutions for the 8x8 digits demo
    ========================  ===========================================================

Each module's docstring has its layer table and initialisation.

Your own model
    Pass ``package.module:function`` where a model name is expected. The harness
    imports ``package.module`` and calls ``function(num_classes=N,
    input_shape=SHAPE)``, where ``SHAPE`` is the data's per-sample shape (a tuple,
    e.g. ``(3, 32, 32)``), and expects an ``nn.Module`` mapping a ``float32`` batch
    ``B, *SHAPE`` (normalised as the data bundle says) to ``B, N`` logits.
"""

from lcam.harness.models.digits_cnn import DigitsCNN
from lcam.harness.models.init import kaiming_fan_out_
from lcam.harness.models.m11 import M11
from lcam.harness.models.registry import build_model, model_names, model_options, register_model
from lcam.harness.models.vit import PretrainedWeightsNotFoundError, ViTClassifier
from lcam.harness.models.wrn import WideResNet

__all__ = [
    "M11",
    "DigitsCNN",
    "PretrainedWeightsNotFoundError",
    "ViTClassifier",
    "WideResNet",
    "build_model",
    "kaiming_fan_out_",
    "model_names",
    "model_options",
    "register_model",
]
