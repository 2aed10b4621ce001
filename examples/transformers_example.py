import torch
from torch import nn
from transformers import TrainingArguments

from lcam.integrations.transformers import LCAMTrainer


class Classifier(nn.Module):  # any model whose forward returns the loss, as HF models do
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x, labels):
        logits = self.net(x)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


torch.manual_seed(0)
train = [{"x": torch.randn(8), "labels": torch.tensor(i % 3)} for i in range(64)]
args = TrainingArguments(output_dir="lcam-trainer-example", num_train_epochs=2,
                         per_device_train_batch_size=8, gradient_accumulation_steps=2,
                         learning_rate=0.1, weight_decay=5e-4, use_cpu=True,
                         report_to="none", save_strategy="no")
trainer = LCAMTrainer(model=Classifier(), args=args, train_dataset=train,
                      lcam_options={"momentum_above": 0.9, "momentum_below": 0.95,
                                    "decision": "lagged"})
trainer.train()
print([row for row in trainer.state.log_history if "lcam/fraction_above" in row])
