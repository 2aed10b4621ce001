"""The CNN and the MLP of the MNIST-1D reference code, for ``1 x 40`` signals.

The layers, widths and strides are those of the reference models that the MNIST-1D
benchmark's published accuracies come from (CNN 94%, MLP 68% test accuracy), with
PyTorch's default initialisation, as there.

``mnist1d-cnn`` (5,210 parameters with 10 classes; width 25, option ``channels``)::

    conv1d 1 -> 25, kernel 5, stride 2, padding 1, ReLU     25 x 19
    conv1d 25 -> 25, kernel 3, stride 2, padding 1, ReLU    25 x 10
    conv1d 25 -> 25, kernel 3, stride 2, padding 1, ReLU    25 x 5
    flatten, linear 125 -> num_classes

``mnist1d-mlp`` (15,210 parameters; hidden width 100, option ``hidden_size``)::

    h = relu(linear(40 -> 100)(x))
    h = h + relu(linear(100 -> 100)(h))        (a residual connection)
    linear 100 -> num_classes
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["Mnist1dCNN", "Mnist1dMLP"]


def _conv_length(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class Mnist1dCNN(nn.Module):
    """Three strided 1-D convolutions and a linear classifier."""

    def __init__(self, num_classes: int, in_channels: int = 1, length: int = 40,
                 channels: int = 25) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"Invalid channels for mnist1d-cnn: {channels} (must be >= 1)")
        self.conv1 = nn.Conv1d(in_channels, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        out = _conv_length(_conv_length(_conv_length(length, 5, 2, 1), 3, 2, 1), 3, 2, 1)
        if out < 1:
            raise ValueError(f"mnist1d-cnn needs signals of at least 5 samples, got {length}")
        self.linear = nn.Linear(channels * out, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(x).relu()
        h = self.conv2(h).relu()
        h = self.conv3(h).relu()
        return self.linear(h.flatten(1))


class Mnist1dMLP(nn.Module):
    """Two hidden layers (the second residual) on the flattened signal."""

    def __init__(self, num_classes: int, input_size: int = 40, hidden_size: int = 100) -> None:
        super().__init__()
        if hidden_size < 1:
            raise ValueError(f"Invalid hidden_size for mnist1d-mlp: {hidden_size} (must be >= 1)")
        self.linear1 = nn.Linear(input_size, hidden_size)
        self.linear2 = nn.Linear(hidden_size, hidden_size)
        self.linear3 = nn.Linear(hidden_size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.linear1(x.flatten(1)).relu()
        h = h + self.linear2(h).relu()
        return self.linear3(h)
