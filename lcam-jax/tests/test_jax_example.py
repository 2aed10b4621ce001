"""The README's example is examples/train_mlp.py verbatim, and it trains."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "train_mlp.py"


def test_readme_example_is_the_example_file_verbatim():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- example: examples/train_mlp.py -->\n```python\n(.*?)```",
                      readme, re.S)
    assert match, "README.md lacks the marked example block"
    assert match.group(1) == EXAMPLE.read_text()


def test_example_trains_with_one_window_per_epoch(capsys):
    spec = importlib.util.spec_from_file_location("lcam_jax_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    history, accuracy = example.main(epochs=3)
    steps_per_epoch = 1024 // 64
    assert [h["steps_above"] + h["steps_below"] for h in history] == [steps_per_epoch] * 3
    assert 0 < sum(h["steps_above"] for h in history) < 3 * steps_per_epoch
    losses = [h["loss"] for h in history]
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0]
    assert accuracy > 0.9
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("epoch 0: mean loss ")
    assert f"train accuracy {accuracy:.3f}" in out
