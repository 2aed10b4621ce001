"""Half-length groups (C3 as the paper states it) and the class-sparsity presets (C2).

A shortened group trains a fraction of the preset's epochs with the lr drops at the
same fractions; it is paired with the full-length groups (same initial weights, same
batches in the same order); full-length groups keep their old ``config.json``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from lcam.harness.config import ConfigError, GroupSpec, RunSettings
from lcam.harness.loop import SINGLE_PROCESS, _Trainer
from lcam.harness.presets import (
    FIGURE_GROUPS,
    SPARSITY_ARMS,
    CompositePreset,
    get_preset,
    get_single_preset,
)

pytest.importorskip("mnist1d", reason="needs the mnist1d package (lcam[harness])")


def test_a_shortened_group_is_named_after_its_fraction_and_says_so_in_config() -> None:
    base = GroupSpec.asymmetric(below=0.95, above=0.9)
    half = GroupSpec.shortened(base, 0.5)
    assert half.name == "m0.95_0.9-half" and half.schedule_fraction == 0.5
    assert half.to_json()["schedule_fraction"] == 0.5
    assert "schedule_fraction" not in base.to_json()  # old config.json files stay equal
    assert GroupSpec.shortened(GroupSpec.fixed(0.9), 0.25).name == "m0.9-f0.25"
    with pytest.raises(ConfigError, match="already shortened"):
        GroupSpec.shortened(half, 0.5)
    with pytest.raises(ConfigError, match=r"schedule_fraction 1.5 is not in \(0, 1\]"):
        dataclasses.replace(base, schedule_fraction=1.5)


def test_the_schedule_shrinks_with_its_milestones_at_the_same_fractions() -> None:
    settings = RunSettings(epochs=20, milestones=(4, 8, 12), schedule="step")
    half = settings.shortened(0.5)
    assert (half.epochs, half.milestones) == (10, (2, 4, 6))
    assert settings.shortened(1.0) is settings
    cdlr = RunSettings(epochs=150, schedule="cdlr", cdlr_start_epoch=31).shortened(0.5)
    assert (cdlr.epochs, cdlr.cdlr_start_epoch) == (75, 16)
    tiny = RunSettings(epochs=3, milestones=(1, 2)).shortened(0.2)
    assert (tiny.epochs, tiny.milestones) == (1, (1,))  # at least one epoch and milestone 1
    with pytest.raises(ConfigError, match="invalid schedule fraction"):
        settings.shortened(0.0)


def test_the_sparsity_arms_share_one_protocol_and_differ_in_data_and_lr_only() -> None:
    arms = [get_single_preset(name) for name in SPARSITY_ARMS]
    reference = arms[0].settings
    for arm in arms:
        assert arm.settings.model == "mnist1d-cnn" and arm.settings.model_options == {
            "channels": 64}
        assert arm.settings.data_options["num_samples"] == 50000
        assert dataclasses.replace(arm.settings, data_options={}, lr=1.0) == dataclasses.replace(
            reference, data_options={}, lr=1.0)
        assert [g.name for g in arm.sweep_groups()] == [
            "m0.9", "m0.95", "m0.95_0.9", "m0.9_0.95", "control-m0.933333"]
        half = [g for g in arm.valid_groups() if g.schedule_fraction == 0.5]
        assert [g.name for g in half] == [f"{g.name}-half" for g in FIGURE_GROUPS]
        assert all(g.name.endswith("-half") is False for g in arm.control_groups())
        config = arm.run_config("m0.9_0.95-half", 0)
        assert (config.settings.epochs, config.settings.milestones) == (10, (2, 4, 6))
    assert arms[1].settings.data_options == {"num_samples": 50000, "templates": "pairs"}
    assert arms[2].settings.data_options == {"num_samples": 50000, "templates": "pairs",
                                             "labels": "coarse"}
    for label, factor in (("x0.5", 0.5), ("x2", 2.0)):
        lr_preset = get_single_preset(f"mnist1d-large-wide-lr{label}")
        assert lr_preset.settings.lr == pytest.approx(reference.lr * factor)
        assert dataclasses.replace(lr_preset.settings, lr=reference.lr) == reference


def test_the_evidence_composites_cover_each_claims_groups() -> None:
    sparsity = get_preset("evidence-sparsity")
    schedule = get_preset("evidence-schedule")
    assert isinstance(sparsity, CompositePreset) and isinstance(schedule, CompositePreset)
    rows = {p.name: [g.name for g in p.sweep_groups(groups)]
            for p, groups in sparsity.resolved_rows()}
    assert list(rows) == list(SPARSITY_ARMS)
    assert all("control-m0.933333" in groups for groups in rows.values())
    rows = {p.name: [g.name for g in p.sweep_groups(groups)]
            for p, groups in schedule.resolved_rows()}
    for arm in SPARSITY_ARMS:  # m0.9 at full length is the target; no control for halves
        assert rows[arm] == ["m0.9", "m0.9-half", "m0.95-half", "m0.95_0.9-half",
                             "m0.9_0.95-half"]
    assert rows["mnist1d-large-wide-lrx2"] == ["m0.9", "m0.95_0.9", "m0.9_0.95",
                                               "control-m0.933333"]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {"train_subset": "200", "test_subset": "100", "threads": "1", "device": "cpu",
            "epochs": "4", "data_options.num_samples": "300",
            "data_root": str(tmp_path_factory.mktemp("data"))}


def test_half_and_full_runs_of_one_seed_start_alike_and_end_at_their_lengths(
    small: dict[str, str], tmp_path: Path
) -> None:
    preset = get_single_preset("mnist1d-100").with_overrides(small)
    trainers = {g: _Trainer(preset.run_config(g, 2), SINGLE_PROCESS)
                for g in ("m0.9", "m0.9-half", "m0.95_0.9-half")}
    reference = trainers["m0.9"]
    for name, trainer in trainers.items():
        weights = reference.model.state_dict()
        assert all(torch.equal(v, weights[k]) for k, v in trainer.model.state_dict().items())
        for epoch in range(2):
            assert torch.equal(trainer.train_loader.epoch_plan(epoch).order,
                               reference.train_loader.epoch_plan(epoch).order), name
    assert trainers["m0.9-half"].config.settings.epochs == 2
    assert trainers["m0.9-half"].config.settings.milestones == (2, 4, 6)
