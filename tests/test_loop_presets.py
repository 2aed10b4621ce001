"""Every preset runs a 1-epoch smoke version on tiny data written in the real formats.

The data files are generated here (CIFAR python pickles, a Speech Commands folder of
16 kHz wav clips); the models are shrunk by override (``wrn-10-1``, ``vit-tiny``) and
everything else -- schedule, groups, LCAM decision, weight decay, batch handling -- is
the preset's own.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lcam.harness.loop import run_training
from lcam.harness.presets import CompositePreset, get_preset, get_single_preset
from lcam.harness.sweep import plan_sweep


def _write_cifar(root: Path, *, classes: int, per_file: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    if classes == 10:
        folder, files, label_key = root / "cifar-10-batches-py", [
            *(f"data_batch_{i}" for i in range(1, 6)), "test_batch"], "labels"
        meta_file, names_key = "batches.meta", "label_names"
    else:
        folder, files, label_key = root / "cifar-100-python", ["train", "test"], "fine_labels"
        meta_file, names_key = "meta", "fine_label_names"
    folder.mkdir(parents=True)
    for name in files:
        batch = {
            b"data": rng.integers(0, 256, (per_file, 3072), dtype=np.uint8),
            label_key.encode(): [int(v) for v in rng.integers(0, classes, per_file)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {names_key.encode(): [f"class{i}".encode() for i in range(classes)]}
    (folder / meta_file).write_bytes(pickle.dumps(meta, protocol=2))


def _write_speechcommands(root: Path) -> None:
    import soundfile

    rng = np.random.default_rng(0)
    testing, validation = [], []
    for word in ("go", "stop", "yes"):
        (root / word).mkdir(parents=True)
        for n in range(4):
            clip = (rng.standard_normal(16_000) * 3000).astype(np.int16)
            soundfile.write(root / word / f"speaker{n}_nohash_0.wav", clip, 16_000,
                            subtype="PCM_16")
        testing.append(f"{word}/speaker0_nohash_0.wav")
        validation.append(f"{word}/speaker1_nohash_0.wav")
    (root / "testing_list.txt").write_text("\n".join(testing) + "\n")
    (root / "validation_list.txt").write_text("\n".join(validation) + "\n")


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    roots = {name: tmp_path_factory.mktemp(name) for name in
             ("cifar10", "cifar100", "speechcommands", "mnist1d")}
    _write_cifar(roots["cifar10"], classes=10, per_file=8, seed=1)
    _write_cifar(roots["cifar100"], classes=100, per_file=24, seed=2)
    _write_speechcommands(roots["speechcommands"])
    return roots


# Per preset: the smoke overrides (small model, batch) and the group to run.
SMOKE: dict[str, tuple[dict[str, str], str]] = {
    "fig3-cifar10": ({"model": "wrn-10-1"}, "m0.95_0.9"),
    "fig4-cifar100": ({"model": "wrn-10-1"}, "m0.9_0.95"),
    "cdlr-cifar10": ({"model": "wrn-10-1", "cdlr_start_epoch": "0"}, "m0.9_0.95"),
    "cdlr-cifar100": ({"model": "wrn-10-1", "cdlr_start_epoch": "0"}, "m0.93_0.9"),
    "vit-cifar10": ({"model": "vit-tiny", "model_options.image_size": "32"}, "m0.857_0.93"),
    "vit-cifar100": ({"model": "vit-tiny", "model_options.image_size": "32"}, "m0.93_0.857"),
    "speechcommands-m11": ({"cdlr_start_epoch": "0", "eval_batch_size": "4"}, "m0.857_0.93"),
    "digits": ({"train_subset": "64", "test_subset": "32"}, "control-m0.933333"),
    "mnist1d": ({"train_subset": "64", "test_subset": "32"}, "m0.95_0.9"),
    # The preset's protocol on a small draw of its generator (50,000 samples take ~20 s).
    "mnist1d-large": ({"train_subset": "64", "test_subset": "32",
                       "data_options.num_samples": "200"}, "control-m0.906009"),
}
BATCH = 8


def _smoke_overrides(name: str, roots: dict[str, Path]) -> dict[str, str]:
    preset = get_single_preset(name)
    overrides = {"epochs": "1", "batch_size": str(BATCH), "threads": "1", "device": "cpu",
                 **SMOKE[name][0]}
    if preset.settings.data in roots:
        overrides["data_root"] = str(roots[preset.settings.data])
    return overrides


def _run_smoke(name: str, group: str, roots: dict[str, Path], out: Path) -> list[dict[str, Any]]:
    preset = get_single_preset(name).with_overrides(_smoke_overrides(name, roots))
    outcome = run_training(preset.run_config(group, 0), out, progress=False, log=lambda _: None)
    assert outcome.result is not None and outcome.result.epochs == 1
    config = json.loads((outcome.run_dir / "config.json").read_text())
    assert config["preset"] == name and config["group"]["name"] == group
    return [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text()
            .splitlines()]


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_preset_runs_one_epoch_on_tiny_data(
    name: str, data_roots: dict[str, Path], tmp_path: Path
) -> None:
    preset = get_single_preset(name)
    group = preset.group(SMOKE[name][1])
    (line,) = _run_smoke(name, group.name, data_roots, tmp_path)
    train_size = {"cifar10": 40, "cifar100": 24, "speechcommands": 6, "digits": 64,
                  "mnist1d": 64}[preset.settings.data]
    steps = -(-train_size // BATCH)
    assert line["epoch"] == 0 and line["steps"] == steps
    assert line["weight_decay"] == preset.settings.weight_decay
    settings = preset.settings
    if settings.schedule == "cdlr":  # decay from iteration 0 (cdlr_start_epoch=0)
        lr = settings.lr
        for _ in range(steps):
            lr = settings.cdlr_factor * lr
        assert line["lr"] == lr
    else:
        assert line["lr"] == settings.lr
    if group.optimizer == "lcam":
        assert line["fraction_above"] is not None and 0.0 <= line["fraction_above"] <= 1.0
    else:
        assert line["fraction_above"] is None


def test_table1_rows_each_run_a_table1_group(data_roots: dict[str, Path], tmp_path: Path) -> None:
    table1 = get_preset("table1")
    assert isinstance(table1, CompositePreset)
    plan = plan_sweep("table1", tmp_path, seeds=1)
    for row in table1.rows:
        jobs = [job for job in plan if job.preset == row.preset]
        assert [job.group for job in jobs] == list(row.groups)
        (line,) = _run_smoke(row.preset, "m0.857_0.93", data_roots, tmp_path)
        assert line["fraction_above"] is not None
        assert (tmp_path / row.preset / "m0.857_0.93" / "seed0" / "result.json").exists()
