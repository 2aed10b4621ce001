"""lcam.integrations.lightning.LCAMCallback with a real lightning.Trainer on CPU: every
precision, gradient accumulation and manual optimization decide step by step like the
hand-written loop (tests/integration_reference.py) on the same data and seed."""

from __future__ import annotations

import warnings

import pytest
import torch
from integration_reference import TracingLCAM, batches, decisions, network, reference_loop
from torch import nn

pl = pytest.importorskip(
    "lightning.pytorch", reason="lightning is not installed: pip install 'lcam[lightning]'"
)
from lightning.pytorch.loggers import Logger  # noqa: E402
from lightning.pytorch.plugins import MixedPrecision  # noqa: E402

from lcam.integrations.lightning import LCAMCallback  # noqa: E402

EPOCHS = 2
OPTIONS = dict(lr=0.2, momentum_above=0.9, momentum_below=0.5)


class Classifier(pl.LightningModule):
    def __init__(self, *, manual: bool = False, decision: str = "current",
                 optimizer: str = "lcam") -> None:
        super().__init__()
        self.net = network()
        self.automatic_optimization = not manual
        self.decision, self.optimizer_name = decision, optimizer

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        if self.automatic_optimization:
            return loss
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        return None

    def configure_optimizers(self):
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(self.parameters(), lr=0.1)
        return TracingLCAM(self.parameters(), decision=self.decision, **OPTIONS)


class MetricsLogger(Logger):
    """Keeps every ``log_metrics`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, float]] = []

    @property
    def name(self) -> str:
        return "metrics"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.rows.append(dict(metrics))


def _fit(module, tmp_path, **trainer_options):
    logger = MetricsLogger()
    trainer = pl.Trainer(
        max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=logger,
        callbacks=[LCAMCallback()], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1,
        default_root_dir=tmp_path, **trainer_options,
    )
    loader = torch.utils.data.DataLoader(batches(), batch_size=None)  # the same 5 batches
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CPU-only, tiny-dataset and num_workers advice
        trainer.fit(module, loader)
    return trainer, logger


CONFIGS = {
    "32-true": dict(precision="32-true", decision="current"),
    "bf16-mixed": dict(precision="bf16-mixed", decision="lagged"),
    "16-mixed": dict(precision="16-mixed", decision="current"),
    "32-true-accumulate_grad_batches=2": dict(precision="32-true", accumulation=2,
                                              decision="lagged"),
    "32-true-manual-optimization": dict(precision="32-true", manual=True, decision="current"),
}
REFERENCE_PRECISION = {"32-true": "fp32", "bf16-mixed": "bf16", "16-mixed": "fp16"}


def _precision(name: str) -> dict:
    # Trainer(accelerator="cpu", precision="16-mixed") falls back to bf16-mixed with a
    # warning; the plugin itself runs fp16 autocast with a GradScaler on CPU.
    if name == "16-mixed":
        return dict(plugins=[MixedPrecision("16-mixed", "cpu")])
    return dict(precision=name)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_lightning_decides_every_step_like_the_hand_written_loop(name, tmp_path):
    config = CONFIGS[name]
    accumulation = config.get("accumulation", 1)
    module = Classifier(manual=config.get("manual", False), decision=config["decision"])
    trainer, logger = _fit(module, tmp_path, accumulate_grad_batches=accumulation,
                           **_precision(config["precision"]))
    scaler = getattr(trainer.precision_plugin, "scaler", None)
    assert (scaler is not None) == (config["precision"] == "16-mixed")
    opt = trainer.optimizers[0]

    model = network()
    reference = TracingLCAM(model.parameters(), decision=config["decision"], **OPTIONS)
    reference_loop(model, reference, epochs=EPOCHS, accumulation=accumulation,
                   precision=REFERENCE_PRECISION[config["precision"]])

    steps_per_epoch = -(-len(batches()) // accumulation)  # the last cycle may be short
    assert len(opt.trace) == EPOCHS * steps_per_epoch
    assert decisions(opt.trace) == decisions(reference.trace)
    assert {"A", "B"} <= set(decisions(opt.trace))  # both momenta were used
    assert opt.trace == reference.trace  # and the same running average after every step
    assert all(torch.equal(a, b) for a, b in
               zip(module.net.parameters(), model.parameters(), strict=True))
    assert opt.recorded_loss_count == 0
    # One row per epoch, logged through pl_module.log (float32 in Lightning).
    epoch_ends = [s for k, s in enumerate(reference.trace) if (k + 1) % steps_per_epoch == 0]
    logged = [row for row in logger.rows if "lcam/fraction_above" in row]
    assert [row["lcam/fraction_above"] for row in logged] == pytest.approx(
        [s.fraction_above for s in epoch_ends], rel=1e-6)
    assert [row["lcam/loss_average"] for row in logged] == pytest.approx(
        [s.loss_average for s in epoch_ends], rel=1e-6)
    # end_epoch() ran at each epoch's end: one window per epoch.
    assert [s.window_index for s in epoch_ends] == list(range(EPOCHS))
    assert opt.statistics().window_index == EPOCHS


def test_callback_without_an_lcam_optimizer_says_what_to_do(tmp_path):
    with pytest.raises(ValueError, match=r"needs exactly one lcam\.LCAM among the trainer's "
                                         r"optimizers, found 0 \(optimizers: \['SGD'\]\)"):
        _fit(Classifier(optimizer="sgd"), tmp_path, max_steps=1)
