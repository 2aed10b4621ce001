"""Optimizer step time: LCAM vs torch.optim.SGD on the parameter shapes of WRN-28-10.

Run:  .venv/bin/python benchmarks/step_overhead.py [--rounds 24] [--device cpu]

All variants step the same shapes (about 36.5M float32 parameters in 80 tensors, the
shapes of WRN-28-10 for 10 classes) with weight decay 5e-4. They run interleaved, one
timed step of each variant per round in a rotating order, so that load from other
processes hits every variant alike. The script prints the median over rounds of each
variant's time divided by ``SGD(fused=True)``'s time in the same round, and the
achieved bandwidth, counting the minimum traffic of a momentum step (20 bytes per
float32 parameter: read param, grad and buffer, write param and buffer) against the
machine's in-place bandwidth measured the same way (``x += y`` on buffers of the same
total size: 12 bytes/elem).

LCAM alternates its loss between two values, so its decision flips every step.
Target: LCAM's default path at most 1.05x SGD(fused=True) on CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from lcam import LCAM


def wrn_shapes(depth: int = 28, width: int = 10, num_classes: int = 10) -> list[tuple[int, ...]]:
    """Parameter shapes of the harness's Wide ResNet, read off a model built on the meta
    device (no memory allocated)."""
    from lcam.harness.models.wrn import WideResNet

    with torch.device("meta"):
        model = WideResNet(depth, width, num_classes)
    return [tuple(p.shape) for p in model.parameters()]


def make_params(shapes: list[tuple[int, ...]], device: str) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen).to(device).requires_grad_(True)
        p.grad = torch.randn(shape, generator=gen).to(device) * 1e-3
        params.append(p)
    return params


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def in_place_bandwidth(numel: int, device: str, repeats: int = 15) -> float:
    """Bytes/s of ``x += y`` over ``numel`` float32 elements (read 8, write 4 bytes).

    The fastest of ``repeats`` runs: the machine's limit, not a typical time.
    """
    x = torch.randn(numel, device=device)
    y = torch.randn(numel, device=device)
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        x.add_(y)
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return 12 * numel / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    shapes = wrn_shapes()
    numel = sum(torch.Size(s).numel() for s in shapes)
    print(f"WRN-28-10 shapes: {len(shapes)} tensors, {numel / 1e6:.2f}M float32 parameters, "
          f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")

    common = dict(lr=0.1, weight_decay=5e-4)
    variants: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
        "SGD(fused=True)": lambda p: torch.optim.SGD(p, momentum=0.9, fused=True, **common),
        "SGD(foreach=False)": lambda p: torch.optim.SGD(p, momentum=0.9, foreach=False,
                                                        **common),
        "SGD(foreach=True)": lambda p: torch.optim.SGD(p, momentum=0.9, foreach=True, **common),
        "LCAM default": lambda p: LCAM(p, momentum_above=0.9, momentum_below=0.95, **common),
        "LCAM(foreach=True)": lambda p: LCAM(p, momentum_above=0.9, momentum_below=0.95,
                                             foreach=True, **common),
        "LCAM(foreach=False)": lambda p: LCAM(p, momentum_above=0.9, momentum_below=0.95,
                                              foreach=False, **common),
    }
    optimizers = {name: make(make_params(shapes, args.device)) for name, make in variants.items()}
    losses = [torch.tensor(1.0, device=args.device), torch.tensor(2.0, device=args.device)]

    def step(name: str, opt: torch.optim.Optimizer, i: int) -> None:
        if isinstance(opt, LCAM):
            opt.step(loss=losses[i % 2])
        else:
            opt.step()

    for name, opt in optimizers.items():  # warm-up: buffers exist, caches are hot
        for i in range(2):
            step(name, opt, i)

    times: dict[str, list[float]] = {name: [] for name in optimizers}
    names = list(optimizers)
    for r in range(args.rounds):
        # Rotate the order every round: a variant that allocates temporaries (foreach
        # with weight decay) must not always run just before the same neighbour.
        for name in names[r % len(names):] + names[: r % len(names)]:
            opt = optimizers[name]
            synchronize(args.device)
            t0 = time.perf_counter()
            step(name, opt, r)
            synchronize(args.device)
            times[name].append(time.perf_counter() - t0)

    bandwidth = in_place_bandwidth(numel, args.device)
    base = times["SGD(fused=True)"]
    print(f"in-place bandwidth (x += y): {bandwidth / 1e9:.1f} GB/s")
    print(f"{'variant':<22}{'median ms':>10}{'ratio to fused SGD':>20}{'GB/s (20 B/param)':>19}"
          f"{'of in-place bw':>16}")
    for name, ts in times.items():
        ratio = statistics.median(t / b for t, b in zip(ts, base, strict=True))
        achieved = 20 * numel / statistics.median(ts)
        print(f"{name:<22}{statistics.median(ts) * 1e3:>10.2f}{ratio:>20.3f}"
              f"{achieved / 1e9:>19.1f}{achieved / bandwidth:>15.0%}")
    lcam_stats = optimizers["LCAM default"].statistics()  # type: ignore[attr-defined]
    print(f"LCAM default took {lcam_stats.steps_above} steps above, "
          f"{lcam_stats.steps_below} below the average")


if __name__ == "__main__":
    main()
