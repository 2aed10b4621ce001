"""LCAM in ``lightning.Trainer``: :class:`LCAMCallback`.

Lightning calls ``optimizer.step(closure)`` (32-true, bf16-mixed) or, under 16-mixed,
``GradScaler.step(optimizer)`` without a loss, and never calls ``LCAM.end_epoch()``.
The callback hands LCAM every micro-batch's loss through :meth:`LCAM.record_loss` from
the documented ``on_before_backward`` hook, so the step decides on the mean over the
whole accumulated batch, and it ends LCAM's averaging window at every training epoch's
end, after logging that epoch's statistics with ``pl_module.log``. It patches nothing.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from ..optimizer import LCAM

__all__ = ["LCAMCallback"]


class LCAMCallback(Callback):
    """Feed LCAM each micro-batch's loss, restart its window every epoch, log per epoch.

    Add it to the trainer whose ``configure_optimizers`` returns one :class:`~lcam.LCAM`::

        trainer = lightning.Trainer(callbacks=[LCAMCallback()], ...)

    The loss recorded for a micro-batch is the one ``training_step`` returned (automatic
    optimization) or the one passed to ``manual_backward`` (manual optimization), as it
    was before Lightning's processing: ``on_before_backward`` receives it divided by
    ``accumulate_grad_batches`` (automatic optimization) and multiplied by the
    GradScaler's scale (16-mixed); the callback undoes both on the device. Both factors
    are powers of two for ``accumulate_grad_batches`` in 1, 2, 4, ..., so the recorded
    loss is then exactly the micro-batch's loss; for other values it is within one
    rounding of it.

    At each training epoch's end it logs ``{prefix}fraction_above`` (the fraction of the
    epoch's steps that used ``momentum_above``) and ``{prefix}loss_average`` through
    ``pl_module.log`` (one host read per epoch), then calls ``end_epoch()``.

    Args:
        prefix: prefix of the logged metric names.
    """

    def __init__(self, *, prefix: str = "lcam/") -> None:
        super().__init__()
        if not isinstance(prefix, str):
            raise TypeError(f"Invalid prefix: {prefix!r} (must be a str)")
        self.prefix = prefix
        self._lcam: LCAM | None = None

    @staticmethod
    def find_lcam(trainer: Trainer) -> LCAM:
        """The trainer's one LCAM optimizer; a clear error if there is none or several."""
        found = [opt for opt in trainer.optimizers if isinstance(opt, LCAM)]
        if len(found) != 1:
            kinds = [type(opt).__name__ for opt in trainer.optimizers]
            raise ValueError(
                f"LCAMCallback needs exactly one lcam.LCAM among the trainer's optimizers, "
                f"found {len(found)} (optimizers: {kinds}); return one LCAM from "
                "configure_optimizers(), or remove the callback"
            )
        return found[0]

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._lcam = self.find_lcam(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._lcam = None

    def _optimizer(self, trainer: Trainer) -> LCAM:
        if self._lcam is None:
            self._lcam = self.find_lcam(trainer)
        return self._lcam

    def on_before_backward(
        self, trainer: Trainer, pl_module: LightningModule, loss: Tensor
    ) -> None:
        if not trainer.training:
            return
        value = loss.detach()
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and scaler.is_enabled():
            value = value / scaler.scale(torch.ones((), dtype=value.dtype, device=value.device))
        if pl_module.automatic_optimization and trainer.accumulate_grad_batches != 1:
            value = value * trainer.accumulate_grad_batches
        self._optimizer(trainer).record_loss(value)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        opt = self._optimizer(trainer)
        stats = opt.statistics()
        metrics: dict[str, Any] = {}
        if stats.fraction_above is not None:
            metrics[f"{self.prefix}fraction_above"] = stats.fraction_above
        if stats.loss_average is not None:
            metrics[f"{self.prefix}loss_average"] = stats.loss_average
        for name, value in metrics.items():
            pl_module.log(name, value, on_step=False, on_epoch=True)
        opt.end_epoch()
