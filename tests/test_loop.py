"""run_training writes the run-directory contract and is deterministic and resumable."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import lcam.harness.loop as loop
from lcam.harness.checkpoint import load_checkpoint
from lcam.harness.config import RunConfig
from lcam.harness.metrics import TIMING_FIELDS
from lcam.harness.presets import get_single_preset
from lcam.harness.rundir import RunDirectoryError

METRIC_KEYS = {"epoch", "lr", "weight_decay", "train_loss", "train_accuracy", "test_loss",
               "test_error", "fraction_above", "loss_average", "steps", "seconds",
               "samples_per_second"}
SMALL = {"epochs": "3", "train_subset": "192", "test_subset": "100", "threads": "1",
         "milestones": "1,2", "batch_size": "64"}


def _config(group: str, seed: int = 0, **overrides: str) -> RunConfig:
    preset = get_single_preset("digits").with_overrides({**SMALL, **overrides})
    return preset.run_config(group, seed)


def _run(config: RunConfig, out: Path, **options: Any) -> loop.RunOutcome:
    return loop.run_training(config, out, progress=False, log=lambda _: None, **options)


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _untimed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rows]


def test_lcam_run_writes_the_contract_files(tmp_path: Path) -> None:
    outcome = _run(_config("m0.95_0.9"), tmp_path)
    run_dir = tmp_path / "digits" / "m0.95_0.9" / "seed0"
    assert outcome.run_dir == run_dir and outcome.start == "fresh" and outcome.epochs_run == 3
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.pt", "config.json", "metrics.jsonl", "result.json"]

    config = json.loads((run_dir / "config.json").read_text())
    assert {"preset", "group", "seed", "epochs", "data", "model", "schedule", "config",
            "versions", "git_commit"} <= set(config)
    assert (config["preset"], config["seed"], config["epochs"]) == ("digits", 0, 3)
    assert (config["data"], config["model"], config["schedule"]) == ("digits", "digits-cnn",
                                                                     "step")
    assert config["group"]["momentum_below"] == 0.95 and config["group"]["optimizer"] == "lcam"
    assert config["versions"]["torch"] == torch.__version__

    rows = _metrics(run_dir)
    assert [set(row) for row in rows] == [METRIC_KEYS] * 3
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert [row["lr"] for row in rows] == [0.1, 0.02, 0.004]  # x0.2 from epochs 1 and 2
    assert [row["steps"] for row in rows] == [3, 3, 3]  # 192 samples / batch 64
    for row in rows:
        assert row["fraction_above"] in (0.0, 1 / 3, 2 / 3, 1.0)
        assert math.isfinite(row["loss_average"]) and row["weight_decay"] == 5e-4
        assert 0.0 <= row["test_error"] <= 100.0 and row["samples_per_second"] > 0
        assert row["test_error"] == int(row["test_error"])  # 100 test samples

    result = json.loads((run_dir / "result.json").read_text())
    errors = [row["test_error"] for row in rows]
    assert result["status"] == "finished" and result["epochs"] == 3
    assert result["final_test_error"] == errors[-1] and result["best_test_error"] == min(errors)
    assert result["best_epoch"] == errors.index(min(errors))


def test_lcam_group_trains_with_lagged_lcam_and_sgd_group_with_sgd(tmp_path: Path) -> None:
    _run(_config("m0.95_0.9"), tmp_path)
    _run(_config("control-m0.933333"), tmp_path)
    lcam_state = load_checkpoint(tmp_path / "digits/m0.95_0.9/seed0/checkpoint.pt")["optimizer"]
    assert lcam_state["lcam"]["decision"] == "lagged"
    group = lcam_state["param_groups"][0]
    assert (group["momentum_above"], group["momentum_below"]) == (0.9, 0.95)
    assert (group["weight_decay"], group["nesterov"], group["dampening"]) == (5e-4, False, 0.0)

    control_dir = tmp_path / "digits/control-m0.933333/seed0"
    sgd_group = load_checkpoint(control_dir / "checkpoint.pt")["optimizer"]["param_groups"][0]
    assert sgd_group["momentum"] == pytest.approx(1 - 1 / 15, abs=1e-15)
    assert "lcam" not in load_checkpoint(control_dir / "checkpoint.pt")["optimizer"]
    assert {row["fraction_above"] for row in _metrics(control_dir)} == {None}
    assert {row["loss_average"] for row in _metrics(control_dir)} == {None}


def test_same_seed_reproduces_bitwise_and_another_seed_differs(tmp_path: Path) -> None:
    for out in ("a", "b"):
        _run(_config("m0.9_0.95", seed=1), tmp_path / out)
    _run(_config("m0.9_0.95", seed=2), tmp_path / "c")
    run = "digits/m0.9_0.95/seed{}"
    a, b = (tmp_path / out / run.format(1) for out in ("a", "b"))
    c = tmp_path / "c" / run.format(2)
    assert _untimed(_metrics(a)) == _untimed(_metrics(b))
    weights_a = load_checkpoint(a / "checkpoint.pt")["model"]
    weights_b = load_checkpoint(b / "checkpoint.pt")["model"]
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert _untimed(_metrics(a)) != _untimed(_metrics(c))


def test_a_crash_between_metrics_line_and_checkpoint_does_not_duplicate_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference"
    _run(_config("m0.95_0.9"), reference)

    crashed = tmp_path / "crashed"
    real_save = loop.save_checkpoint
    calls = {"n": 0}

    def crash_on_second_checkpoint(path: Path, state: dict[str, Any], **options: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # after epoch 1's metrics line, before its checkpoint
        real_save(path, state, **options)

    monkeypatch.setattr(loop, "save_checkpoint", crash_on_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        _run(_config("m0.95_0.9"), crashed)
    run = "digits/m0.95_0.9/seed0"
    assert len(_metrics(crashed / run)) == 2  # epoch 1 logged, its checkpoint not written
    monkeypatch.setattr(loop, "save_checkpoint", real_save)

    outcome = _run(_config("m0.95_0.9"), crashed, resume=True)
    assert outcome.start == "resume" and outcome.epochs_run == 2
    assert _untimed(_metrics(crashed / run)) == _untimed(_metrics(reference / run))
    final = load_checkpoint(crashed / run / "checkpoint.pt")
    expected = load_checkpoint(reference / run / "checkpoint.pt")
    assert all(torch.equal(final["model"][k], expected["model"][k]) for k in final["model"])
    assert torch.equal(final["optimizer"]["lcam"]["statistics"],
                       expected["optimizer"]["lcam"]["statistics"])


def test_output_directory_with_another_config_is_refused_unless_overwrite(
    tmp_path: Path,
) -> None:
    _run(_config("m0.9"), tmp_path)
    with pytest.raises(RunDirectoryError, match=r"epochs: 3 \(saved\) != 2 \(now\)"):
        _run(_config("m0.9", epochs="2"), tmp_path)
    outcome = _run(_config("m0.9", epochs="2"), tmp_path, overwrite=True)
    assert outcome.start == "fresh"
    assert len(_metrics(tmp_path / "digits/m0.9/seed0")) == 2


def test_finished_run_is_skipped_and_runtime_settings_may_change(tmp_path: Path) -> None:
    _run(_config("m0.9"), tmp_path)
    before = (tmp_path / "digits/m0.9/seed0/metrics.jsonl").read_text()
    outcome = _run(_config("m0.9", threads="2", device="cpu"), tmp_path)
    assert outcome.start == "finished" and outcome.epochs_run == 0
    assert (tmp_path / "digits/m0.9/seed0/metrics.jsonl").read_text() == before


def test_unfinished_run_needs_resume(tmp_path: Path) -> None:
    _run(_config("m0.9"), tmp_path)
    (tmp_path / "digits/m0.9/seed0/result.json").unlink()
    with pytest.raises(RunDirectoryError, match="pass --resume"):
        _run(_config("m0.9"), tmp_path)
    outcome = _run(_config("m0.9"), tmp_path, resume=True)
    assert outcome.start == "resume" and outcome.epochs_run == 0
    assert (tmp_path / "digits/m0.9/seed0/result.json").exists()


def test_tensorboard_option_writes_event_files(tmp_path: Path) -> None:
    _run(_config("m0.95_0.9", epochs="1", tensorboard="true"), tmp_path)
    events = list((tmp_path / "digits/m0.95_0.9/seed0/tensorboard").glob("events.out.*"))
    assert len(events) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"TestError / Epoch", "TrainLoss / Epoch", "Learning Rate / Epoch",
            "Weight Decay / Epoch", "FractionAbove / Epoch"} <= tags
    assert accumulator.Scalars("Learning Rate / Epoch")[0].value == pytest.approx(0.1)


def test_bf16_autocast_and_channels_last_options_train(tmp_path: Path) -> None:
    config = _config("m0.95_0.9", epochs="1", amp="bf16", channels_last="true")
    _run(config, tmp_path)
    (row,) = _metrics(tmp_path / "digits/m0.95_0.9/seed0")
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])
    saved = json.loads((tmp_path / "digits/m0.95_0.9/seed0/config.json").read_text())
    assert (saved["config"]["amp"], saved["config"]["channels_last"]) == ("bf16", True)
    weights = load_checkpoint(tmp_path / "digits/m0.95_0.9/seed0/checkpoint.pt")["model"]
    assert all(w.dtype in (torch.float32, torch.int64) for w in weights.values())
