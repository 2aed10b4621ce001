"""Presets carry the paper's exact protocol; overrides and names fail loudly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lcam import balanced_momentum, matched_momentum
from lcam.harness.config import ConfigError, GroupSpec, RunSettings, UnknownNameError
from lcam.harness.presets import (
    TABLE1_LOW,
    CompositePreset,
    Preset,
    get_preset,
    get_single_preset,
    preset_names,
    show,
)
from lcam.harness.sweep import plan_sweep

PAPER_PRESETS = ("fig3-cifar10", "fig4-cifar100", "cdlr-cifar10", "cdlr-cifar100",
                 "vit-cifar10", "vit-cifar100", "speechcommands-m11")


def _groups(name: str) -> dict[str, tuple[str, float | None, float | None, float | None]]:
    preset = get_single_preset(name)
    return {g.name: (g.optimizer, g.momentum, g.momentum_below, g.momentum_above)
            for g in preset.groups}


def test_registry_holds_every_preset_of_the_issue() -> None:
    assert set(preset_names()) == {
        "digits", "table1", *PAPER_PRESETS, "mnist1d", "mnist1d-large", "evidence",
        "mnist1d-large-wide", "mnist1d-100", "mnist1d-100-coarse", "mnist1d-large-wide-lrx0.5",
        "mnist1d-large-wide-lrx2", "evidence-sparsity", "evidence-schedule"}


@pytest.mark.parametrize("name", ["fig3-cifar10", "fig4-cifar100"])
def test_figure_presets_are_the_step_protocol(name: str) -> None:
    settings = get_single_preset(name).settings
    assert settings.data == name.split("-")[1]
    assert (settings.model, settings.epochs, settings.lr, settings.weight_decay) == (
        "wrn-28-10", 150, 0.1, 5e-4)
    assert (settings.schedule, settings.milestones, settings.gamma) == ("step", (31, 61, 91), 0.2)
    assert (settings.batch_size, settings.decision, settings.augment) == (128, "lagged", True)
    assert _groups(name) == {
        "m0.9": ("sgd", 0.9, None, None),
        "m0.95": ("sgd", 0.95, None, None),
        "m0.95_0.9": ("lcam", None, 0.95, 0.9),  # 0.95 below the average loss
        "m0.9_0.95": ("lcam", None, 0.9, 0.95),
    }


def test_cdlr_presets_are_the_demo_figure5_script() -> None:
    for name in ("cdlr-cifar10", "cdlr-cifar100"):
        settings = get_single_preset(name).settings
        assert (settings.schedule, settings.cdlr_start_epoch, settings.cdlr_factor) == (
            "cdlr", 31, 0.99985)
        assert (settings.model, settings.epochs, settings.lr) == ("wrn-28-10", 150, 0.1)
    assert _groups("cdlr-cifar10") == {"m0.9": ("sgd", 0.9, None, None),
                                       "m0.9_0.95": ("lcam", None, 0.9, 0.95)}
    assert _groups("cdlr-cifar100") == {"m0.9": ("sgd", 0.9, None, None),
                                        "m0.93_0.9": ("lcam", None, 0.93, 0.9)}


def test_table1_low_momentum_is_the_papers_rounding_of_the_balanced_pair() -> None:
    assert round(balanced_momentum(0.9, 0.93), 3) == TABLE1_LOW == 0.857


@pytest.mark.parametrize("name", ["vit-cifar10", "vit-cifar100", "speechcommands-m11"])
def test_table1_presets_have_the_three_table1_groups(name: str) -> None:
    assert _groups(name) == {"m0.9": ("sgd", 0.9, None, None),
                             "m0.857_0.93": ("lcam", None, 0.857, 0.93),
                             "m0.93_0.857": ("lcam", None, 0.93, 0.857)}


def test_vit_presets_fine_tune_with_constant_sgd_lr_1e4() -> None:
    settings = get_single_preset("vit-cifar100").settings
    assert (settings.model, settings.lr, settings.schedule, settings.data) == (
        "vit-b16", 1e-4, "constant", "cifar100")
    assert settings.model_options["image_size"] == 224


def test_speechcommands_preset_is_m11_with_cdlr() -> None:
    settings = get_single_preset("speechcommands-m11").settings
    assert (settings.model, settings.data, settings.schedule) == ("m11", "speechcommands", "cdlr")


def test_digits_has_paper_groups_balanced_pairs_and_controls() -> None:
    preset = get_single_preset("digits")
    names = [g.name for g in preset.sweep_groups()]
    # One control per distinct matched momentum: a pair and its swap share it.
    assert names == ["m0.9", "m0.95", "m0.95_0.9", "m0.9_0.95", "m0.857_0.93", "m0.93_0.857",
                     "control-m0.933333", "control-m0.906009"]
    roles = {g.name: g.role for g in preset.sweep_groups()}
    assert roles["m0.95_0.9"] == "paper" and roles["m0.857_0.93"] == "balanced"
    control = preset.group("control-m0.933333")
    assert (control.optimizer, control.role, control.matched_to) == (
        "sgd", "control", ("m0.95_0.9", "m0.9_0.95"))
    assert preset.group("control-m0.906009").matched_to == ("m0.857_0.93", "m0.93_0.857")
    # effective steps 1/(1-0.9) = 10 and 1/(1-0.95) = 20, half the steps each -> 15
    assert control.momentum == matched_momentum(0.9, 0.95, fraction_above=0.5)
    assert control.momentum == pytest.approx(1 - 1 / 15, abs=1e-15)


def test_control_follows_the_configured_fraction_above() -> None:
    preset = get_single_preset("digits").with_overrides({"control_fraction_above": "0.25"})
    # A fraction other than 0.5 tells a pair from its swap: one control each.
    controls = {g.matched_to: g for g in preset.control_groups()}
    assert set(controls) == {("m0.95_0.9",), ("m0.9_0.95",), ("m0.857_0.93",), ("m0.93_0.857",)}
    control = controls[("m0.95_0.9",)]
    # a quarter of the steps at 0.9 (above), three quarters at 0.95 (below)
    assert control.momentum == pytest.approx(1 - 1 / (0.25 * 10 + 0.75 * 20), abs=1e-12)
    assert control.name == f"control-m{control.momentum:g}"


def test_every_paper_preset_can_enable_the_control() -> None:
    for name in PAPER_PRESETS:
        preset = get_single_preset(name)
        assert not preset.control
        plain = [g.name for g in preset.sweep_groups()]
        with_control = [g.name for g in preset.with_overrides({"control": "true"}).sweep_groups()]
        lcam_groups = [g for g in preset.groups if g.optimizer == "lcam"]
        expected = []
        for group in lcam_groups:
            momentum = matched_momentum(group.momentum_above, group.momentum_below,
                                        fraction_above=0.5)
            if f"control-m{momentum:g}" not in expected:
                expected.append(f"control-m{momentum:g}")
        assert with_control == plain + expected


def test_table1_is_five_rows_with_the_table1_groups() -> None:
    table1 = get_preset("table1")
    assert isinstance(table1, CompositePreset)
    assert [row.preset for row in table1.rows] == [
        "speechcommands-m11", "cdlr-cifar10", "vit-cifar10", "cdlr-cifar100", "vit-cifar100"]
    assert {row.groups for row in table1.rows} == {("m0.9", "m0.857_0.93", "m0.93_0.857")}
    with pytest.raises(ConfigError, match="composite"):
        get_single_preset("table1")


def test_table1_sweep_runs_each_row_in_its_own_preset_directory(tmp_path: Path) -> None:
    plan = plan_sweep("table1", tmp_path, seeds=2)
    assert len(plan) == 5 * 3 * 2
    dirs = {job.run_dir.path.relative_to(tmp_path).as_posix() for job in plan}
    assert "cdlr-cifar10/m0.857_0.93/seed1" in dirs  # Table 1's groups on the Cdlr protocol
    assert "cdlr-cifar10/m0.9/seed0" in dirs  # shared with `lcam sweep cdlr-cifar10`
    assert {d.split("/")[0] for d in dirs} == {row for row in (
        "speechcommands-m11", "cdlr-cifar10", "vit-cifar10", "cdlr-cifar100", "vit-cifar100")}


def test_unknown_names_are_rejected_with_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError,
                       match="valid presets: digits, mnist1d, mnist1d-large, fig3-cifar10"):
        get_preset("fig3")
    with pytest.raises(UnknownNameError, match=r"valid groups: m0.9, m0.9_0.95, m0.857_0.93"):
        get_single_preset("cdlr-cifar10").group("m0.95_0.9")
    with pytest.raises(UnknownNameError,
                       match="valid settings: amp, augment, batch_norm, batch_size"):
        get_single_preset("digits").with_overrides({"epoch": "3"})
    with pytest.raises(UnknownNameError, match="valid schedule values: step, cdlr"):
        get_single_preset("digits").with_overrides({"schedule": "linear"})


def test_overrides_are_parsed_with_the_declared_types() -> None:
    preset = get_single_preset("fig3-cifar10").with_overrides({
        "epochs": "2", "lr": "0.05", "milestones": "1,2", "augment": "no",
        "train_subset": "64", "model_options.image_size": "32", "data_options.download": "true",
        "seeds": "5", "control": "yes", "data_root": "none",
    })
    settings = preset.settings
    assert (settings.epochs, settings.lr, settings.milestones, settings.augment) == (
        2, 0.05, (1, 2), False)
    assert settings.train_subset == 64 and settings.data_root is None
    assert settings.model_options == {"image_size": 32}
    assert settings.data_options == {"download": True}
    assert (preset.seeds, preset.control) == (5, True)
    with pytest.raises(ConfigError, match="invalid epochs: 'two'"):
        get_single_preset("digits").with_overrides({"epochs": "two"})
    with pytest.raises(ConfigError, match="invalid epochs: 0"):
        get_single_preset("digits").with_overrides({"epochs": "0"})


def test_mnist1d_presets_freeze_one_protocol_for_every_group() -> None:
    small, large = get_single_preset("mnist1d"), get_single_preset("mnist1d-large")
    for preset in (small, large):
        settings = preset.settings
        assert (settings.data, settings.model, settings.decision) == (
            "mnist1d", "mnist1d-cnn", "lagged")
        assert (settings.lr, settings.batch_size, settings.weight_decay) == (0.15, 128, 5e-4)
        # x0.2 from 20/40/60% of the epochs, as Fig. 3's 31/61/91 of 150
        assert [m / settings.epochs for m in settings.milestones] == [0.2, 0.4, 0.6]
        assert [g.name for g in preset.sweep_groups()] == [
            "m0.9", "m0.95", "m0.95_0.9", "m0.9_0.95", "m0.857_0.93", "m0.93_0.857",
            "control-m0.933333", "control-m0.906009"]
    assert (small.settings.epochs, small.seeds, small.settings.data_options) == (60, 20, {})
    assert (large.settings.epochs, large.seeds) == (20, 8)
    assert large.settings.data_options == {"num_samples": 50000}


def test_evidence_runs_every_group_of_three_data_sets_with_their_seeds() -> None:
    preset = get_preset("evidence")
    assert isinstance(preset, CompositePreset)
    rows = preset.resolved_rows()
    assert [(p.name, p.seeds) for p, _ in rows] == [
        ("digits", 20), ("mnist1d", 20), ("mnist1d-large", 8)]
    assert [len(p.sweep_groups(g)) for p, g in rows] == [8, 8, 8]


def test_controls_of_one_momentum_merge_and_others_do_not() -> None:
    a = GroupSpec.control_for(GroupSpec.asymmetric(below=0.95, above=0.9), fraction_above=0.5)
    b = GroupSpec.control_for(GroupSpec.asymmetric(below=0.9, above=0.95), fraction_above=0.5)
    assert a.name == b.name == "control-m0.933333"
    assert a.merged_with(b).matched_to == ("m0.95_0.9", "m0.9_0.95")
    other = GroupSpec.control_for(GroupSpec.asymmetric(below=0.93, above=0.857),
                                  fraction_above=0.5)
    with pytest.raises(ConfigError, match="only one control per momentum"):
        a.merged_with(other)
    with pytest.raises(ConfigError, match="matched_to is a tuple"):
        GroupSpec(name="c", optimizer="sgd", momentum=0.9, role="control", matched_to="x")  # type: ignore[arg-type]


def test_groups_validate_their_momenta() -> None:
    with pytest.raises(ConfigError, match="not in"):
        GroupSpec.fixed(1.5)
    with pytest.raises(ConfigError, match="momentum_above and momentum_below"):
        GroupSpec(name="x", optimizer="lcam", momentum_above=0.9)


def test_show_prints_the_resolved_preset_as_json() -> None:
    shown = json.loads(show("digits", {"epochs": "3"}))
    assert shown["settings"]["epochs"] == 3
    assert shown["sweep_groups"][-1] == "control-m0.906009"
    composite = json.loads(show("table1"))
    assert [row["preset"]["name"] for row in composite["rows"]][0] == "speechcommands-m11"


def test_run_config_json_has_the_contract_fields() -> None:
    config = get_single_preset("fig4-cifar100").run_config("m0.95_0.9", 2)
    document = config.to_json()
    assert set(document) == {"preset", "group", "seed", "epochs", "data", "model", "schedule",
                             "config"}
    assert document["group"] == {"name": "m0.95_0.9", "optimizer": "lcam", "momentum": None,
                                 "momentum_above": 0.9, "momentum_below": 0.95,
                                 "role": "paper", "matched_to": None}
    assert (document["data"], document["model"], document["schedule"]) == (
        "cifar100", "wrn-28-10", "step")
    assert document["config"] == json.loads(json.dumps(config.settings.to_json()))
    assert isinstance(get_preset("digits"), Preset)
    assert RunSettings().to_json()["milestones"] == [31, 61, 91]
