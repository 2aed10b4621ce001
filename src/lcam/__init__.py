"""lcam: Loss-Controlled Asymmetric Momentum for PyTorch.

>>> from lcam import LCAM
>>> # opt = LCAM(model.parameters(), lr=0.1, momentum_above=0.9, momentum_below=0.95)
"""

from ._version import __version__
from .loss_statistics import LossStatistics
from .momentum import balanced_momentum, matched_momentum
from .optimizer import LCAM

__all__ = ["LCAM", "LossStatistics", "balanced_momentum", "matched_momentum", "__version__"]
