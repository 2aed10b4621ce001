"""LCAM across processes (gloo, 2 ranks) and under torch.compile."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lcam_reference import batch_loss, make_problem

from lcam import LCAM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, all_reduce: bool, out: str,
            record: bool = False) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        model, batches = make_problem(torch.float64, seed=0)  # same init on every rank
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        opt = LCAM(ddp.parameters(), lr=0.1, momentum_above=0.9, momentum_below=0.95,
                   decision="lagged", all_reduce_loss=all_reduce)
        fractions = []
        for _ in range(3):
            for k in range(len(batches)):
                # Each rank sees its own mini-batch, so local losses differ.
                x, y = batches[(k + 3 * rank) % len(batches)]
                opt.zero_grad()
                if record:  # two micro-batches per step, each loss handed over
                    for xs, ys in zip(x.chunk(2), y.chunk(2), strict=True):
                        micro = torch.nn.functional.cross_entropy(ddp(xs), ys)
                        (micro / 2).backward()
                        opt.record_loss(micro)
                    opt.step()
                    continue
                loss = torch.nn.functional.cross_entropy(ddp(x), y)
                loss.backward()
                opt.step(loss=loss)
            fractions.append(opt.statistics().fraction_above)
            opt.end_epoch()
        torch.save({"params": [p.detach() for p in model.parameters()],
                    "fractions": fractions}, f"{out}/rank{rank}.pt")
        # Both ranks finish their collectives before either closes its gloo connections:
        # without it a rank can abort on the peer's closed socket at teardown.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _run_two_ranks(tmp_path, all_reduce: bool, record: bool = False):
    mp.spawn(_worker, args=(2, _free_port(), all_reduce, str(tmp_path), record), nprocs=2,
             join=True)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]


@pytest.mark.slow
def test_ranks_with_different_losses_take_the_same_decisions(tmp_path):
    r0, r1 = _run_two_ranks(tmp_path, all_reduce=True)
    assert r0["fractions"] == r1["fractions"]
    assert all(torch.equal(a, b) for a, b in zip(r0["params"], r1["params"], strict=True))


@pytest.mark.slow
def test_recorded_micro_batch_losses_are_all_reduced_so_ranks_take_the_same_decisions(tmp_path):
    """record_loss + step(): the recorded mean goes through the same all-reduce (on these
    batches local losses make the ranks drift apart: see the control test below)."""
    r0, r1 = _run_two_ranks(tmp_path, all_reduce=True, record=True)
    assert r0["fractions"] == r1["fractions"]
    assert all(torch.equal(a, b) for a, b in zip(r0["params"], r1["params"], strict=True))


@pytest.mark.slow
def test_without_the_all_reduce_ranks_drift_apart(tmp_path):
    """The control for the test above: the all-reduce is what keeps ranks identical."""
    r0, r1 = _run_two_ranks(tmp_path, all_reduce=False)
    assert r0["fractions"] != r1["fractions"]
    assert not all(torch.equal(a, b) for a, b in zip(r0["params"], r1["params"], strict=True))


@pytest.mark.slow
def test_compiled_step_does_not_recompile_when_the_momentum_switches():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    model, batches = make_problem(seed=1)
    opt = LCAM(model.parameters(), lr=0.1, momentum_above=0.9, momentum_below=0.95)

    @torch.compile
    def compiled_step(loss):
        opt.step(loss=loss)

    eager, _ = make_problem(seed=1)
    eager_opt = LCAM(eager.parameters(), lr=0.1, momentum_above=0.9, momentum_below=0.95,
                     foreach=True)
    graphs_after_warmup = None
    for epoch in range(3):
        for k, batch in enumerate(batches):
            for net, o in ((model, opt), (eager, eager_opt)):
                o.zero_grad()
                loss = batch_loss(net, batch)
                loss.backward()
                if o is opt:
                    compiled_step(loss)
                else:
                    o.step(loss=loss)
            if epoch == 0 and k == 1:  # the first step creates the buffers: 2 graphs
                graphs_after_warmup = counters["stats"]["unique_graphs"]
        stats = opt.statistics()
        assert stats.steps_above > 0 and stats.steps_below > 0  # the momentum did switch
        opt.end_epoch()
        eager_opt.end_epoch()
    assert counters["stats"]["unique_graphs"] == graphs_after_warmup
    # Inductor may reorder float math: compiled and eager agree to float32 rounding.
    for a, b in zip(model.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
