"""SIGTERM, SIGINT and SIGUSR1 stop a run after its current step with a mid-epoch
checkpoint and exit status 75; ``--resume`` then ends bit for bit where an uninterrupted
run ends (digits and mnist1d, one process and 2 gloo ranks); ``lcam sweep`` forwards the
signal, waits for its workers' checkpoints and leaves no process behind; a second signal
stops at once.

The in-process tests send a real signal to the test process at a chosen step; the
subprocess tests send it from outside at a random moment of the training.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from run_state import tensors, untimed_metrics

import lcam.harness.loop as loop
import lcam.harness.stopping as stopping
from lcam.harness.checkpoint import load_checkpoint
from lcam.harness.config import RunConfig
from lcam.harness.presets import get_single_preset
from lcam.harness.stopping import (
    FORCE_AFTER_SECONDS,
    STOPPED_EXIT_STATUS,
    descendants,
    stop_requested,
)

TESTS = Path(__file__).resolve().parent
GROUP = "m0.95_0.9"
# 256 samples in batches of 32: 8 steps per epoch.
TINY = {"epochs": "3", "batch_size": "32", "train_subset": "256", "test_subset": "64",
        "milestones": "1,2", "threads": "1", "device": "cpu"}
STEPS = 8
# Long enough (6 epochs of 16 steps) for a signal at a random moment to land in training.
LONGER = {"epochs": "6", "batch_size": "64", "train_subset": "1024", "test_subset": "64",
          "milestones": "2,4",
          "threads": "1", "device": "cpu"}

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="needs Linux /proc and POSIX signals")


@pytest.fixture(scope="module")
def mnist1d_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mnist1d", reason="needs the mnist1d package (lcam[harness])")
    return tmp_path_factory.mktemp("mnist1d-data")


def _overrides(preset: str, base: dict[str, str], root: Path | None) -> dict[str, str]:
    return {**base, "data_root": str(root)} if preset == "mnist1d" else dict(base)


def _config(preset: str, overrides: dict[str, str], seed: int = 0) -> RunConfig:
    return get_single_preset(preset).with_overrides(overrides).run_config(GROUP, seed)






def _assert_same_end(run_dir: Path, reference_dir: Path) -> None:
    """Same metrics (timings aside), model and optimizer (LCAM's statistics included)."""
    assert (run_dir / "result.json").exists()
    assert untimed_metrics(run_dir) == untimed_metrics(reference_dir)
    final = load_checkpoint(run_dir / "checkpoint.pt")
    expected = load_checkpoint(reference_dir / "checkpoint.pt")
    for part in ("model", "optimizer", "schedule"):
        pairs = list(zip(tensors(final[part]), tensors(expected[part]), strict=True))
        assert pairs or part == "schedule"
        for (name, a), (other, b) in pairs:
            assert name == other and torch.equal(a, b), f"{part}{name}"
    assert final["iteration"] == expected["iteration"]
    assert final["optimizer"]["param_groups"] == expected["optimizer"]["param_groups"]


def _reference(config: RunConfig, out: Path) -> Path:
    outcome = loop.run_training(config, out, progress=False, log=lambda _: None)
    assert outcome.result is not None and outcome.stopped is None
    return outcome.run_dir


# ---------------------------------------------------------------- in-process, chosen step
@pytest.fixture(scope="module")
def tiny_references(
    tmp_path_factory: pytest.TempPathFactory, mnist1d_root: Path
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-references")
    return {preset: _reference(_config(preset, _overrides(preset, TINY, mnist1d_root)),
                               root / preset)
            for preset in ("digits", "mnist1d")}


@pytest.mark.parametrize(("preset", "signum", "stop_after"), [
    ("digits", signal.SIGTERM, STEPS + 3),      # epoch 2, step 3 of 8
    ("digits", signal.SIGINT, 2 * STEPS - 1),   # epoch 2, its last step not taken
    ("digits", signal.SIGUSR1, 1),              # epoch 1, after its first step
    ("mnist1d", signal.SIGTERM, STEPS + 5),
])
def test_a_signal_stops_after_the_step_and_resume_ends_bit_for_bit(
    preset: str, signum: signal.Signals, stop_after: int, tiny_references: dict[str, Path],
    mnist1d_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(preset, _overrides(preset, TINY, mnist1d_root))
    real = loop._Trainer.stop_agreed

    def signal_at_step(trainer: loop._Trainer) -> bool:
        if trainer.iteration == stop_after and stop_requested() is None:
            os.kill(os.getpid(), signum)  # handled before os.kill returns to Python code
        return real(trainer)

    monkeypatch.setattr(loop._Trainer, "stop_agreed", signal_at_step)
    lines: list[str] = []
    outcome = loop.run_training(config, tmp_path, progress=False, log=lines.append)
    epoch, step = divmod(stop_after, STEPS)
    assert outcome.result is None
    assert outcome.stopped == loop.StopPoint(signum.name, epoch, step, STEPS,
                                             outcome.run_dir / "checkpoint.pt")
    assert lines[-1] == (f"{outcome.run_dir}: stopped by {signum.name} after step {step}/"
                         f"{STEPS} of epoch {epoch + 1}; checkpoint {outcome.run_dir}/"
                         "checkpoint.pt written, continue with --resume")
    state = load_checkpoint(outcome.run_dir / "checkpoint.pt")
    assert state["epoch"] == epoch and state["iteration"] == stop_after
    assert state["mid_epoch"]["step"] == step
    assert state["data_order"] == {"seed": 0, "next_epoch": epoch, "next_step": step}
    assert len(untimed_metrics(outcome.run_dir)) == epoch
    assert not (outcome.run_dir / "result.json").exists()
    assert stop_requested() is None  # forgotten once run_training returns
    assert signal.getsignal(signum) is not stopping._handle  # handlers restored

    monkeypatch.undo()
    lines.clear()
    resumed = loop.run_training(config, tmp_path, resume=True, progress=False, log=lines.append)
    assert resumed.result is not None and resumed.stopped is None
    assert (f"resuming after step {step}/{STEPS} of epoch {epoch + 1} (stopped there by a "
            "signal)") in lines[0]
    _assert_same_end(outcome.run_dir, tiny_references[preset])


def test_the_loader_starts_an_epoch_at_any_batch() -> None:
    from lcam.harness.components import load_bundle
    from lcam.harness.data import BatchLoader

    settings = _config("digits", TINY).settings
    bundle = load_bundle(settings, seed=0)
    loader = BatchLoader(bundle.train, batch_size=32, shuffle=True, augment="none",
                         normalize=bundle.normalization, device="cpu", seed=3)
    every = list(loader.epoch(2))
    for start in (0, 3, len(loader)):
        rest = list(loader.epoch(2, start=start))
        assert len(rest) == len(every) - start
        for (x, y), (ex, ey) in zip(rest, every[start:], strict=True):
            assert torch.equal(x, ex) and torch.equal(y, ey)
    with pytest.raises(ValueError, match="Invalid start"):
        next(loader.epoch(0, start=len(loader) + 1))


# ------------------------------------------------------- subprocesses, signals from outside
def _environment(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def _cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "lcam", *arguments]


def _flags(overrides: dict[str, str]) -> list[str]:
    return [item for key, value in overrides.items() for item in ("--set", f"{key}={value}")]


def _train(preset: str, out: Path, overrides: dict[str, str], *extra: str) -> list[str]:
    return _cli("train", preset, "--group", GROUP, "--seed", "0", "--out", str(out),
                "--no-progress", *_flags(overrides), *extra)


def _wait_for_epochs(process: subprocess.Popen[Any], metrics: Path, epochs: int) -> None:
    """Until ``metrics`` holds ``epochs`` lines (the run is training)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= epochs:
            return
        time.sleep(0.005)
    raise AssertionError(f"{metrics} did not reach {epochs} epochs "
                         f"(exit status {process.poll()})")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _survivors(pids: list[int]) -> list[str]:
    """The command lines of ``pids`` still alive a moment (1 s at most) later: the
    multiprocessing resource tracker ends once it reads the end of its pipe."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.01)
    alive = []
    for pid in pids:
        if _alive(pid):
            try:
                alive.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                             .decode())
            except OSError:
                pass
    return alive


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["digits", "mnist1d"])
def test_train_signalled_from_outside_at_a_random_moment_resumes_bit_for_bit(
    preset: str, mnist1d_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 12 epochs: on a fast quiet machine 6 can all end before the signal arrives.
    overrides = _overrides(preset, {**LONGER, "epochs": "12"}, mnist1d_root)
    reference = _reference(_config(preset, overrides), tmp_path / "reference")
    out = tmp_path / "signalled"
    run_dir = out / reference.relative_to(tmp_path / "reference")
    process = subprocess.Popen(_train(preset, out, overrides), env=_environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_epochs(process, run_dir / "metrics.jsonl", 1)
    time.sleep(random.uniform(0.0, 0.05))  # somewhere early in the remaining epochs
    signum = random.choice([signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == STOPPED_EXIT_STATUS, stderr
    assert f"stopped by {signum.name} after step " in stderr
    assert "Traceback" not in stderr
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["mid_epoch"] is not None
    assert not (run_dir / "result.json").exists()

    # The same command with --resume, in this process (a second interpreter would only
    # cost time: the stop above is what needed a process of its own).
    from lcam.cli import main

    assert main(_train(preset, out, overrides, "--resume")[3:]) == 0
    assert "resuming after step" in capsys.readouterr().err
    _assert_same_end(run_dir, reference)


@pytest.mark.slow
def test_a_second_signal_stops_at_once_and_a_quick_repeat_does_not(tmp_path: Path) -> None:
    overrides = {"epochs": "2", "train_subset": "64", "test_subset": "32", "threads": "1",
                 "device": "cpu"}
    process = subprocess.Popen(
        _train("digits", tmp_path, {**overrides, "model": "signal_fixtures:slow_mlp"}),
        env=_environment(LCAM_TEST_STEP_SECONDS="8"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "digits" / GROUP / "seed0" / "metrics.jsonl"
    _wait_for_epochs(process, metrics, 0)  # created empty just before the first step
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGINT)  # within FORCE_AFTER_SECONDS: the same request
    time.sleep(FORCE_AFTER_SECONDS + 0.3)
    assert process.poll() is None, "a quick repeat must not force the exit"
    process.send_signal(signal.SIGTERM)  # the step (8 s) is still running
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM


# ------------------------------------------------------------------- 2 ranks (gloo)
@pytest.mark.slow
def test_two_ranks_stop_at_the_same_step_and_resume_bit_for_bit(tmp_path: Path) -> None:
    """A signal to the launcher (at a random moment) and, on the resumed run, a signal to
    rank 1 alone: both times every rank stops after the same step (the resumed runs end
    bit for bit as an uninterrupted one, which they could not if rank 0 had stopped
    elsewhere), the launcher exits with 75 and no process is left."""
    overrides = dict(LONGER)
    nproc = ("--nproc", "2")
    reference_out = tmp_path / "reference"
    done = subprocess.run(_train("digits", reference_out, overrides, *nproc),
                          env=_environment(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    run = Path("digits", GROUP, "seed0")
    out = tmp_path / "signalled"
    metrics = out / run / "metrics.jsonl"

    process = subprocess.Popen(_train("digits", out, overrides, *nproc), env=_environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_epochs(process, metrics, 1)
    time.sleep(random.uniform(0.0, 0.2))
    workers = descendants(process.pid)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == STOPPED_EXIT_STATUS, stderr[-3000:]
    assert "stopped by SIGTERM after step " in stderr
    assert not _survivors(workers)
    first_stop = load_checkpoint(out / run / "checkpoint.pt")
    assert first_stop["mid_epoch"] is not None

    process = subprocess.Popen(_train("digits", out, overrides, *nproc, "--resume"),
                               env=_environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _wait_for_epochs(process, metrics, first_stop["epoch"] + 1)
    ranks = {}
    for pid in descendants(process.pid):
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environment:
            if item.startswith(b"RANK="):
                ranks[int(item[5:])] = pid
    assert sorted(ranks) == [0, 1], ranks
    os.kill(ranks[1], signal.SIGUSR1)  # rank 1 alone
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == STOPPED_EXIT_STATUS, stderr[-3000:]
    assert "stopped by another rank after step " in stderr  # rank 0 got no signal
    second_stop = load_checkpoint(out / run / "checkpoint.pt")
    assert second_stop["iteration"] > first_stop["iteration"]

    resumed = subprocess.run(_train("digits", out, overrides, *nproc, "--resume"),
                             env=_environment(), capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_end(out / run, reference_out / run)


# --------------------------------------------------------------------------- sweep
@pytest.mark.slow
def test_a_signalled_sweep_stops_its_workers_and_leaves_no_process(tmp_path: Path) -> None:
    # Every step 50 ms longer (96 steps, about 5 s a run): both runs are still training
    # when signalled, unless the machine is so loaded that one worker starts seconds late
    # (then that run is reported finished, and the other stopped).
    overrides = {**LONGER, "model": "signal_fixtures:slow_mlp", "control": "false"}
    groups = ("m0.9", GROUP)
    sweep = _cli("sweep", "digits", "--out", str(tmp_path), "--seeds", "1", "--jobs", "2",
                 "--groups", ",".join(groups), *_flags(overrides))
    process = subprocess.Popen(sweep, env=_environment(LCAM_TEST_STEP_SECONDS="0.05"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dirs = [tmp_path / "digits" / group / "seed0" for group in groups]
    for run_dir in run_dirs:
        _wait_for_epochs(process, run_dir / "metrics.jsonl", 0)  # the run has started
    workers = descendants(process.pid)
    assert len(workers) >= 2
    time.sleep(random.uniform(0.3, 1.0))
    process.send_signal(random.choice([signal.SIGTERM, signal.SIGINT, signal.SIGUSR1]))
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == STOPPED_EXIT_STATUS, stdout + stderr
    assert not _survivors(workers), "a worker outlived the sweep"
    stopped = [run_dir for run_dir in run_dirs if not (run_dir / "result.json").exists()]
    assert stopped, stdout
    assert f"{len(run_dirs) - len(stopped)} run(s) finished" in stdout, stdout
    assert f"{len(stopped)} stopped" in stdout, stdout
    for run_dir in stopped:
        log = (run_dir / "train.log").read_text()
        assert load_checkpoint(run_dir / "checkpoint.pt")["mid_epoch"] is not None, log
        assert "stopped by" in log

    again = subprocess.run(sweep, env=_environment(), capture_output=True, text=True,
                           timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(stopped)} run(s) finished" in again.stdout, again.stdout
    reference = _reference(
        get_single_preset("digits").with_overrides(overrides).run_config(GROUP, 0),
        tmp_path / "reference")
    _assert_same_end(run_dirs[1], reference)
