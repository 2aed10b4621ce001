"""``--data`` / ``--model`` ``package.module:function``: each function receives only the
options it accepts or that the user set; a mismatch is one line naming the option and
the function, before any worker starts."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from lcam.cli import main
from lcam.harness.config import ConfigError
from lcam.harness.presets import get_single_preset

USER_MODULE = textwrap.dedent("""
    from torch import nn
    from lcam.harness.data import load_data

    def load(*, root, seed):                      # no num_samples: the preset's is dropped
        return load_data("mnist1d", root=root, seed=seed, num_samples=100)

    def load_any(*, root, seed, **options):       # **options: every option reaches it
        return load_data("mnist1d", root=root, seed=seed, **options)

    def load_sized(*, root, seed, size):          # size has no default
        return load_data("mnist1d", root=root, seed=seed, num_samples=size)

    def model(*, num_classes, input_shape, hidden=8):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], hidden), nn.ReLU(),
                             nn.Linear(hidden, num_classes))

    def model_without_classes(*, input_shape):
        return nn.Linear(input_shape[-1], 10)
""")


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "lcam_user_functions.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "lcam_user_functions"


def _sweep(out: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["sweep", "mnist1d-large", "--out", str(out), "--seeds", "1", "--groups", "m0.9",
            "--epochs", "1", "--set", "control=false", "--data-root", str(tmp_path / "data"),
            "--threads", "1", *extra]


def test_preset_options_a_function_does_not_take_are_dropped_with_a_note(
    user_module: str,
) -> None:
    preset = get_single_preset("mnist1d-large")
    assert preset.settings.data_options == {"num_samples": 50000}
    mine = preset.with_overrides({"data": f"{user_module}:load"})
    assert mine.settings.data_options == {}
    assert mine.option_notes == (
        f"data_options.num_samples=50000 of preset 'mnist1d-large' is not passed to "
        f"{user_module}:load, which does not accept it",)
    assert mine.option_notes[0] in mine.to_json()["notes"]
    # **options accepts everything: the preset's option reaches it.
    anything = preset.with_overrides({"data": f"{user_module}:load_any"})
    assert anything.settings.data_options == {"num_samples": 50000}
    assert anything.option_notes == ()
    # The same for model options (ViT's image_size) and a model function without it.
    vit = get_single_preset("vit-cifar10")
    assert "image_size" in vit.settings.model_options
    assert "image_size" not in vit.with_overrides(
        {"model": f"{user_module}:model"}).settings.model_options


def test_a_sweep_with_the_users_data_function_runs_without_the_presets_options(
    user_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    assert main(_sweep(out, tmp_path, "--data", f"{user_module}:load")) == 0
    captured = capsys.readouterr()
    note = (f"lcam sweep: note: data_options.num_samples=50000 of preset 'mnist1d-large' is "
            f"not passed to {user_module}:load, which does not accept it")
    assert note in captured.err.splitlines()
    run_dir = out / "mnist1d-large" / "m0.9" / "seed0"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"] == f"{user_module}:load" and config["config"]["data_options"] == {}
    assert "Traceback" not in (run_dir / "train.log").read_text()
    assert (run_dir / "result.json").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--data", "{m}:load", "--set", "data_options.num_samples=100"],
     "data_options.num_samples is not a parameter of {m}:load(*, root, seed); drop --set "
     "data_options.num_samples or add the parameter"),
    (["--data", "{m}:load_sized"],
     "{m}:load_sized(*, root, seed, size) requires size, which nothing sets: add --set "
     "data_options.size=VALUE"),
    (["--data", "{m}:load", "--model", "{m}:model_without_classes"],
     "{m}:model_without_classes(*, input_shape) does not accept num_classes=, which lcam "
     "passes to every model function (add a parameter num_classes or **kwargs)"),
    (["--data", "{m}:load", "--model", "{m}:model", "--set", "model_options.width=3"],
     "model_options.width is not a parameter of {m}:model(*, num_classes, input_shape, "
     "hidden=8); drop --set model_options.width or add the parameter"),
])
@pytest.mark.parametrize("command", ["sweep", "train"])
def test_a_mismatch_is_one_line_before_anything_runs(
    command: str, extra: list[str], message: str, user_module: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "runs"
    extra = [part.format(m=user_module) for part in extra]
    if command == "sweep":
        argv = _sweep(out, tmp_path, *extra)
    else:
        argv = ["train", "mnist1d-large", "--group", "m0.9", "--out", str(out), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"lcam {command}: error: {message.format(m=user_module)}\n"
    assert not out.exists()  # no worker started, no directory made


def test_an_option_set_explicitly_is_kept_for_a_function_that_takes_it(
    user_module: str,
) -> None:
    preset = get_single_preset("mnist1d-large").with_overrides(
        {"data": f"{user_module}:load_sized", "data_options.size": "60"})
    assert preset.settings.data_options == {"size": 60}  # num_samples dropped, size kept
    from lcam.harness.components import validate_names

    validate_names(preset.settings)
    with pytest.raises(ConfigError, match="data_options.root cannot be set"):
        validate_names(get_single_preset("mnist1d-large").with_overrides(
            {"data": f"{user_module}:load_any", "data_options.root": "x"}).settings)
