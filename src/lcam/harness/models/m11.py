"""M11: the 11-layer raw-waveform CNN of Dai et al. (2017), for Speech Commands.

"Very deep convolutional neural networks for raw waveforms" (ICASSP 2017) feeds the
8 kHz waveform straight into 1-D convolutions: a wide first layer with a large
stride acts as a learned filter bank, then stacks of 3-tap convolutions with max
pooling. Table 1 of that paper, for the 1-second, 8,000-sample clips used here:

    ======  ====================================  =========  ================
    layers  operation                             channels   output length
    ======  ====================================  =========  ================
    1       conv, kernel 80, stride 4              64         2000
            max-pool 4                                        500
    2-3     2 x conv, kernel 3                    64         500
            max-pool 4                                        125
    4-5     2 x conv, kernel 3                    128        125
            max-pool 4                                        31
    6-8     3 x conv, kernel 3                    256        31
            max-pool 4                                        7
    9-10    2 x conv, kernel 3                    512        7
            global average pool                               1
    11      linear                                num_classes
    ======  ====================================  =========  ================

Every convolution is followed by batch normalisation and ReLU and has no bias
(batch normalisation makes it redundant). The 3-tap convolutions are padded to keep
the length; the first one is padded by 38 so that 8,000 samples give 2,000 frames,
as the paper's table lists (32,000 -> 8,000 for its 4-second clips). The network is
about 1.8 M parameters, as the paper states. The initialisation is ours (the paper
does not fix one we rely on): Kaiming-normal convolutions, BatchNorm weight 1 and
bias 0, linear bias 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcam.harness.models.init import kaiming_fan_out_

FIRST_KERNEL, FIRST_STRIDE, FIRST_PADDING = 80, 4, 38
STAGES = ((2, 64), (2, 128), (3, 256), (2, 512))
"""(3-tap convolutions, channels) per stage; max-pool 4 before each stage."""
POOL = 4


def _conv_bn_relu(
    in_channels: int, out_channels: int, kernel: int, stride: int, padding: int
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm1d(out_channels),
        nn.ReLU(inplace=True),
    )


class M11(nn.Module):
    """M11 for ``1, T`` waveforms (``T`` = 8,000 at 8 kHz; see the module docstring)."""

    def __init__(self, num_classes: int, in_channels: int = 1) -> None:
        super().__init__()
        channels = STAGES[0][1]
        layers: list[nn.Module] = [
            _conv_bn_relu(in_channels, channels, FIRST_KERNEL, FIRST_STRIDE, FIRST_PADDING)
        ]
        for convolutions, out_channels in STAGES:
            layers.append(nn.MaxPool1d(POOL))
            for _ in range(convolutions):
                layers.append(_conv_bn_relu(channels, out_channels, 3, 1, 1))
                channels = out_channels
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        kaiming_fan_out_(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.features(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool1d(out, 1), 1))
