"""``digits-cnn``: a two-convolution network for the 1 x 8 x 8 digits demo.

    ======================================  ===========
    layer                                   output
    ======================================  ===========
    conv 3x3, padding 1, BN, ReLU           16 x 8 x 8
    conv 3x3, stride 2, padding 1, BN, ReLU 32 x 4 x 4
    linear                                  num_classes
    ======================================  ===========

About 10,000 parameters. It is sized for the ``digits`` demo (8 groups x 3 seeds x
30 epochs on 1,437 images) to run in a couple of minutes on two CPU cores: a
30-epoch run takes about 2 s on one thread and reaches about 2% test error with
SGD (lr 0.1, momentum 0.9, weight decay 5e-4). A strided convolution replaces
max pooling because pooling the full-resolution activations costs more than the
convolution itself at this size. BatchNorm keeps training at lr 0.1 and momentum
up to 0.95 stable. Initialisation as :mod:`lcam.harness.models.init`.
"""

from __future__ import annotations

from torch import Tensor, nn

from lcam.harness.models.init import kaiming_fan_out_


class DigitsCNN(nn.Module):
    """Two convolutions and a linear layer for small ``C, H, W`` images."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...] = (1, 8, 8)) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"digits-cnn needs C, H, W inputs, got input_shape {input_shape}")
        channels, height, width = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        self.fc = nn.Linear(32 * ((height + 1) // 2) * ((width + 1) // 2), num_classes)
        kaiming_fan_out_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))
