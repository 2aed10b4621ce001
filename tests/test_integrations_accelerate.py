"""LCAM under Hugging Face Accelerate (``Accelerator(cpu=True)``): the documented extra
line ``opt.record_loss(loss)`` before ``optimizer.step()``, with and without
``accelerator.accumulate(...)``, decides step by step like the hand-written loop."""

from __future__ import annotations

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

accelerate = pytest.importorskip(
    "accelerate", reason="accelerate is not installed: pip install 'lcam[accelerate]'"
)
from accelerate.state import AcceleratorState, GradientState  # noqa: E402

EPOCHS = 2
OPTIONS = dict(lr=0.2, momentum_above=0.9, momentum_below=0.5)


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """Accelerate keeps process-wide singletons; each test builds its own Accelerator."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.mark.parametrize("accumulation", [1, 2], ids=["plain", "accumulate(k=2)"])
def test_record_loss_before_the_accelerated_step_decides_like_the_hand_written_loop(
    accumulation,
):
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=accumulation)
    model = network()
    opt = TracingLCAM(model.parameters(), decision="lagged", **OPTIONS)
    x, y = data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    model, optimizer, loader = accelerator.prepare(model, opt, loader)
    for _ in range(EPOCHS):
        for inputs, labels in loader:
            if accumulation == 1:
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(inputs), labels)
                accelerator.backward(loss)
                opt.record_loss(loss)  # the one extra line
                optimizer.step()
                continue
            with accelerator.accumulate(model):
                loss = nn.functional.cross_entropy(model(inputs), labels)
                accelerator.backward(loss)  # divides by the accumulation steps itself
                opt.record_loss(loss)  # the raw micro-batch loss
                optimizer.step()  # a no-op until the last micro-batch of the cycle
                optimizer.zero_grad()
        opt.end_epoch()

    reference_model = network()
    reference = TracingLCAM(reference_model.parameters(), decision="lagged", **OPTIONS)
    reference_loop(reference_model, reference, epochs=EPOCHS, accumulation=accumulation)
    assert len(opt.trace) == EPOCHS * -(-len(batches()) // accumulation)
    assert decisions(opt.trace) == decisions(reference.trace)
    assert {"A", "B"} <= set(decisions(opt.trace))
    assert opt.trace == reference.trace
    assert all(torch.equal(a, b) for a, b in zip(accelerator.unwrap_model(model).parameters(),
                                                 reference_model.parameters(), strict=True))
    assert opt.recorded_loss_count == 0
