"""The lcam command line: listing, showing, training, errors with the valid names."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lcam.cli import main
from lcam.harness.presets import preset_names

SMALL = ["--epochs", "2", "--train-subset", "128", "--test-subset", "50", "--threads", "1",
         "--set", "milestones=1"]


def test_presets_lists_every_preset_with_its_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in preset_names():
        assert f"\n{name} " in f"\n{out}"
    assert "groups: m0.9, m0.95, m0.95_0.9, m0.9_0.95, m0.857_0.93" in out
    assert "rows: speechcommands-m11, cdlr-cifar10, vit-cifar10" in out


def test_presets_show_prints_the_resolved_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "--show", "fig3-cifar10", "--epochs", "5", "--control"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["settings"]["epochs"] == 5 and shown["settings"]["milestones"] == [31, 61, 91]
    assert shown["sweep_groups"] == ["m0.9", "m0.95", "m0.95_0.9", "m0.9_0.95",
                                     "control-m0.933333"]


@pytest.mark.parametrize(("argv", "message"), [
    (["presets", "--show", "fig9"],
     "unknown preset 'fig9'; valid presets: digits, mnist1d, mnist1d-large, fig3-cifar10"),
    (["train", "digits", "--group", "m0.99", "--out", "x"],
     "unknown group 'm0.99' for preset 'digits'; valid groups: m0.9, m0.95"),
    (["train", "digits", "--group", "m0.9", "--out", "x", "--set", "epoch=1"],
     "unknown setting 'epoch'; valid settings: amp, augment"),
    (["train", "digits", "--group", "m0.9", "--out", "x", "--model", "resnet-50"],
     "unknown model 'resnet-50'"),
    (["train", "digits", "--group", "m0.9", "--out", "x", "--data", "mnist"],
     "unknown data set 'mnist'; valid data sets: digits, mnist1d, cifar10, cifar100, "
     "speechcommands"),
    (["train", "digits", "--group", "m0.9", "--out", "x", "--schedule", "linear"],
     "valid schedule values: step, cdlr, cosine, constant"),
    (["train", "table1", "--group", "m0.9", "--out", "x"], "composite"),
    (["sweep", "digits", "--out", "x", "--groups", "m0.9,bogus"], "unknown group 'bogus'"),
    (["train", "digits", "--group", "m0.9", "--out", "x", "--set", "lr"], "KEY=VALUE"),
    (["train", "vit-cifar10", "--group", "m0.9", "--out", "x", "--set", "model_options.size=3"],
     "unknown model option 'size' for 'vit-b16'; valid model options: pretrained, image_size"),
    pytest.param(["train", "digits", "--group", "m0.9", "--out", "x", "--device", "cuda"],
                 "CUDA is not available", marks=pytest.mark.skipif(
                     torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_invalid_names_exit_2_with_the_valid_ones(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # rejected before anything was written


def test_train_runs_and_refuses_a_different_config_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["train", "digits", "--group", "m0.9_0.95", "--seed", "3", "--out", str(tmp_path),
            "--no-progress", *SMALL]
    assert main(base) == 0
    run_dir = tmp_path / "digits" / "m0.9_0.95" / "seed3"
    assert f"{run_dir}: finished 2 epochs" in capsys.readouterr().out
    assert main([*base, "--lr", "0.2"]) == 2
    assert "lr: 0.1 (saved) != 0.2 (now)" in capsys.readouterr().err
    assert main([*base, "--lr", "0.2", "--overwrite"]) == 0
    assert json.loads((run_dir / "config.json").read_text())["config"]["lr"] == 0.2


def test_own_model_and_data_by_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_experiment.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn
        from lcam.harness.data import DataBundle, Normalization, Split

        def data(*, root, seed, size=96):
            g = torch.Generator().manual_seed(seed)
            x = torch.randint(0, 256, (size, 1, 4, 4), generator=g, dtype=torch.uint8)
            y = (x.float().mean(dim=(1, 2, 3)) > 127.5).long()
            split = Split(x, y)
            return DataBundle(name="mine", train=split, test=split, num_classes=2,
                              input_shape=(1, 4, 4), kind="image",
                              normalization=Normalization(1 / 255, (0.5,), (0.25,)),
                              augment="none")

        def model(*, num_classes, input_shape, hidden=8):
            return nn.Sequential(nn.Flatten(), nn.Linear(16, hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_classes))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["train", "digits", "--group", "m0.95_0.9", "--out", str(tmp_path / "runs"),
            "--no-progress", "--data", "my_experiment:data", "--model", "my_experiment:model",
            "--set", "model_options.hidden=4", "--set", "data_options.size=64",
            "--epochs", "2", "--batch-size", "32"]
    assert main(argv) == 0
    run_dir = tmp_path / "runs/digits/m0.95_0.9/seed0"
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["data"], config["model"]) == ("my_experiment:data", "my_experiment:model")
    assert config["config"]["model_options"] == {"hidden": 4}
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["steps"] for row in rows] == [2, 2]  # 64 samples / batch 32


def test_report_subcommand_dispatches_to_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for group in ("m0.9", "m0.95_0.9"):
        for seed in (0, 1):
            assert main(["train", "digits", "--group", group, "--seed", str(seed), "--out",
                         str(tmp_path), "--no-progress", *SMALL]) == 0
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report"),
                 "--no-figures"]) == 0
    assert (tmp_path / "report" / "report.md").exists()
    assert (tmp_path / "report" / "summary.json").exists()


def test_python_dash_m_lcam_is_the_console_script() -> None:
    completed = subprocess.run([sys.executable, "-m", "lcam", "presets", "--show", "digits"],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["name"] == "digits"


def test_abbreviated_options_are_rejected_not_guessed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "digits", "--group", "m0.9", "--out", str(tmp_path), "--epoch", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --epoch 3" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
