"""A failed write (no space, read-only, I/O error) is one line naming the file and the
cause, exit status 4, no traceback, and leaves what was there intact."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lcam.cli import main
from lcam.harness import checkpoint as checkpoint_module
from lcam.harness import writes
from lcam.harness.checkpoint import load_checkpoint
from lcam.harness.runlock import LOCK_NAME

RUN = Path("digits") / "m0.9" / "seed0"
SMALL = ["--train-subset", "96", "--test-subset", "40", "--batch-size", "32"]
INTACT = "what was written before is intact (rerun with --resume once it can be written)"


def _argv(out: Path, *extra: str, epochs: int = 2) -> list[str]:
    return ["train", "digits", "--group", "m0.9", "--seed", "0", "--out", str(out),
            "--no-progress", "--epochs", str(epochs), "--threads", "1", *SMALL, *extra]


def _epochs(run_dir: Path) -> list[int]:
    return [json.loads(line)["epoch"]
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("lcam train: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _fail_on_call(original: Any, number: int, error: OSError) -> Any:
    calls = []

    def replacement(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == number:
            raise error
        return original(*args, **kwargs)

    return replacement


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_last_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / RUN
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(checkpoint_module.torch, "save",
                        _fail_on_call(checkpoint_module.torch.save, 2, full))
    assert main(_argv(tmp_path)) == 4
    assert _error_line(capsys) == (
        f"lcam train: error: cannot write {run_dir / 'checkpoint.pt'}: No space left on "
        f"device (ENOSPC); {INTACT}")
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1  # epoch 0's, intact
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.pt", "config.json", "metrics.jsonl"]  # no temporary file, no lock
    monkeypatch.undo()
    assert main([*_argv(tmp_path), "--resume"]) == 0
    assert _epochs(run_dir) == [0, 1]


def test_an_io_error_appending_a_metrics_line_cuts_it_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / RUN
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:  # the second line's flush to disk fails
        if os.readlink(f"/proc/self/fd/{descriptor}").endswith("metrics.jsonl"):
            if (run_dir / "metrics.jsonl").read_text().count("\n") == 2:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    assert main(_argv(tmp_path)) == 4
    assert _error_line(capsys) == (
        f"lcam train: error: cannot write {run_dir / 'metrics.jsonl'}: Input/output error "
        f"(EIO); {INTACT}")
    assert _epochs(run_dir) == [0]  # the line of epoch 1 was taken back
    assert not (run_dir / LOCK_NAME).exists()


@pytest.mark.parametrize(("name", "code", "text"), [
    ("config.json", errno.EROFS, "Read-only file system (EROFS)"),
    ("result.json", errno.ENOSPC, "No space left on device (ENOSPC)"),
])
def test_a_failed_config_or_result_write_leaves_the_old_file(
    name: str, code: int, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir = tmp_path / RUN
    real_replace = os.replace
    assert main(_argv(tmp_path, epochs=1)) == 0
    (run_dir / "result.json").unlink()  # an unfinished run again: resume re-writes both
    before = (run_dir / "config.json").read_text()

    def replace(source: Any, target: Any) -> None:
        if str(target).endswith(name):
            raise OSError(code, os.strerror(code))
        real_replace(source, target)

    monkeypatch.setattr(writes.os, "replace", replace)
    assert main([*_argv(tmp_path, epochs=1), "--resume"]) == 4
    assert _error_line(capsys) == (
        f"lcam train: error: cannot write {run_dir / name}: {text}; {INTACT}")
    assert (run_dir / "config.json").read_text() == before or name == "result.json"
    assert not (run_dir / "result.json").exists()
    assert not list(run_dir.glob("*.tmp")) and not (run_dir / LOCK_NAME).exists()


@pytest.mark.slow
def test_a_full_disk_in_a_subprocess_is_one_line_and_exit_status_4(tmp_path: Path) -> None:
    run_dir = tmp_path / RUN
    script = (
        "import errno, os, sys, torch\n"
        "from lcam.cli import main\n"
        "real, calls = torch.save, []\n"
        "def save(*args, **kwargs):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 2:\n"
        "        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "    return real(*args, **kwargs)\n"
        "torch.save = save\n"
        f"sys.exit(main({_argv(tmp_path)!r}))\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 4, completed.stderr
    assert completed.stderr.splitlines()[-1] == (
        f"lcam train: error: cannot write {run_dir / 'checkpoint.pt'}: No space left on "
        f"device (ENOSPC); {INTACT}")
    assert "Traceback" not in completed.stderr
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1


@pytest.mark.slow
def test_a_sweep_stops_starting_runs_once_the_disk_is_full(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    first = out / "digits" / "m0.9" / "seed0"
    first.mkdir(parents=True)
    (first / "train.log").symlink_to("/dev/full")  # writing it: a real ENOSPC
    completed = subprocess.run(
        [sys.executable, "-m", "lcam", "sweep", "digits", "--out", str(out), "--seeds", "1",
         "--groups", "m0.9,m0.95,m0.95_0.9", "--epochs", "1", "--set", "control=false",
         *SMALL, "--threads", "1"],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 4, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    why = f"cannot write {first / 'train.log'}: No space left on device (ENOSPC)"
    assert f"sweep: {why}; starting no further runs" in lines
    assert "sweep: 0 run(s) finished, 0 already finished (skipped), 0 held by another process " \
           "(skipped), 1 failed, 2 not started" in lines
    assert f"sweep: stopped starting runs: {why}" in lines
    assert not (out / "digits" / "m0.95").exists()  # never started
