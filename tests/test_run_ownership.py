"""One writer per run: a run directory is held by the process training it (run.lock).

Real concurrent processes: the holder is an ``lcam train`` subprocess whose model waits
for a gate file after a given number of training steps, so the tests know it holds the
run (its marker file exists) without relying on timing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lcam.cli import main
from lcam.harness.runlock import LOCK_NAME, RunHeldError, RunLock, lock_holder

RUN = Path("digits") / "m0.9" / "seed0"
SMALL = ["--train-subset", "96", "--test-subset", "40", "--batch-size", "32"]  # 3 steps/epoch

GATED_MODEL = textwrap.dedent("""
    import os, time
    from pathlib import Path
    from torch import nn

    class Gated(nn.Module):
        # Waits for the file `gate` before training step `after` + 1 (after touching `marker`).
        def __init__(self, inner, gate, marker, after):
            super().__init__()
            self.inner, self.gate, self.marker = inner, gate, marker
            self.after, self.calls = after, 0

        def forward(self, x):
            if self.training:
                self.calls += 1
                if self.calls > self.after and not os.path.exists(self.gate):
                    Path(self.marker).write_text(str(os.getpid()))
                    while not os.path.exists(self.gate):
                        time.sleep(0.02)
            return self.inner(x)

    def model(*, num_classes, input_shape, gate, marker, after=0):
        size = 1
        for n in input_shape:
            size *= n
        return Gated(nn.Sequential(nn.Flatten(), nn.Linear(size, num_classes)), gate, marker,
                     after)
""")


@pytest.fixture
def gated(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "lock_fixture_model.py").write_text(GATED_MODEL)
    return {"gate": tmp_path / "gate", "marker": tmp_path / "marker", "out": tmp_path / "runs"}


def _train_argv(files: dict[str, Path], *, after: int, epochs: int = 2) -> list[str]:
    return ["train", "digits", "--group", "m0.9", "--seed", "0", "--out", str(files["out"]),
            "--no-progress", "--epochs", str(epochs), *SMALL,
            "--model", "lock_fixture_model:model",
            "--set", f"model_options.gate={files['gate']}",
            "--set", f"model_options.marker={files['marker']}",
            "--set", f"model_options.after={after}"]


def _environment(tmp_path: Path) -> dict[str, str]:
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def _start(argv: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lcam", *argv], env=_environment(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.05)


def _epochs(run_dir: Path) -> list[int]:
    return [json.loads(line)["epoch"]
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_lock_is_exclusive_names_its_holder_and_goes_with_it(tmp_path: Path) -> None:
    lock = RunLock(tmp_path / "run")
    with lock:
        holder = lock_holder(tmp_path / "run")
        assert holder is not None
        assert (holder["pid"], holder["host"]) == (os.getpid(), socket.gethostname())
        assert holder["since"].endswith(" UTC")
        with pytest.raises(RunHeldError, match=rf"is held by another process: pid "
                                               rf"{os.getpid()} on host "):
            RunLock(tmp_path / "run").acquire()  # flock: a second open file, even here
    assert not (tmp_path / "run").exists()  # nothing written: the directory it made goes
    with RunLock(tmp_path / "a" / "b" / "run"):  # free again
        (tmp_path / "a" / "b" / "run" / "config.json").write_text("{}")
    assert [p.name for p in (tmp_path / "a" / "b" / "run").iterdir()] == ["config.json"]


@pytest.mark.slow
def test_a_second_train_on_a_held_run_is_refused_and_nothing_is_doubled(
    tmp_path: Path, gated: dict[str, Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir = gated["out"] / RUN
    argv = _train_argv(gated, after=0)
    holder = _start(argv, tmp_path)
    try:
        _wait_for(gated["marker"], holder)  # it holds the run and waits at its first step
        monkeypatch.syspath_prepend(str(tmp_path))
        assert main(argv) == 3  # what `lcam train` exits with
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(
            f"lcam train: error: {run_dir} is held by another process: pid {holder.pid} on host "
            f"{socket.gethostname()}, since ")
        assert lines[0].endswith(f"UTC (lock file {run_dir / LOCK_NAME}); wait for it to end "
                                 "or stop it, then run again")
        # --overwrite does not get past it either (it would delete the holder's files).
        assert main([*argv, "--overwrite"]) == 3
        assert "is held by another process" in capsys.readouterr().err
        assert (run_dir / "config.json").exists()
    finally:
        gated["gate"].touch()
        out, err = holder.communicate(timeout=300)
    assert holder.returncode == 0, err
    assert f"{run_dir}: finished 2 epochs" in out
    assert _epochs(run_dir) == [0, 1]  # one writer: not 4 lines for a 2-epoch run
    assert not (run_dir / LOCK_NAME).exists()


@pytest.mark.slow
def test_a_holder_killed_with_sigkill_leaves_no_lock_behind(
    tmp_path: Path, gated: dict[str, Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir = gated["out"] / RUN
    argv = _train_argv(gated, after=3)  # waits in epoch 2, after epoch 1's checkpoint
    holder = _start(argv, tmp_path)
    _wait_for(gated["marker"], holder)
    os.kill(holder.pid, signal.SIGKILL)
    holder.communicate(timeout=60)
    assert (run_dir / LOCK_NAME).exists()  # the file stays, its lock went with the process
    assert lock_holder(run_dir)["pid"] == holder.pid  # type: ignore[index]
    gated["gate"].touch()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main([*argv, "--resume"]) == 0
    assert f"{run_dir}: resuming after epoch 0" in capsys.readouterr().err
    assert _epochs(run_dir) == [0, 1]
    assert not (run_dir / LOCK_NAME).exists()


@pytest.mark.slow
def test_two_sweeps_into_one_directory_train_each_run_once(tmp_path: Path) -> None:
    out = tmp_path / "sweeps"
    argv = [sys.executable, "-m", "lcam", "sweep", "digits", "--out", str(out), "--seeds", "2",
            "--groups", "m0.9,m0.95", "--epochs", "2", "--set", "control=false", *SMALL,
            "--threads", "1"]
    sweeps = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True) for _ in range(2)]
    outputs = [sweep.communicate(timeout=600)[0] for sweep in sweeps]
    for sweep, output in zip(sweeps, outputs, strict=True):
        assert sweep.returncode in (0, 3), output  # 3: some runs were the other's
        assert "Traceback" not in output
    for group in ("m0.9", "m0.95"):
        for seed in (0, 1):
            run_dir = out / "digits" / group / f"seed{seed}"
            assert _epochs(run_dir) == [0, 1], run_dir
            log = (run_dir / "train.log").read_text()
            assert log.count("epoch 2/2") == 1, log  # trained by one sweep only
            assert not (run_dir / LOCK_NAME).exists()
    held = sum(int(line.split(" held by another process")[0].rsplit(", ", 1)[1])
               for output in outputs for line in output.splitlines()
               if line.startswith("sweep: ") and "held by another process (skipped)" in line)
    skipped_lines = [line for output in outputs for line in output.splitlines()
                     if "skipped: held by another process (pid " in line]
    assert held == len(skipped_lines)  # the summary counts what the progress lines said
    report = subprocess.run([sys.executable, "-m", "lcam", "report", str(out), "--out",
                             str(tmp_path / "report"), "--no-figures"],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stdout + report.stderr
