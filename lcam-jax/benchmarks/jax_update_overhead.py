"""Optimizer step time: lcam_jax.lcam vs optax.sgd with momentum on WRN-28-10's shapes.

Run:  python lcam-jax/benchmarks/jax_update_overhead.py [--rounds 20]

Both optimizers step the same parameter shapes (36.5M float32 parameters in 80
tensors, the shapes of WRN-28-10 for 10 classes, as in the PyTorch benchmark
``benchmarks/step_overhead.py``) with weight decay 5e-4: ``optax.chain(
optax.add_decayed_weights(5e-4), optax.sgd(0.1, momentum=0.9))`` against
``lcam_jax.lcam(0.1, 0.9, 0.95, weight_decay=5e-4)``. Each step is one jitted
function, ``update`` plus ``optax.apply_updates``, with the params and the optimizer
state donated (updated in place). LCAM's loss alternates between two values, so its
decision flips every step.

They run interleaved, one timed step of each per round, the order swapped every round,
so that load from other processes hits both alike. The script prints the median over
rounds of LCAM's time divided by optax.sgd's time in the same round.
Target: at most 1.10.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

import lcam_jax


def wrn_shapes(depth: int = 28, width: int = 10, num_classes: int = 10) -> list[tuple[int, ...]]:
    """Parameter shapes of a pre-activation Wide ResNet, in the order of its parameters.

    Written out here because lcam-jax must not need torch (``benchmarks/step_overhead.py``
    reads the same shapes off ``lcam.harness.models.wrn.WideResNet``); the lcam-jax tests
    check this list against that model where torch is installed.
    """
    blocks = (depth - 4) // 6
    widths = [16, 16 * width, 32 * width, 64 * width]
    shapes: list[tuple[int, ...]] = [(16, 3, 3, 3)]
    in_ch = 16
    for out_ch in widths[1:]:
        for b in range(blocks):
            shapes += [(in_ch,), (in_ch,), (out_ch, in_ch, 3, 3), (out_ch,), (out_ch,),
                       (out_ch, out_ch, 3, 3)]
            if b == 0 and in_ch != out_ch:
                shapes.append((out_ch, in_ch, 1, 1))
            in_ch = out_ch
    shapes += [(in_ch,), (in_ch,), (num_classes, in_ch), (num_classes,)]
    return shapes


WRN_28_10_SHAPES = wrn_shapes()

Step = Callable[..., tuple[list[jax.Array], optax.OptState]]


def make_step(opt: optax.GradientTransformationExtraArgs, with_loss: bool) -> Step:
    def step(params, state, grads, loss):
        extra = {"value": loss} if with_loss else {}
        updates, state = opt.update(grads, state, params, **extra)
        return optax.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def random_arrays(key: jax.Array, shapes: list[tuple[int, ...]], scale: float) -> list[jax.Array]:
    keys = jax.random.split(key, len(shapes))
    return [scale * jax.random.normal(k, s, jnp.float32) for k, s in zip(keys, shapes, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    shapes = WRN_28_10_SHAPES
    numel = sum(int(jnp.prod(jnp.asarray(s))) for s in shapes)
    print(f"WRN-28-10 shapes: {len(shapes)} tensors, {numel / 1e6:.2f}M float32 parameters; "
          f"jax {jax.__version__}, optax {optax.__version__}, {jax.devices()[0].platform}, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")

    variants = {
        "optax.sgd": (optax.chain(optax.add_decayed_weights(5e-4),
                                  optax.sgd(0.1, momentum=0.9)), False),
        "lcam_jax.lcam": (lcam_jax.lcam(0.1, 0.9, 0.95, weight_decay=5e-4), True),
    }
    grads = random_arrays(jax.random.key(1), shapes, 1e-3)
    losses = [jnp.asarray(1.0), jnp.asarray(2.0)]
    steps, carries = {}, {}
    for name, (opt, with_loss) in variants.items():
        params = random_arrays(jax.random.key(0), shapes, 1.0)
        steps[name] = make_step(opt, with_loss)
        carries[name] = (params, opt.init(params))
        for i in range(2):  # compile, then one more step: buffers exist, caches are hot
            carries[name] = steps[name](*carries[name], grads, losses[i])
            jax.block_until_ready(carries[name])

    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            carries[name] = steps[name](*carries[name], grads, losses[r % 2])
            jax.block_until_ready(carries[name])
            times[name].append(time.perf_counter() - t0)

    base = times["optax.sgd"]
    print(f"{'variant':<16}{'median ms':>10}{'ratio to optax.sgd':>20}{'GB/s (20 B/param)':>19}")
    for name, ts in times.items():
        ratio = statistics.median(t / b for t, b in zip(ts, base, strict=True))
        achieved = 20 * numel / statistics.median(ts)
        print(f"{name:<16}{statistics.median(ts) * 1e3:>10.2f}{ratio:>20.3f}"
              f"{achieved / 1e9:>19.1f}")
    inner = lcam_jax.lcam_state(carries["lcam_jax.lcam"][1])
    print(f"lcam_jax.lcam took {int(inner.steps_above)} steps above, "
          f"{int(inner.steps_below)} below the average")


if __name__ == "__main__":
    main()
