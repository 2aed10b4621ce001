"""The initialisation the paper's CNNs use, shared by WRN, M11 and the digits CNN.

Kaiming-normal weights with ``fan_out`` mode and the ReLU gain for every convolution
(1-D and 2-D), BatchNorm weight 1 and bias 0, linear bias 0; linear weights keep
PyTorch's default (uniform, bound ``1/sqrt(fan_in)``).
"""

from __future__ import annotations

from torch import nn


def kaiming_fan_out_(model: nn.Module) -> None:
    """Re-initialise ``model``'s convolution, BatchNorm and linear layers in place."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
