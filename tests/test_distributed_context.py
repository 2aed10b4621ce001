"""The pieces of data-parallel training that need no second process.

The launcher's argument handling, the device of each rank, the loss weights of an
unequally split batch, and the loop's rank rules (only rank 0 touches the run
directory; refused layouts fail before any file exists), checked with a scripted
stand-in for the other rank.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import lcam.harness.loop as loop
from lcam.cli import main
from lcam.harness.config import ConfigError, RunConfig
from lcam.harness.data import BatchLoader, Split
from lcam.harness.distributed import (
    TorchDistributed,
    launched_by_torchrun,
    rank_device,
    torchrun_command,
    without_nproc,
)
from lcam.harness.presets import get_single_preset
from lcam.harness.rundir import RunDirectoryError
from lcam.harness.sweep import job_lines, plan_sweep

SMALL = {"epochs": "2", "train_subset": "130", "test_subset": "50", "threads": "1",
         "milestones": "1", "batch_size": "64", "device": "cpu"}


def _config(**overrides: str) -> RunConfig:
    return get_single_preset("digits").with_overrides({**SMALL, **overrides}).run_config(
        "m0.95_0.9", 0)


@dataclass
class ScriptedPeer:
    """Rank ``rank`` of two, whose (absent) peer holds the same values as this rank.

    The first sum is the run-directory decision, to which only rank 0 contributes:
    it returns ``decision`` (0 refused, 1 fresh, 2 resume, 3 finished) on rank 1.
    """

    rank: int = 1
    world_size: int = 2
    decision: int = 1
    sums: int = 0

    def wrap_model(self, model: nn.Module) -> nn.Module:
        return model

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        self.sums += 1
        if self.sums == 1 and self.rank == 1:
            return tensor + self.decision
        return tensor * 2

    def synchronize_buffers(self, module: nn.Module) -> None:
        pass

    def barrier(self) -> None:
        pass


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_rank_1_trains_without_creating_the_run_directory(tmp_path: Path) -> None:
    outcome = loop.run_training(_config(), tmp_path / "out", progress=False,
                                distributed=ScriptedPeer(decision=1))
    assert outcome.start == "fresh" and outcome.epochs_run == 2 and outcome.result is None
    assert not (tmp_path / "out").exists()


def test_rank_1_resumes_from_rank_0_checkpoint_without_writing(tmp_path: Path) -> None:
    partial = _config(epochs="2")
    loop.run_training(partial, tmp_path, progress=False, log=lambda _: None)
    run_dir = tmp_path / "digits" / "m0.95_0.9" / "seed0"
    (run_dir / "result.json").unlink()
    before = _snapshot(tmp_path)
    outcome = loop.run_training(partial, tmp_path, resume=True, progress=False,
                                distributed=ScriptedPeer(decision=2))
    assert outcome.start == "resume" and outcome.epochs_run == 0
    assert _snapshot(tmp_path) == before


def test_rank_1_fails_when_rank_0_refuses_the_run_directory(tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match="refused by rank 0"):
        loop.run_training(_config(), tmp_path, progress=False,
                          distributed=ScriptedPeer(decision=0))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("overrides", "message"), [
    ({"batch_norm": "sync"}, "batch_norm=sync needs CUDA"),
    ({"batch_size": "63"}, "must be divisible by the 2 processes"),
])
def test_unusable_layouts_are_refused_before_any_file_is_written(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        loop.run_training(_config(**overrides), tmp_path, progress=False,
                          distributed=ScriptedPeer(rank=0))
    assert list(tmp_path.iterdir()) == []


def test_ranks_agree_only_when_every_rank_holds_the_same_counts() -> None:
    @dataclass
    class Peer:
        other: list[int]
        rank: int = 0
        world_size: int = 2

        def all_reduce_sum(self, tensor: Tensor) -> Tensor:
            return tensor + torch.tensor(self.other + [v * v for v in self.other])

    assert loop._same_on_every_rank(Peer([3, 8]), [3, 8])  # type: ignore[arg-type]
    assert not loop._same_on_every_rank(Peer([4, 8]), [3, 8])  # type: ignore[arg-type]
    # Equal sums are not enough: 2 + 4 == 3 + 3, but 2² + 4² != 3² + 3².
    assert not loop._same_on_every_rank(Peer([2, 8]), [4, 8])  # type: ignore[arg-type]


def _loader(size: int, rank: int, world_size: int) -> BatchLoader:
    split = Split(torch.zeros(size, 1, dtype=torch.uint8), torch.zeros(size, dtype=torch.int64))
    return BatchLoader(split, batch_size=64, shuffle=True, augment="none", normalize=None,
                       device="cpu", seed=0, rank=rank, world_size=world_size)


def test_loss_weights_make_the_rank_average_the_global_batch_mean() -> None:
    # 203 samples: three full batches, then 11 samples split 6 + 5.
    weights = [loop.shard_loss_weights(_loader(203, rank, 2)) for rank in (0, 1)]
    assert weights == [[1.0, 1.0, 1.0, 12 / 11], [1.0, 1.0, 1.0, 10 / 11]]
    losses = torch.rand(11, dtype=torch.float64)  # per-sample losses of the last batch
    rank_means = [losses[:6].mean(), losses[6:].mean()]
    averaged = sum(w[-1] * m for w, m in zip(weights, rank_means, strict=True)) / 2
    assert float(averaged) == pytest.approx(float(losses.mean()), rel=1e-15)
    assert loop.shard_loss_weights(_loader(203, 0, 1)) is None  # one process
    assert loop.shard_loss_weights(_loader(200, 0, 2)) is None  # 8 samples split 4 + 4


def test_a_last_batch_smaller_than_the_ranks_is_dropped(tmp_path: Path) -> None:
    # 129 samples at batch 64 on 2 ranks: the last batch (1 sample) cannot be split.
    outcome = loop.run_training(_config(train_subset="129"), tmp_path / "out", progress=False,
                                distributed=ScriptedPeer(decision=1))
    assert outcome.epochs_run == 2 and not (tmp_path / "out").exists()
    trainer = loop._Trainer(_config(train_subset="129"), ScriptedPeer())
    assert trainer.drop_last and len(trainer.train_loader) == 2 and trainer.train_size == 128
    single = loop._Trainer(_config(train_subset="129"), loop.SINGLE_PROCESS)
    assert not single.drop_last and len(single.train_loader) == 3


@pytest.mark.parametrize(("arguments", "expected"), [
    (["digits", "--nproc", "4", "--seed", "1"], ["digits", "--seed", "1"]),
    (["digits", "--nproc=4", "--seed", "1"], ["digits", "--seed", "1"]),
    (["digits", "--npr", "4", "--no-progress"], ["digits", "--no-progress"]),
    (["digits", "--no-progress", "--set", "lr=0.1"], ["digits", "--no-progress", "--set",
                                                      "lr=0.1"]),
])
def test_nproc_is_removed_from_the_arguments_given_to_torchrun(
    arguments: list[str], expected: list[str]
) -> None:
    assert without_nproc(arguments) == expected


def test_torchrun_command_runs_lcam_train_as_a_module() -> None:
    command = torchrun_command(8, ["fig3-cifar10", "--group", "m0.9"])
    assert command == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc_per_node=8", "-m", "lcam", "train", "fig3-cifar10",
                       "--group", "m0.9"]


def test_each_rank_gets_its_own_gpu_or_the_cpu() -> None:
    assert rank_device("cpu", 3) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert rank_device("auto", 1) == torch.device("cpu")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            rank_device("cuda", 0)
    with pytest.raises(ConfigError, match="every rank on one GPU"):
        rank_device("cuda:1", 0)
    with pytest.raises(ConfigError, match="CPU \\(gloo\\) or CUDA \\(NCCL\\)"):
        rank_device("meta", 0)


def test_torchrun_environment_is_recognised_and_required() -> None:
    assert launched_by_torchrun({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    assert not launched_by_torchrun({"LOCAL_RANK": "0"})
    with pytest.raises(ConfigError, match="LOCAL_RANK not set: start distributed runs"):
        TorchDistributed.from_environment("cpu", {"RANK": "0", "WORLD_SIZE": "2"})


def test_nproc_inside_a_torchrun_worker_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "digits", "--group", "m0.9", "--out", str(tmp_path),
                 "--nproc", "2"]) == 2
    assert "--nproc given to a process torchrun started" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["--nproc", "0"], "invalid --nproc: 0"),
    (["--nproc", "3"], "batch_size 128 is the global batch and must be divisible by --nproc 3"),
    (["--nproc", "2", "--model", "resnet"], "unknown model 'resnet'"),
])
def test_nproc_checks_the_run_before_launching(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["train", "digits", "--group", "m0.9", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_print_commands_prints_one_self_contained_line_per_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "digits", "--out", "runs", "--seeds", "2", "--groups",
                 "m0.9,m0.95_0.9", "--print-commands", "--epochs", "3", "--data-root",
                 "data with spaces", "--set", "control=false", "--nproc", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and not (tmp_path / "runs").exists()  # printed, not run
    out = str(tmp_path / "runs")
    plan = plan_sweep("digits", Path(out), seeds=2, groups=["m0.9", "m0.95_0.9"], nproc=2,
                      overrides={"epochs": "3", "data_root": "data with spaces",
                                 "control": "false"},
                      split_threads=False)
    assert lines == job_lines(plan)
    commands = [shlex.split(line) for line in lines]
    assert [c[c.index("--group") + 1] + "/" + c[c.index("--seed") + 1] for c in commands] == [
        "m0.9/0", "m0.9/1", "m0.95_0.9/0", "m0.95_0.9/1"]
    for command in commands:
        assert command[:4] == [sys.executable, "-m", "lcam", "train"]
        assert command[command.index("--out") + 1] == out  # absolute
        assert command[command.index("--nproc") + 1] == "2" and "--resume" in command
        assert "data_root=data with spaces" in command and "epochs=3" in command
        assert not any(part.startswith("threads=") for part in command)


def test_print_commands_rejects_an_unknown_option_before_printing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["sweep", "digits", "--out", str(tmp_path), "--print-commands", "--set",
                 "model_options.widht=2"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "unknown model option 'widht'" in captured.err
