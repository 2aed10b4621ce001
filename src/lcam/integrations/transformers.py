"""LCAM in the Hugging Face ``transformers.Trainer``: :class:`LCAMTrainer`.

The Trainer calls ``optimizer.step()`` without a loss and knows nothing of LCAM's
epochs. ``LCAMTrainer`` overrides three documented methods, the way ``Seq2SeqTrainer``
does, and keeps every ``TrainingArguments`` working:

* ``create_optimizer``: builds :class:`~lcam.LCAM` with the Trainer's own parameter
  groups (``weight_decay`` on all but biases and norm layers, as for AdamW) and
  ``learning_rate``, plus the LCAM options you give, or takes the LCAM you passed in
  ``optimizers=(LCAM(...), scheduler)``;
* ``training_step`` / ``compute_loss``: hands LCAM the loss of every micro-batch with
  :meth:`LCAM.record_loss`;
* a ``TrainerCallback`` logs ``lcam/fraction_above`` and ``lcam/loss_average`` and calls
  ``end_epoch()`` at each epoch's end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ..optimizer import LCAM

__all__ = ["LCAMTrainer"]

# Taken from TrainingArguments, or set by create_optimizer itself.
_FROM_TRAINING_ARGUMENTS = {"lr": "learning_rate", "weight_decay": "weight_decay",
                            "params": None}


def _check_options(options: object) -> dict[str, Any]:
    """Validate ``lcam_options`` before anything is built; return them as a dict."""
    if not isinstance(options, Mapping):
        raise TypeError(
            f"lcam_options must be a mapping of LCAM keyword arguments, got "
            f"{type(options).__name__}"
        )
    for key, source in _FROM_TRAINING_ARGUMENTS.items():
        if key in options:
            where = (f"set TrainingArguments({source}=...)" if source else
                     "the Trainer passes the model's parameters")
            raise ValueError(f"lcam_options must not contain {key!r}: {where}")
    missing = {"momentum_above", "momentum_below"} - options.keys()
    if missing:
        raise ValueError(
            f"lcam_options lacks {sorted(missing)}: LCAM needs both momenta, e.g. "
            "lcam_options={'momentum_above': 0.9, 'momentum_below': 0.95}"
        )
    # LCAM's own validation (types, ranges, unknown names), on a throwaway parameter.
    LCAM([torch.zeros(1, requires_grad=True)], **options)
    return dict(options)


class _EndLCAMEpoch(TrainerCallback):
    def __init__(self, trainer: LCAMTrainer) -> None:
        self.trainer = trainer

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self.trainer.end_lcam_epoch()


class LCAMTrainer(Trainer):
    """``transformers.Trainer`` that trains with :class:`~lcam.LCAM`.

    Either build LCAM from the arguments::

        trainer = LCAMTrainer(model=model, args=TrainingArguments(..., learning_rate=0.1,
                              weight_decay=5e-4),
                              lcam_options={"momentum_above": 0.9, "momentum_below": 0.95,
                                            "decision": "lagged"}, train_dataset=...)

    (``lr`` and ``weight_decay`` come from ``TrainingArguments``; ``optim`` and
    ``optim_args`` are not used), or pass one: ``optimizers=(LCAM(...), scheduler)``.

    The loss LCAM decides on is the loss of the whole accumulated batch, recorded per
    micro-batch: ``compute_loss``'s value inside ``training_step``, before the Trainer
    divides it by the gradient-accumulation steps. When the loss is already normalised
    over the accumulated batch (the Trainer's ``loss_is_scaled_for_ga``: a model that
    takes ``num_items_in_batch``, or ``compute_loss_func``), each recorded value is
    multiplied back by the number of micro-batches of the step, so that their mean is
    the accumulated batch's loss in that case too. Evaluation losses are not recorded.

    All other arguments are those of ``transformers.Trainer``.
    """

    def __init__(self, *args: Any, lcam_options: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        given = kwargs.get("optimizers", (None, None))[0]
        if given is not None and not isinstance(given, LCAM):
            raise TypeError(
                f"LCAMTrainer trains with lcam.LCAM, got optimizers=({type(given).__name__}, "
                "...): pass an LCAM, or lcam_options={...} to have it built"
            )
        if given is not None and lcam_options is not None:
            raise ValueError("pass either optimizers=(LCAM(...), scheduler) or lcam_options, "
                             "not both")
        if given is None and lcam_options is None:
            raise ValueError(
                "LCAMTrainer needs lcam_options={'momentum_above': ..., 'momentum_below': "
                "...} (LCAM is then built from TrainingArguments) or "
                "optimizers=(LCAM(...), scheduler)"
            )
        if kwargs.get("optimizer_cls_and_kwargs") is not None:
            raise ValueError("LCAMTrainer chooses the optimizer itself: drop "
                             "optimizer_cls_and_kwargs and use lcam_options")
        self.lcam_options = None if lcam_options is None else _check_options(lcam_options)
        self.lcam: LCAM | None = given
        self._recording = False
        super().__init__(*args, **kwargs)
        self.add_callback(_EndLCAMEpoch(self))

    # ------------------------------------------------------------------ optimizer
    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's parameter groups and ``learning_rate`` with LCAM (see the class)."""
        if self.optimizer is None:
            assert self.lcam_options is not None
            self.optimizer_cls_and_kwargs = (
                LCAM, {"lr": self.args.learning_rate, **self.lcam_options})
        optimizer = super().create_optimizer(model)
        if not isinstance(optimizer, LCAM):
            raise TypeError(f"LCAMTrainer's optimizer must be lcam.LCAM, got "
                            f"{type(optimizer).__name__}")
        self.lcam = optimizer
        return optimizer

    # ------------------------------------------------------------------- the loss
    def training_step(
        self, model: nn.Module, inputs: dict[str, Any],
        num_items_in_batch: Tensor | int | None = None,
    ) -> Tensor:
        """The Trainer's step; the loss computed in it is recorded for LCAM."""
        self._recording = True
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            self._recording = False

    def compute_loss(
        self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
        num_items_in_batch: Tensor | int | None = None,
    ) -> Any:
        """The Trainer's loss; inside ``training_step`` it is also recorded for LCAM."""
        result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                      num_items_in_batch=num_items_in_batch)
        if self._recording:
            loss = result[0] if isinstance(result, tuple) else result
            self._record(loss, num_items_in_batch)
        return result

    def _loss_is_scaled_for_ga(self, num_items_in_batch: Tensor | int | None) -> bool:
        # The rule Trainer.training_step applies before dividing by the GA steps.
        declared = getattr(self, "loss_is_scaled_for_ga", None)
        if declared is not None:
            return bool(declared)
        return bool((self.model_accepts_loss_kwargs and num_items_in_batch is not None)
                    or self.compute_loss_func is not None)

    def _record(self, loss: Tensor, num_items_in_batch: Tensor | int | None) -> None:
        if self.lcam is None:
            raise RuntimeError("LCAMTrainer recorded a loss before create_optimizer() ran")
        value = loss.detach()
        if value.numel() > 1:  # DataParallel: one loss per GPU, averaged like the Trainer
            value = value.mean()
        if self._loss_is_scaled_for_ga(num_items_in_batch):
            value = value * self.current_gradient_accumulation_steps
        self.lcam.record_loss(value)

    # ------------------------------------------------------------------- epochs
    def end_lcam_epoch(self) -> None:
        """Log this epoch's LCAM statistics (one host read) and start LCAM's next window."""
        if self.lcam is None:
            return
        stats = self.lcam.statistics()
        logs = {}
        if stats.fraction_above is not None:
            logs["lcam/fraction_above"] = stats.fraction_above
        if stats.loss_average is not None:
            logs["lcam/loss_average"] = stats.loss_average
        if logs:
            self.log(logs)
        self.lcam.end_epoch()
