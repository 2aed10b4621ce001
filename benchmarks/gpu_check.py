"""GPU check: training throughput of LCAM vs torch.optim.SGD, and a sync-free LCAM.step.

Run on a machine with CUDA:

    python benchmarks/gpu_check.py                      # WRN-28-10, batch 128, bf16
    python benchmarks/gpu_check.py --model wrn-16-4 --device cpu --steps 4   # dry run

What it does, on CIFAR-shaped synthetic data (uint8 on the device, normalised per
batch as the harness does):

1. Trains WRN-28-10 with bf16 autocast and channels_last, once with
   ``torch.optim.SGD(momentum=0.9, weight_decay=5e-4)`` and once with
   ``LCAM(momentum_above=0.9, momentum_below=0.95, ...)``, in alternating chunks of
   steps (so clock changes and other load hit both), and prints images/s of each and the
   median ratio LCAM/SGD over the chunk pairs. Target: >= 0.98.
2. Runs ``LCAM.step`` under ``torch.cuda.set_sync_debug_mode("error")``: any
   host-device synchronisation inside the step raises, and the check fails.

Exit status 0 when both checks pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from lcam import LCAM
from lcam.harness.models import build_model

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_trainer(model_name: str, optimizer: str, device: torch.device, batch: int):
    torch.manual_seed(0)
    model = build_model(model_name, num_classes=10, input_shape=(3, 32, 32)).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    else:
        opt = LCAM(model.parameters(), lr=0.1, momentum_above=0.9, momentum_below=0.95,
                   weight_decay=5e-4, decision="lagged")
    gen = torch.Generator(device="cpu").manual_seed(1)
    images = torch.randint(0, 256, (batch * 8, 3, 32, 32), dtype=torch.uint8,
                           generator=gen).to(device)
    labels = torch.randint(0, 10, (batch * 8,), generator=gen).to(device)
    mean, std = MEAN.to(device), STD.to(device)
    state = {"i": 0}

    def train_step() -> None:
        k = state["i"] % 8
        state["i"] += 1
        x = (images[k * batch:(k + 1) * batch].float() / 255 - mean) / std
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels[k * batch:(k + 1) * batch]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if isinstance(opt, LCAM):
            opt.step(loss=loss.detach())
        else:
            opt.step()

    return model, opt, train_step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="wrn-28-10")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed chunk")
    parser.add_argument("--chunks", type=int, default=7)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine; run it on a CUDA machine "
              "(or pass --device cpu --model wrn-16-4 for a dry run of the script)")
        return 1
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")

    trainers = {name: make_trainer(args.model, name, device, args.batch)
                for name in ("sgd", "lcam")}
    for _, _, step in trainers.values():  # warm-up: cudnn autotune, buffers, allocator
        for _ in range(3):
            step()
    synchronize(device)

    rates: dict[str, list[float]] = {"sgd": [], "lcam": []}
    for _ in range(args.chunks):
        for name, (_, _, step) in trainers.items():
            synchronize(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            synchronize(device)
            rates[name].append(args.steps * args.batch / (time.perf_counter() - t0))
    ratio = statistics.median(
        lc / sg for lc, sg in zip(rates["lcam"], rates["sgd"], strict=True))
    print(f"{args.model}, batch {args.batch}, bf16 autocast "
          f"{'+ channels_last' if device.type == 'cuda' else '(off on cpu)'}")
    for name, values in rates.items():
        print(f"  {name:>4}: {statistics.median(values):10.1f} images/s (median of "
              f"{len(values)} chunks of {args.steps} steps)")
    print(f"  LCAM / SGD throughput ratio (median of paired chunks): {ratio:.3f} "
          f"(target >= 0.98)")
    ok = ratio >= 0.98

    model, opt, step = trainers["lcam"]
    if device.type == "cuda":
        x = torch.randn(args.batch, 3, 32, 32, device=device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), torch.zeros(args.batch, dtype=torch.long,
                                                         device=device))
        loss.backward()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(3):
                opt.step(loss=loss.detach())  # type: ignore[call-arg]
                opt.end_epoch()  # type: ignore[attr-defined]
            print("  LCAM.step under set_sync_debug_mode('error'): no host sync")
        except RuntimeError as error:
            print(f"  LCAM.step synchronised with the host: {error}")
            ok = False
        finally:
            torch.cuda.set_sync_debug_mode("default")
    stats = opt.statistics()  # type: ignore[attr-defined]
    print(f"  LCAM steps this window: {stats.steps_above} above / {stats.steps_below} below")
    print("gpu_check:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
