import torch
from accelerate import Accelerator
from torch import nn

from lcam import LCAM

accelerator = Accelerator(gradient_accumulation_steps=2)
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
opt = LCAM(model.parameters(), lr=0.1, momentum_above=0.9, momentum_below=0.95,
           decision="lagged")
data = torch.utils.data.TensorDataset(torch.randn(64, 8), torch.randint(0, 3, (64,)))
loader = torch.utils.data.DataLoader(data, batch_size=8)
model, optimizer, loader = accelerator.prepare(model, opt, loader)

for epoch in range(2):
    for x, y in loader:
        with accelerator.accumulate(model):
            loss = nn.functional.cross_entropy(model(x), y)
            accelerator.backward(loss)
            opt.record_loss(loss)  # the one extra line: on the LCAM object itself
            optimizer.step()
            optimizer.zero_grad()
    print(epoch, opt.statistics())
    opt.end_epoch()
