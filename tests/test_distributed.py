"""Data-parallel runs through the real CLI: torchrun + DDP, gloo on the CPU, 2 processes.

Each test launches ``python -m torch.distributed.run --standalone --nproc_per_node 2 -m
lcam train ...`` (or ``lcam train ... --nproc 2``) on tiny generated data
(``distributed_fixtures.py``, one thread per process) and checks:

- every rank holds the same parameters, BatchNorm buffers and optimizer state at the
  end of every epoch (each rank saves them through ``LCAM_RANK_STATE_DIR``);
- without BatchNorm, 2 ranks with ``B/2`` samples each reproduce 1 process with ``B``
  (same global order and augmentation): exactly for counts and LCAM's decisions,
  within ``rtol = 1e-12`` for losses and weights. The model computes in float64, so
  the only differences are the reassociated sums of the two half-batches (each rank's
  mean, DDP's gradient average, LCAM's loss average): measured at most 3e-16 relative
  after 5 epochs. 1e-12 leaves room for other CPUs' summation orders, while a real
  mismatch is far above it (without the loss weights on the unequal last batch the
  weights differ by 3e-2 relative, the losses by 9e-3);
- a 2-rank run killed with SIGKILL (all three processes) and resumed reproduces an
  uninterrupted 2-rank run bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from run_state import tensors, untimed_metrics

from lcam.harness.checkpoint import load_checkpoint

TESTS = Path(__file__).resolve().parent
RUN = Path("digits/m0.95_0.9/seed0")
EPOCHS = 16
# digits-cnn (with BatchNorm) on 512 generated 8x8 images, LCAM, lr steps at 6 and 12.
BN_RUN = ("digits", "--group", "m0.95_0.9", "--seed", "0", "--epochs", str(EPOCHS),
          "--data", "distributed_fixtures:blobs", "--set", "data_options.train_size=512",
          "--model", "digits-cnn", "--set", "milestones=6,12", "--batch-size", "64",
          "--device", "cpu", "--threads", "1", "--no-progress")
# A float64 MLP without BatchNorm on 203 images: the last batch (11) splits 6 + 5.
MLP_RUN = ("digits", "--group", "m0.95_0.9", "--seed", "3", "--epochs", "5",
           "--data", "distributed_fixtures:blobs", "--model", "distributed_fixtures:mlp64",
           "--set", "milestones=3", "--batch-size", "64", "--device", "cpu", "--threads", "1",
           "--no-progress")
RELATIVE_TOLERANCE = 1e-12

pytestmark = pytest.mark.slow


def _environment(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def _torchrun(out: Path, *arguments: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node=2", "-m", "lcam", "train", *arguments, "--out", str(out)]


def _run(command: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=240,
                               env=_environment(**extra))
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed






def _assert_identical(first: Any, second: Any) -> None:
    pairs = list(zip(tensors(first), tensors(second), strict=True))
    assert pairs
    for (name, a), (other, b) in pairs:
        assert name == other and torch.equal(a, b), name


def _rank_states(directory: Path, epoch: int) -> tuple[dict[str, Any], dict[str, Any]]:
    return (torch.load(directory / f"epoch{epoch}-rank0.pt"),
            torch.load(directory / f"epoch{epoch}-rank1.pt"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An uninterrupted 2-rank run; returns its run directory and its rank states."""
    root = tmp_path_factory.mktemp("reference")
    _run(_torchrun(root / "out", *BN_RUN), LCAM_RANK_STATE_DIR=str(root / "ranks"))
    return root / "out" / RUN, root / "ranks"


def test_every_rank_holds_the_same_model_and_optimizer_after_every_epoch(
    reference: tuple[Path, Path],
) -> None:
    run_dir, ranks = reference
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.pt", "config.json", "metrics.jsonl", "result.json"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["runtime"]["world_size"] == 2 and config["config"]["batch_norm"] == "plain"
    assert config["runtime"]["steps_per_epoch"] == 8  # 512 samples / global batch 64

    for epoch in range(EPOCHS):
        rank0, rank1 = _rank_states(ranks, epoch)
        _assert_identical(rank0["model"], rank1["model"])  # parameters and BN buffers
        _assert_identical(rank0["optimizer"], rank1["optimizer"])  # momentum, LCAM state
    assert any(key.endswith("running_mean") for key in rank0["model"])
    first, _ = _rank_states(ranks, 0)
    assert not torch.equal(first["model"]["fc.weight"], rank0["model"]["fc.weight"])

    checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    _assert_identical(checkpoint["model"], rank0["model"])
    rows = untimed_metrics(run_dir)
    assert [row["steps"] for row in rows] == [8] * EPOCHS
    fractions = {row["fraction_above"] for row in rows}
    assert fractions <= {k / 8 for k in range(9)} and len(fractions) > 1


def test_two_ranks_with_half_batches_match_one_process_with_the_full_batch(
    tmp_path: Path,
) -> None:
    # `--nproc 2` launches torchrun itself.
    two = _run([sys.executable, "-m", "lcam", "train", *MLP_RUN, "--out",
                str(tmp_path / "two"), "--nproc", "2"])
    _run([sys.executable, "-m", "lcam", "train", *MLP_RUN, "--out", str(tmp_path / "one")])
    assert "finished 5 epochs" in two.stdout
    run = Path("digits/m0.95_0.9/seed3")
    worlds = [json.loads((tmp_path / name / run / "config.json").read_text())["runtime"]
              for name in ("two", "one")]
    assert [w["world_size"] for w in worlds] == [2, 1]
    assert [w["steps_per_epoch"] for w in worlds] == [4, 4]  # 3 full batches + 11 samples

    two_rows, one_rows = (untimed_metrics(tmp_path / name / run) for name in ("two", "one"))
    exact = ("epoch", "lr", "weight_decay", "steps", "train_accuracy", "test_error",
             "fraction_above")
    assert [{k: r[k] for k in exact} for r in two_rows] == [
        {k: r[k] for k in exact} for r in one_rows]
    for two_row, one_row in zip(two_rows, one_rows, strict=True):
        for key in ("train_loss", "test_loss", "loss_average"):
            assert two_row[key] == pytest.approx(one_row[key], rel=RELATIVE_TOLERANCE), key
    assert len({r["fraction_above"] for r in one_rows}) > 1  # LCAM switched momentum

    two_model = load_checkpoint(tmp_path / "two" / run / "checkpoint.pt")["model"]
    one_model = load_checkpoint(tmp_path / "one" / run / "checkpoint.pt")["model"]
    for key, tensor in one_model.items():
        assert tensor.dtype == torch.float64
        torch.testing.assert_close(two_model[key], tensor, rtol=RELATIVE_TOLERANCE,
                                   atol=1e-14)


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux ``/proc``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _wait_until_dead(pids: list[int]) -> None:
    deadline = time.monotonic() + 30
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                break
            if state in ("Z", "X"):
                break
            time.sleep(0.01)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_two_rank_run_killed_with_sigkill_and_resumed_equals_an_uninterrupted_run(
    reference: tuple[Path, Path], tmp_path: Path,
) -> None:
    reference_dir, reference_ranks = reference
    out = tmp_path / "killed"
    victim = subprocess.Popen(_torchrun(out, *BN_RUN), env=_environment(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = out / RUN / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and victim.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= 3:
            break
        time.sleep(0.002)
    workers = _children(victim.pid)
    for pid in (*workers, victim.pid):  # the whole run dies at once, as in a node crash
        os.kill(pid, signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    _wait_until_dead(workers)
    assert len(workers) == 2
    assert not (out / RUN / "result.json").exists()
    epochs_before_kill = len(untimed_metrics(out / RUN))
    assert 3 <= epochs_before_kill < EPOCHS

    ranks = tmp_path / "ranks"
    resumed = _run(_torchrun(out, *BN_RUN, "--resume"), LCAM_RANK_STATE_DIR=str(ranks))
    assert resumed.stderr.count("resuming after epoch") == 1  # rank 0 only

    assert untimed_metrics(out / RUN) == untimed_metrics(reference_dir)
    final = load_checkpoint(out / RUN / "checkpoint.pt")
    expected = load_checkpoint(reference_dir / "checkpoint.pt")
    _assert_identical(final["model"], expected["model"])
    _assert_identical(final["optimizer"], expected["optimizer"])
    resumed_epochs = sorted(int(p.name[5:].split("-")[0]) for p in ranks.glob("*-rank0.pt"))
    assert resumed_epochs[-1] == EPOCHS - 1
    assert epochs_before_kill - 1 <= resumed_epochs[0] <= epochs_before_kill
    for epoch in resumed_epochs:
        rank0, rank1 = _rank_states(ranks, epoch)
        _assert_identical(rank0["model"], rank1["model"])
        _assert_identical(rank0["model"], _rank_states(reference_ranks, epoch)[0]["model"])
