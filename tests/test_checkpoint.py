"""Checkpoints are atomic and carry every RNG; a SIGKILLed run resumes bitwise."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import lcam.harness.checkpoint as checkpoint
from lcam.harness.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from lcam.harness.metrics import TIMING_FIELDS


def test_checkpoint_round_trips_with_weights_only_loading(tmp_path: Path) -> None:
    state = {"model": {"w": torch.arange(4.0)}, "epoch": 3, "rng": capture_rng_state()}
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    loaded = load_checkpoint(tmp_path / "checkpoint.pt")
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left


def test_a_failed_write_leaves_the_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1})

    def torn_write(obj: Any, handle: Any) -> None:
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", torn_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_checkpoint_of_another_format_is_rejected(tmp_path: Path) -> None:
    torch.save({"format": 0}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="format 0"):
        load_checkpoint(tmp_path / "old.pt")


def test_rng_states_are_restored_for_torch_numpy_and_python() -> None:
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's state
    state = capture_rng_state()
    first = (torch.rand(3), np.random.standard_normal(3), random.random(), random.gauss(0, 1))
    restore_rng_state(state)
    again = (torch.rand(3), np.random.standard_normal(3), random.random(), random.gauss(0, 1))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2:] == again[2:]


def _train_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lcam", "train", "digits", "--group", "m0.95_0.9",
            "--seed", "1", "--out", str(out), "--epochs", "24", "--train-subset", "256",
            "--test-subset", "64", "--set", "milestones=8,16", "--threads", "1",
            "--no-progress", *extra]


def _untimed_metrics(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rows]


@pytest.mark.slow
def test_run_killed_with_sigkill_and_resumed_equals_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    run = Path("digits/m0.95_0.9/seed1")
    reference = subprocess.Popen(_train_command(tmp_path / "reference"),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    killed_out = tmp_path / "killed"
    victim = subprocess.Popen(_train_command(killed_out), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    metrics = killed_out / run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and victim.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= 3:
            break
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed_out / run / "result.json").exists()
    epochs_before_kill = len(_untimed_metrics(killed_out / run))
    assert 3 <= epochs_before_kill < 24

    resumed = subprocess.run(_train_command(killed_out, "--resume"), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stderr
    assert reference.wait(timeout=300) == 0

    assert _untimed_metrics(killed_out / run) == _untimed_metrics(tmp_path / "reference" / run)
    final = load_checkpoint(killed_out / run / "checkpoint.pt")
    expected = load_checkpoint(tmp_path / "reference" / run / "checkpoint.pt")
    for key, tensor in expected["model"].items():
        assert torch.equal(final["model"][key], tensor), key
    for index, state in expected["optimizer"]["state"].items():
        assert torch.equal(final["optimizer"]["state"][index]["momentum_buffer"],
                           state["momentum_buffer"])
    assert torch.equal(final["optimizer"]["lcam"]["statistics"],
                       expected["optimizer"]["lcam"]["statistics"])
