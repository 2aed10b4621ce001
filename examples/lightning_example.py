import lightning as L
import torch
from torch import nn

from lcam import LCAM
from lcam.integrations.lightning import LCAMCallback


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return LCAM(self.parameters(), lr=0.1, momentum_above=0.9, momentum_below=0.95,
                    decision="lagged")


torch.manual_seed(0)
data = torch.utils.data.TensorDataset(torch.randn(64, 8), torch.randint(0, 3, (64,)))
trainer = L.Trainer(max_epochs=2, accumulate_grad_batches=2, callbacks=[LCAMCallback()],
                    accelerator="cpu", logger=False, enable_checkpointing=False,
                    enable_progress_bar=False)
trainer.fit(Classifier(), torch.utils.data.DataLoader(data, batch_size=8))
print(trainer.callback_metrics)  # lcam/fraction_above, lcam/loss_average of the last epoch
