"""How much slower is an epoch of the harness than a bare training loop?

Both train the same model (WRN-16-4, default) with the same optimizer on CIFAR-shaped
data on the CPU, with the same number of torch threads:

* bare: a ``for`` loop over pre-made, already normalised ``float32`` batches:
  forward, cross-entropy, ``zero_grad``, backward, ``optimizer.step()``; nothing else.
* harness: :func:`lcam.harness.loop.run_training` on ``synthetic-cifar`` (uint8 data,
  crop-flip augmentation and normalisation per batch by ``BatchLoader``, device-side
  loss and accuracy sums, the lr schedule, the metrics line, the atomic checkpoint and
  the evaluation on a small test split).

Each side runs ``--epochs`` epochs and the last one counts (the first pays for
allocator warm-up); the two sides alternate ``--repeats`` times and their medians are
compared, which damps the effect of other load on the machine. The headline compares
the training phase of the harness epoch (``train samples / samples_per_second`` from
``metrics.jsonl``: batches drawn, augmented and normalised, steps, schedule, sums read
back) with the bare loop; the whole harness epoch (plus evaluation, metrics line and
checkpoint) is printed beside it.

    python benchmarks/harness_overhead.py                 # WRN-16-4, 512 samples, SGD
    python benchmarks/harness_overhead.py --group m0.95_0.9   # with LCAM on both sides
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lcam.harness.loop import build_optimizer, run_training, seed_everything
from lcam.harness.models import build_model
from lcam.harness.presets import get_single_preset


def bare_epoch_seconds(args: argparse.Namespace, preset_settings: object) -> float:
    """Seconds of the last of ``args.epochs`` bare epochs over pre-made tensors."""
    seed_everything(0)
    model = build_model(args.model, num_classes=10, input_shape=(3, 32, 32))
    group = get_single_preset("fig3-cifar10").group(args.group)
    optimizer = build_optimizer(group, model.parameters(), preset_settings)  # type: ignore[arg-type]
    inputs = torch.randn(args.samples, 3, 32, 32)
    targets = torch.randint(0, 10, (args.samples,))
    batches = [(inputs[i:i + args.batch_size], targets[i:i + args.batch_size])
               for i in range(0, args.samples, args.batch_size)]
    model.train()
    seconds = 0.0
    for _ in range(args.epochs):
        started = time.perf_counter()
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if group.optimizer == "lcam":
                optimizer.step(loss=loss.detach())  # type: ignore[call-arg]
            else:
                optimizer.step()
        seconds = time.perf_counter() - started
    return seconds


def harness_epoch_seconds(args: argparse.Namespace) -> tuple[float, float, object]:
    """Training and whole-epoch seconds of the harness's last epoch, and its settings."""
    preset = get_single_preset("fig3-cifar10").with_overrides({
        "data": "synthetic-cifar", "data_options.train_size": str(args.samples),
        "data_options.test_size": str(args.test_samples), "model": args.model,
        "epochs": str(args.epochs), "batch_size": str(args.batch_size), "device": "cpu",
        "threads": str(torch.get_num_threads()),
    })
    config = preset.run_config(args.group, 0)
    with tempfile.TemporaryDirectory() as out:
        outcome = run_training(config, Path(out), progress=False, log=lambda _: None)
        lines = (outcome.run_dir / "metrics.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    return args.samples / last["samples_per_second"], last["seconds"], config.settings


def loader_epoch_seconds(args: argparse.Namespace) -> float:
    """Seconds for the harness's BatchLoader alone to produce one augmented epoch.

    The part of the harness epoch that the bare loop does not have, measured without
    the model, so the figure does not drown in the run-to-run noise of training.
    """
    from lcam.harness.data import BatchLoader, load_data

    bundle = load_data("synthetic-cifar", train_size=args.samples, test_size=1)
    loader = BatchLoader(bundle.train, batch_size=args.batch_size, shuffle=True,
                         augment=bundle.augment, normalize=bundle.normalization,
                         device="cpu", seed=0)
    timings = []
    for epoch in range(5):
        started = time.perf_counter()
        for _batch in loader.epoch(epoch):
            pass
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="wrn-16-4")
    parser.add_argument("--group", default="m0.9", help="a fig3-cifar10 group (m0.9: SGD)")
    parser.add_argument("--samples", type=int, default=512, help="training samples per epoch")
    parser.add_argument("--test-samples", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    trainings, wholes, bares = [], [], []
    for repeat in range(args.repeats):
        training, whole, settings = harness_epoch_seconds(args)
        bares.append(bare_epoch_seconds(args, settings))
        trainings.append(training)
        wholes.append(whole)
        print(f"repeat {repeat + 1}: bare {bares[-1]:.2f} s, harness training {training:.2f} s",
              flush=True)
    bare, training, whole = (statistics.median(v) for v in (bares, trainings, wholes))
    print(f"{args.model}, group {args.group}, {args.samples} samples, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, last of {args.epochs} epochs, "
          f"median of {args.repeats}")
    print(f"bare loop, training:      {bare:8.2f} s")
    print(f"harness, training:        {training:8.2f} s")
    print(f"harness overhead:         {100 * (training / bare - 1):+8.1f} %")
    print(f"harness, whole epoch:     {whole:8.2f} s (with evaluation of {args.test_samples} "
          "samples, metrics line and checkpoint)")
    loader = loader_epoch_seconds(args)
    print(f"batch loader alone:       {loader:8.4f} s per epoch "
          f"({100 * loader / bare:.2f} % of the bare epoch)")


if __name__ == "__main__":
    main()
