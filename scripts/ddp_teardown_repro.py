"""Does a 2-rank gloo DDP job hang at exit? Runs N jobs, each under a timeout.

    python scripts/ddp_teardown_repro.py lcam 12 60    # or: sgd 12 60

Each job: 2 ranks, DDP over a small float64 MLP, 30 steps of torch's SGD or of LCAM
(whose default all_reduce_loss=True all-reduces the loss every step), then
destroy_process_group() and exit. Measured numbers are in docs/COMPAT.md.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, which: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(),
                                    torch.nn.Linear(16, 3)).double()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        if which == "sgd":
            opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
        else:
            from lcam import LCAM
            opt = LCAM(ddp.parameters(), lr=0.1, momentum_above=0.9, momentum_below=0.95)
        gen = torch.Generator().manual_seed(rank)
        for _ in range(30):
            x = torch.randn(16, 8, generator=gen, dtype=torch.float64)
            y = torch.randint(0, 3, (16,), generator=gen)
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(ddp(x), y)
            loss.backward()
            opt.step() if which == "sgd" else opt.step(loss=loss)
    finally:
        dist.destroy_process_group()


def main() -> None:
    which, jobs, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if len(sys.argv) > 4:  # one job (a child of the loop below)
        mp.spawn(_worker, args=(2, _port(), which), nprocs=2, join=True)
        return
    hangs = 0
    for i in range(jobs):
        start = time.time()
        proc = subprocess.Popen([sys.executable, __file__, which, "1", "0", "one"],
                                start_new_session=True)
        try:
            status = f"rc={proc.wait(timeout=timeout)}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            hangs += 1
            status = "HANG"
        print(f"{which} torch {torch.__version__} job {i}: {status} "
              f"{time.time() - start:.1f}s", flush=True)
    print(f"SUMMARY {which} torch {torch.__version__}: {hangs}/{jobs} jobs hung "
          f"(> {timeout:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
