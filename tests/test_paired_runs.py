"""Runs of one seed are paired: every group starts from the same weights and sees the
same batches in the same order, so groups can be compared seed by seed."""

from __future__ import annotations

import pytest
import torch

from lcam.harness.loop import SINGLE_PROCESS, _Trainer
from lcam.harness.presets import get_single_preset

SMALL = {"train_subset": "96", "test_subset": "32", "threads": "1", "device": "cpu"}


@pytest.fixture(scope="module", autouse=True)
def data_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    SMALL["data_root"] = str(tmp_path_factory.mktemp("data"))


def _trainer(preset: str, group: str, seed: int) -> _Trainer:
    overrides = dict(SMALL)
    if preset == "mnist1d":  # a small draw of the same generator: the pairing is the point
        overrides["data_options.num_samples"] = "200"
    config = get_single_preset(preset).with_overrides(overrides).run_config(group, seed)
    return _Trainer(config, SINGLE_PROCESS)


def _snapshot(trainer: _Trainer) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    plans = [trainer.train_loader.epoch_plan(epoch).order for epoch in range(3)]
    return weights, plans


def test_groups_of_one_seed_share_initial_weights_and_batch_order() -> None:
    for preset in ("digits", "mnist1d"):
        groups = [g.name for g in get_single_preset(preset).sweep_groups()]
        reference_weights, reference_plans = _snapshot(_trainer(preset, groups[0], 3))
        for group in groups[1:]:
            weights, plans = _snapshot(_trainer(preset, group, 3))
            assert weights.keys() == reference_weights.keys()
            assert all(torch.equal(weights[k], reference_weights[k]) for k in weights), group
            assert all(torch.equal(a, b) for a, b in zip(plans, reference_plans, strict=True))


def test_another_seed_changes_weights_and_order() -> None:
    weights_a, plans_a = _snapshot(_trainer("mnist1d", "m0.9", 0))
    weights_b, plans_b = _snapshot(_trainer("mnist1d", "m0.9", 1))
    assert not all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert not torch.equal(plans_a[0], plans_b[0])
