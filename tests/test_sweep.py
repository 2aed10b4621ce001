"""lcam sweep: plans every group x seed, runs them as processes, skips and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lcam.harness.commands import sweep as sweep_command
from lcam.harness.sweep import plan_sweep, run_sweep, threads_per_job

SMALL = {"epochs": "1", "train_subset": "96", "test_subset": "40", "control": "false"}


def test_plan_covers_every_group_and_seed_with_forwarded_overrides(tmp_path: Path) -> None:
    plan = plan_sweep("digits", tmp_path, overrides={"epochs": "2"}, jobs=2)
    assert len(plan) == 8 * 3  # 6 groups + 2 controls (one per distinct momentum), 3 seeds
    job = next(j for j in plan if j.group == "control-m0.933333" and j.seed == 2)
    assert job.run_dir.path == tmp_path / "digits" / "control-m0.933333" / "seed2"
    command = list(job.command)
    assert command[1:7] == ["-m", "lcam", "train", "digits", "--group", "control-m0.933333"]
    assert command[command.index("--seed") + 1] == "2" and "--resume" in command
    assert "epochs=2" in command and f"threads={threads_per_job(2)}" in command


def test_plan_selects_groups_and_seeds(tmp_path: Path) -> None:
    plan = plan_sweep("fig3-cifar10", tmp_path, seeds=2, groups=["m0.9", "m0.9_0.95"],
                      overrides={"control": "true"})
    assert [(j.group, j.seed) for j in plan] == [
        ("m0.9", 0), ("m0.9", 1), ("m0.9_0.95", 0), ("m0.9_0.95", 1),
        ("control-m0.933333", 0), ("control-m0.933333", 1)]


def test_a_pair_and_its_swap_share_one_control_run(tmp_path: Path) -> None:
    plan = plan_sweep("digits", tmp_path, seeds=1, groups=["m0.95_0.9", "m0.9_0.95"])
    assert [j.group for j in plan] == ["m0.95_0.9", "m0.9_0.95", "control-m0.933333"]
    control = plan[-1].config.group
    assert control.matched_to == ("m0.95_0.9", "m0.9_0.95")
    # Selecting one side of the pair gives the same control config (so its directory
    # is shared, not refused, when the other side is swept later).
    alone = plan_sweep("digits", tmp_path, seeds=1, groups=["m0.9_0.95"])
    assert alone[-1].config.to_json() == plan[-1].config.to_json()


@pytest.mark.slow
def test_sweep_runs_skips_finished_resumes_partial_and_reports_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    groups = ["m0.9", "m0.95_0.9"]
    plan = plan_sweep("digits", tmp_path, overrides=SMALL, seeds=1, groups=groups, jobs=2)
    first = run_sweep(plan, jobs=2, log=lambda _: None, poll_seconds=0.05)
    assert sorted(j.label for j in first.finished) == ["digits/m0.9/seed0",
                                                       "digits/m0.95_0.9/seed0"]
    assert first.ok and not first.skipped
    for job in plan:
        assert job.run_dir.is_finished()
        assert job.run_dir.log.read_text().startswith("$ ")

    again = run_sweep(plan, jobs=2, log=lambda _: None, poll_seconds=0.05)
    assert len(again.skipped) == 2 and not again.finished and not again.failed

    partial = plan[1].run_dir
    partial.result.unlink()
    metrics_before = partial.metrics.read_text()
    resumed = run_sweep(plan, jobs=2, log=lambda _: None, poll_seconds=0.05)
    assert [j.label for j in resumed.finished] == ["digits/m0.95_0.9/seed0"]
    assert "resuming after epoch 0" in partial.log.read_text()
    assert partial.metrics.read_text() == metrics_before  # nothing redone

    # A run directory holding another configuration makes that run fail, not the sweep.
    clash = plan[0].run_dir
    config = json.loads(clash.config.read_text())
    config["config"]["lr"] = 0.5
    clash.config.write_text(json.dumps(config))
    clash.result.unlink()
    status = sweep_command("digits", out=tmp_path, overrides=SMALL, seeds=1, jobs=2,
                           groups=groups, overwrite=False)
    assert status == 1
    out = capsys.readouterr().out
    assert "1 failed" in out and "FAILED digits/m0.9/seed0 (exit status 2)" in out
    assert "different configuration (config.lr: 0.5 (saved) != 0.1 (now))" in out


@pytest.mark.slow
def test_a_run_in_a_sweep_worker_equals_its_command_line_run(tmp_path: Path) -> None:
    overrides = {**SMALL, "epochs": "2"}
    pooled = plan_sweep("digits", tmp_path / "pool", overrides=overrides, seeds=2,
                        groups=["m0.95_0.9"], jobs=2)
    alone = plan_sweep("digits", tmp_path / "alone", overrides=overrides, seeds=2,
                       groups=["m0.95_0.9"], jobs=2)
    lines: list[str] = []
    assert run_sweep(pooled, jobs=1, log=lines.append).ok  # one worker runs both seeds
    assert [line.split(" finished")[0] for line in lines[1:]] == [
        "[1/2] digits/m0.95_0.9/seed0", "[2/2] digits/m0.95_0.9/seed1"]
    assert run_sweep(alone, jobs=2, log=lambda _: None, poll_seconds=0.05, workers=False).ok
    for a, b in zip(pooled, alone, strict=True):
        rows_a = [json.loads(line) for line in a.run_dir.metrics.read_text().splitlines()]
        rows_b = [json.loads(line) for line in b.run_dir.metrics.read_text().splitlines()]
        for row in rows_a + rows_b:
            del row["seconds"], row["samples_per_second"]
        assert rows_a == rows_b
        assert "finished 2 epochs" in a.run_dir.log.read_text()
