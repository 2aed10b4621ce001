"""lcam: Loss-Controlled Asymmetric Momentum for PyTorch."""

__version__ = "0.1.0"
