"""Checkpoints are atomic, keep the previous one and carry every RNG; a SIGKILLed run
resumes bitwise; a damaged checkpoint is named, described and, when the previous one is
good, skipped (with a warning); when neither is usable the run directory is left as it was."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from run_state import untimed_metrics

import lcam.harness.checkpoint as checkpoint
import lcam.harness.loop as loop
from lcam.cli import main
from lcam.harness.checkpoint import (
    CheckpointError,
    NoUsableCheckpointError,
    capture_rng_state,
    load_checkpoint,
    load_resume_point,
    previous_checkpoint_path,
    restore_rng_state,
    save_checkpoint,
)
from lcam.harness.config import RunConfig
from lcam.harness.presets import get_single_preset
from lcam.harness.rundir import (
    RunDirectory,
    RunDirectoryError,
    prepare_run_directory,
    write_config,
)
from lcam.harness.writes import WriteFailedError


def test_checkpoint_round_trips_with_weights_only_loading(tmp_path: Path) -> None:
    state = {"model": {"w": torch.arange(4.0)}, "epoch": 3, "rng": capture_rng_state()}
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    loaded = load_checkpoint(tmp_path / "checkpoint.pt")
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left


def test_each_save_keeps_the_checkpoint_it_replaces(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    assert previous_checkpoint_path(path) == tmp_path / "checkpoint.prev.pt"
    assert RunDirectory(tmp_path).previous_checkpoint == tmp_path / "checkpoint.prev.pt"
    for epoch in (1, 2, 3):
        save_checkpoint(path, {"epoch": epoch})
    assert load_checkpoint(path)["epoch"] == 3
    assert load_checkpoint(previous_checkpoint_path(path))["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]
    save_checkpoint(path, {"epoch": 4}, keep_previous=False)  # replaces the latest only
    assert load_checkpoint(path)["epoch"] == 4
    assert load_checkpoint(previous_checkpoint_path(path))["epoch"] == 2


def test_a_failed_write_leaves_the_latest_and_previous_checkpoints_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1})
    save_checkpoint(path, {"epoch": 2})

    def torn_write(obj: Any, handle: Any) -> None:
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", torn_write)
    with pytest.raises(WriteFailedError, match=r"cannot write .*checkpoint\.pt: disk full"):
        save_checkpoint(path, {"epoch": 3})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 2
    assert load_checkpoint(previous_checkpoint_path(path))["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]


def test_a_crash_between_the_two_renames_resumes_from_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1})
    save_checkpoint(path, {"epoch": 2})
    real_replace = os.replace
    renames: list[str] = []

    def crash_on_second_rename(source: Any, target: Any) -> None:
        renames.append(Path(target).name)
        if len(renames) == 2:
            raise KeyboardInterrupt  # latest renamed to previous, new file not yet in place
        real_replace(source, target)

    monkeypatch.setattr(checkpoint.os, "replace", crash_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 3})
    monkeypatch.undo()
    assert renames == ["checkpoint.prev.pt", "checkpoint.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt"]
    point = load_resume_point(path)
    assert point.path == previous_checkpoint_path(path) and point.state["epoch"] == 2
    assert point.skipped is not None and str(point.skipped) == f"{path} is missing"


def _truncate(path: Path) -> int:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return len(data) // 2


def _write_zip_without_a_pickle(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/version", "3\n")


@pytest.mark.parametrize(("damage", "problem"), [
    (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    (lambda p: p.write_text("not a checkpoint\n" * 40),
     "is not an lcam checkpoint (not a file written by torch.save)"),
    (lambda p: torch.save([1, 2], p), "is not an lcam checkpoint (it holds a list)"),
    (lambda p: torch.save({"epoch": 1}, p),
     "is not an lcam checkpoint (it holds a dict without a 'format' key)"),
    (lambda p: torch.save({"format": 0}, p),
     "has checkpoint format 0, expected 1 (written by another lcam version)"),
    (_write_zip_without_a_pickle, "is corrupt (torch.load: RuntimeError: "),
])
def test_a_damaged_checkpoint_is_named_and_described(
    tmp_path: Path, damage: Any, problem: str
) -> None:
    path = tmp_path / "checkpoint.pt"
    damage(path)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert raised.value.path == path
    assert raised.value.problem.startswith(problem)
    assert str(raised.value) == f"{path} {raised.value.problem}"


def test_a_truncated_checkpoint_says_so(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": {"w": torch.arange(1000.0)}})
    size = _truncate(path)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert str(raised.value) == (
        f"{path} is truncated ({size} bytes, without the index that ends every complete "
        "checkpoint)")


def test_resume_point_is_the_latest_checkpoint_else_the_previous_one(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1})
    save_checkpoint(path, {"epoch": 2})
    point = load_resume_point(path)
    assert (point.path, point.state["epoch"], point.skipped) == (path, 2, None)

    def only_epoch_1(candidate: Path, state: dict[str, Any]) -> None:
        if state["epoch"] != 1:
            raise CheckpointError(candidate, "belongs to another run")

    point = load_resume_point(path, check=only_epoch_1)
    assert (point.path, point.state["epoch"]) == (previous_checkpoint_path(path), 1)
    assert str(point.skipped) == f"{path} belongs to another run"

    previous_checkpoint_path(path).write_bytes(b"")
    with pytest.raises(NoUsableCheckpointError) as raised:
        load_resume_point(path, check=only_epoch_1)
    assert [str(problem) for problem in raised.value.problems] == [
        f"{path} belongs to another run", f"{previous_checkpoint_path(path)} is empty (0 bytes)"]


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
    epochs_before_kill = len(untimed_metrics(killed_out / run))
    assert 3 <= epochs_before_kill < 24

    resumed = subprocess.run(_train_command(killed_out, "--resume"), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stderr
    assert reference.wait(timeout=300) == 0

    assert untimed_metrics(killed_out / run) == untimed_metrics(tmp_path / "reference" / run)
    final = load_checkpoint(killed_out / run / "checkpoint.pt")
    expected = load_checkpoint(tmp_path / "reference" / run / "checkpoint.pt")
    for key, tensor in expected["model"].items():
        assert torch.equal(final["model"][key], tensor), key
    for index, state in expected["optimizer"]["state"].items():
        assert torch.equal(final["optimizer"]["state"][index]["momentum_buffer"],
                           state["momentum_buffer"])
    assert torch.equal(final["optimizer"]["lcam"]["statistics"],
                       expected["optimizer"]["lcam"]["statistics"])


# A partial run with both checkpoints: 4 epochs, stopped after epoch 2's metrics line,
# so checkpoint.pt covers epochs 0-1 and checkpoint.prev.pt epoch 0.
PARTIAL = {"epochs": "4", "train_subset": "192", "test_subset": "100", "batch_size": "64",
           "milestones": "2,3", "threads": "1"}
PARTIAL_RUN = Path("digits/m0.95_0.9/seed0")


def _partial_config() -> RunConfig:
    return get_single_preset("digits").with_overrides(PARTIAL).run_config("m0.95_0.9", 0)


def _run(out: Path, **options: Any) -> list[str]:
    lines: list[str] = []
    loop.run_training(_partial_config(), out, progress=False, log=lines.append, **options)
    return lines


def _crash_on_save(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    real_save = loop.save_checkpoint
    calls = {"n": 0}

    def save(path: Path, state: dict[str, Any], **options: Any) -> None:
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt  # as if killed after the metrics line
        real_save(path, state, **options)

    monkeypatch.setattr(loop, "save_checkpoint", save)


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An uninterrupted run and a partial one of the same configuration (their roots)."""
    root = tmp_path_factory.mktemp("runs")
    _run(root / "reference")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _crash_on_save(monkeypatch, 3)
        with pytest.raises(KeyboardInterrupt):
            _run(root / "partial")
    run_dir = root / "partial" / PARTIAL_RUN
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 2
    assert load_checkpoint(run_dir / "checkpoint.prev.pt")["epoch"] == 1
    assert len(untimed_metrics(run_dir)) == 3
    return root / "reference", root / "partial"


def _copy(source: Path, tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "out"
    shutil.copytree(source, out)
    return out, out / PARTIAL_RUN


def _assert_same_final_state(run_dir: Path, reference_dir: Path) -> None:
    assert untimed_metrics(run_dir) == untimed_metrics(reference_dir)
    final = load_checkpoint(run_dir / "checkpoint.pt")
    expected = load_checkpoint(reference_dir / "checkpoint.pt")
    for key, tensor in expected["model"].items():
        assert torch.equal(final["model"][key], tensor), key
    for index, state in expected["optimizer"]["state"].items():
        assert torch.equal(final["optimizer"]["state"][index]["momentum_buffer"],
                           state["momentum_buffer"])
    assert torch.equal(final["optimizer"]["lcam"]["statistics"],
                       expected["optimizer"]["lcam"]["statistics"])


def test_truncated_latest_checkpoint_resumes_from_the_previous_one_bitwise(
    runs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, partial = runs
    out, run_dir = _copy(partial, tmp_path)
    latest, previous = run_dir / "checkpoint.pt", run_dir / "checkpoint.prev.pt"
    _truncate(latest)

    # Resumed after epoch 0, killed again after epoch 1's metrics line.
    _crash_on_save(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        _run(out, resume=True)
    monkeypatch.undo()
    # The truncated file was replaced, not kept as the previous checkpoint.
    assert load_checkpoint(latest)["epoch"] == 2
    assert load_checkpoint(previous)["epoch"] == 1

    lines = _run(out, resume=True)
    assert lines[0] == f"{run_dir}: resuming after epoch 1"  # from the new latest, no warning
    _assert_same_final_state(run_dir, reference / PARTIAL_RUN)
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.pt", "config.json", "metrics.jsonl", "result.json"]  # no .prev once done


def test_the_fallback_warning_names_both_files_and_the_epoch(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    reference, partial = runs
    out, run_dir = _copy(partial, tmp_path)
    latest, previous = run_dir / "checkpoint.pt", run_dir / "checkpoint.prev.pt"
    size = _truncate(latest)
    (run_dir / ".checkpoint.pt.4242.tmp").write_bytes(b"killed while writing")
    lines = _run(out, resume=True)
    assert lines[:2] == [
        f"{run_dir}: warning: {latest} is truncated ({size} bytes, without the index that "
        f"ends every complete checkpoint); resuming from the previous checkpoint {previous} "
        "instead, after epoch 0",
        f"{run_dir}: resuming after epoch 0",
    ]
    _assert_same_final_state(run_dir, reference / PARTIAL_RUN)
    assert not (run_dir / ".checkpoint.pt.4242.tmp").exists()  # a killed write's leftover


def _cli_arguments(out: Path) -> list[str]:
    settings = [f"--set={key}={value}" for key, value in PARTIAL.items()]
    return ["train", "digits", "--group", "m0.95_0.9", "--seed", "0", "--out", str(out),
            "--no-progress", "--resume", *settings]


def _cli_train(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lcam", *_cli_arguments(out)],
                          capture_output=True, text=True, timeout=300)


def test_cli_resume_with_both_checkpoints_unusable_fails_cleanly_and_changes_nothing(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    out, run_dir = _copy(runs[1], tmp_path)
    latest, previous = run_dir / "checkpoint.pt", run_dir / "checkpoint.prev.pt"
    size = _truncate(latest)
    previous.write_bytes(b"")
    before = _snapshot(out)

    completed = _cli_train(out)
    assert completed.returncode == 2
    assert completed.stderr == (
        f"lcam train: error: cannot resume {run_dir}: {latest} is truncated ({size} bytes, "
        f"without the index that ends every complete checkpoint) and {previous} is empty "
        "(0 bytes); pass --overwrite to start the run over (this deletes its metrics and "
        "checkpoints)\n")
    assert _snapshot(out) == before


def test_cli_resume_from_the_previous_checkpoint_tells_the_user(
    runs: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out, run_dir = _copy(runs[1], tmp_path)
    latest, previous = run_dir / "checkpoint.pt", run_dir / "checkpoint.prev.pt"
    latest.write_text("garbage\n")
    status = main(_cli_arguments(out))  # in-process: the subprocess test above shows the rest
    stderr = capfd.readouterr().err
    assert status == 0, stderr
    assert stderr.splitlines()[:2] == [
        f"{run_dir}: warning: {latest} is not an lcam checkpoint (not a file written by "
        f"torch.save); resuming from the previous checkpoint {previous} instead, after epoch 0",
        f"{run_dir}: resuming after epoch 0",
    ]
    _assert_same_final_state(run_dir, runs[0] / PARTIAL_RUN)


def test_a_missing_latest_checkpoint_with_a_previous_one_is_a_resume(tmp_path: Path) -> None:
    run_dir = RunDirectory(tmp_path / PARTIAL_RUN)
    config = _partial_config()
    write_config(run_dir, config, {})
    save_checkpoint(run_dir.previous_checkpoint, {"epoch": 1})
    assert prepare_run_directory(run_dir, config, resume=True, overwrite=False) == "resume"
    with pytest.raises(RunDirectoryError, match="unfinished run"):
        prepare_run_directory(run_dir, config, resume=False, overwrite=False)
    assert prepare_run_directory(run_dir, config, resume=False, overwrite=True) == "fresh"
    assert not run_dir.previous_checkpoint.exists()  # --overwrite clears it too


def test_a_sweep_worker_reports_a_run_without_usable_checkpoints_as_failed(
    runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lcam.harness.sweep import _run_logged

    out, run_dir = _copy(runs[1], tmp_path)
    (run_dir / "checkpoint.pt").write_bytes(b"")
    (run_dir / "checkpoint.prev.pt").write_bytes(b"")
    log = tmp_path / "train.log"
    with capsys.disabled():  # the worker redirects file descriptors 1 and 2 to the log
        status = _run_logged(lambda: main(_cli_arguments(out)), str(log))
    assert status == 2  # the sweep's "FAILED ... (exit status 2)"
    assert log.read_text() == (
        f"lcam train: error: cannot resume {run_dir}: {run_dir / 'checkpoint.pt'} is empty "
        f"(0 bytes) and {run_dir / 'checkpoint.prev.pt'} is empty (0 bytes); pass --overwrite "
        "to start the run over (this deletes its metrics and checkpoints)\n")
