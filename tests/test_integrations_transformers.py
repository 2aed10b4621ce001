"""lcam.integrations.transformers.LCAMTrainer with a real transformers.Trainer on CPU, on
a tiny torch model built here (no hub, no download): fp32 and bf16, gradient
accumulation 1 and 2, decide step by step like the hand-written loop."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from integration_reference import (
    TracingLCAM,
    batches,
    data,
    decisions,
    network,
    reference_loop,
)
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed: pip install 'lcam[transformers]'"
)
from lcam import LCAM  # noqa: E402
from lcam.integrations.transformers import LCAMTrainer  # noqa: E402

EPOCHS = 2
MOMENTA = dict(momentum_above=0.9, momentum_below=0.5)
LR, WEIGHT_DECAY = 0.2, 0.01


class TinyClassifier(nn.Module):
    """A Hugging Face style model: ``forward(x, labels)`` returns loss and logits."""

    def __init__(self) -> None:
        super().__init__()
        self.net = network()

    def forward(self, x, labels=None):
        logits = self.net(x)
        if labels is None:
            return {"logits": logits}
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def _summed_loss(outputs, labels, num_items_in_batch=None):
    """A ``compute_loss_func``: normalised over the whole accumulated batch."""
    return nn.functional.cross_entropy(outputs["logits"], labels,
                                       reduction="sum") / num_items_in_batch


def _mean_of_sum(logits, labels):
    return nn.functional.cross_entropy(logits, labels, reduction="sum") / len(labels)


def _groups(model):
    """The Trainer's groups: weight decay on the weights, none on the biases."""
    named = list(model.named_parameters())
    return [{"params": [p for n, p in named if not n.endswith("bias")],
             "weight_decay": WEIGHT_DECAY},
            {"params": [p for n, p in named if n.endswith("bias")], "weight_decay": 0.0}]


class Trace(transformers.TrainerCallback):
    """LCAM's statistics after every optimizer step (a host read per step: tests only)."""

    def __init__(self) -> None:
        self.trainer = None
        self.trace = []

    def on_step_end(self, args, state, control, **kwargs):
        self.trace.append(self.trainer.lcam.statistics())


CONFIGS = {
    "fp32-ga1-optimizers=(LCAM,None)": dict(bf16=False, ga=1, given=True),
    "fp32-ga2": dict(bf16=False, ga=2),
    "bf16-ga1": dict(bf16=True, ga=1, decision="lagged"),
    "bf16-ga2-compute_loss_func": dict(bf16=True, ga=2, loss_func=True, decision="lagged"),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_hf_trainer_decides_every_step_like_the_hand_written_loop(name, tmp_path):
    config = CONFIGS[name]
    decision = config.get("decision", "current")
    x, y = data()
    dataset = [{"x": x[i], "labels": y[i]} for i in range(len(y))]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=EPOCHS,
        learning_rate=LR, weight_decay=WEIGHT_DECAY, lr_scheduler_type="constant",
        gradient_accumulation_steps=config["ga"], bf16=config["bf16"], use_cpu=True,
        train_sampling_strategy="sequential", report_to="none", save_strategy="no",
        logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0,
    )
    model = TinyClassifier()
    trace = Trace()
    if config.get("given"):
        lcam_args = dict(optimizers=(LCAM(_groups(model), lr=LR, decision=decision, **MOMENTA),
                                     None))
    else:
        lcam_args = dict(lcam_options=dict(decision=decision, **MOMENTA))
    trainer = LCAMTrainer(
        model=model, args=args, train_dataset=dataset, callbacks=[trace],
        compute_loss_func=_summed_loss if config.get("loss_func") else None, **lcam_args,
    )
    trace.trainer = trainer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()

    reference_model = network()
    reference = TracingLCAM(_groups(reference_model), lr=LR, decision=decision, **MOMENTA)
    reference_loop(reference_model, reference, epochs=EPOCHS, accumulation=config["ga"],
                   precision="bf16" if config["bf16"] else "fp32", max_grad_norm=1.0,
                   loss_fn=_mean_of_sum if config.get("loss_func") else
                   nn.functional.cross_entropy, short_cycle_divisor="cycle")

    steps_per_epoch = -(-len(batches()) // config["ga"])  # the last cycle may be short
    assert len(trace.trace) == EPOCHS * steps_per_epoch
    assert decisions(trace.trace) == decisions(reference.trace)
    assert {"A", "B"} <= set(decisions(trace.trace))  # both momenta were used
    assert trace.trace == reference.trace  # and the same running average after every step
    assert all(torch.equal(a, b) for a, b in
               zip(model.net.parameters(), reference_model.parameters(), strict=True))
    assert trainer.lcam.recorded_loss_count == 0
    epoch_ends = [s for k, s in enumerate(reference.trace) if (k + 1) % steps_per_epoch == 0]
    logged = [row for row in trainer.state.log_history if "lcam/fraction_above" in row]
    assert [row["lcam/fraction_above"] for row in logged] == [s.fraction_above
                                                               for s in epoch_ends]
    assert [row["lcam/loss_average"] for row in logged] == [s.loss_average for s in epoch_ends]
    assert trainer.lcam.statistics().window_index == EPOCHS  # end_epoch() after each epoch


@pytest.mark.parametrize("options,error,message", [
    (dict(lcam_options={"momentum_above": 0.9}), ValueError,
     r"lcam_options lacks \['momentum_below'\]"),
    (dict(lcam_options={"momentum_above": 0.9, "momentum_below": 0.9, "lr": 0.1}), ValueError,
     r"must not contain 'lr': set TrainingArguments\(learning_rate=\.\.\.\)"),
    (dict(lcam_options={"momentum_above": 1.5, "momentum_below": 0.9}), ValueError,
     r"Invalid momentum_above value: 1\.5"),
    (dict(lcam_options={"momentum_above": 0.9, "momentum_below": 0.9, "momentum": 0.9}),
     TypeError, "momentum"),
    (dict(), ValueError, r"LCAMTrainer needs lcam_options="),
    (dict(optimizers=(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), None)),
     TypeError, r"LCAMTrainer trains with lcam\.LCAM, got optimizers=\(SGD"),
])
def test_bad_lcam_trainer_arguments_fail_before_the_trainer_is_built(options, error, message):
    with pytest.raises(error, match=message):
        LCAMTrainer(model=TinyClassifier(), args=None, **options)
