"""Wide Residual Networks (Zagoruyko & Komodakis, 2016), as the paper's CIFAR runs use.

``wrn-D-K`` has depth ``D`` (``D - 4`` divisible by 6) and widening factor ``K``:

    ==========  =================================  ===========  ==============
    stage       blocks                             channels     output (32x32)
    ==========  =================================  ===========  ==============
    conv        3x3 conv                           16           32 x 32
    stage 1     (D - 4) / 6 basic blocks, stride 1 16 K         32 x 32
    stage 2     (D - 4) / 6 basic blocks, stride 2 32 K         16 x 16
    stage 3     (D - 4) / 6 basic blocks, stride 2 64 K         8 x 8
    head        BN, ReLU, global average pool, linear   num_classes
    ==========  =================================  ===========  ==============

A basic block is pre-activation: ``BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3``, added to
the input; where the shape changes (first block of a stage) the shortcut is a 1x1
convolution with the block's stride applied to the pre-activated input
``ReLU(BN(x))``, as in the authors' code. No dropout, no conv biases. Initialisation:
Kaiming-normal (``fan_out``, ReLU gain) for every convolution, BatchNorm weight 1 and
bias 0, linear bias 0 (the linear weight keeps PyTorch's default). WRN-28-10 for 10
classes has 36,479,194 parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcam.harness.models.init import kaiming_fan_out_


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class PreActBlock(nn.Module):
    """``BN-ReLU-conv3x3-BN-ReLU-conv3x3`` plus an identity or 1x1-conv shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.shortcut: nn.Conv2d | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        activated = F.relu(self.bn1(x))
        out = self.conv1(activated)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + (x if self.shortcut is None else self.shortcut(activated))


class WideResNet(nn.Module):
    """WRN-``depth``-``width`` for ``C, H, W`` images (see the module docstring)."""

    def __init__(self, depth: int, width: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(
                f"Invalid WRN depth: {depth} (must be 6n + 4 with n >= 1, e.g. 16, 28)"
            )
        if width < 1:
            raise ValueError(f"Invalid WRN width: {width} (must be >= 1)")
        blocks = (depth - 4) // 6
        widths = (16, 16 * width, 32 * width, 64 * width)
        self.conv = _conv3x3(in_channels, widths[0])
        stages: list[nn.Module] = []
        for stage, stride in enumerate((1, 2, 2)):
            in_channels, out_channels = widths[stage], widths[stage + 1]
            layers = [PreActBlock(in_channels, out_channels, stride)]
            layers += [PreActBlock(out_channels, out_channels, 1) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        kaiming_fan_out_(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.stages(self.conv(x))
        out = F.relu(self.bn(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))
