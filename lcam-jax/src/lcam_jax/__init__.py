"""LCAM (Loss-Controlled Asymmetric Momentum) for JAX, as optax transformations.

``lcam_jax.lcam(learning_rate, momentum_above, momentum_below, ...)`` is the optimizer,
``lcam_jax.scale_by_lcam(...)`` its momentum transformation; pass each step's loss as
``update(grads, state, params, value=loss)`` and call ``state = lcam_jax.end_epoch(state)``
at the end of every epoch. Same semantics as the PyTorch optimizer ``lcam.LCAM``.
"""

from ._transform import (
    DECISIONS,
    LOSS_AVERAGES,
    ScaleByLCAMState,
    end_epoch,
    lcam,
    lcam_state,
    scale_by_lcam,
)
from ._version import __version__

__all__ = [
    "DECISIONS",
    "LOSS_AVERAGES",
    "ScaleByLCAMState",
    "end_epoch",
    "lcam",
    "lcam_state",
    "scale_by_lcam",
    "__version__",
]
