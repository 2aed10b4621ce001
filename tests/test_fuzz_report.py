"""Property-based tests (hypothesis) of ``lcam report`` on damaged run trees.

A random sweep tree (presets x groups x seeds, finished and partial runs, written as
the harness writes them) is damaged at random: files deleted, truncated, replaced by
garbage bytes, bad JSON, JSON of the wrong type or with wrong-typed keys, directories
or dangling links in place of files, metrics lines duplicated, dropped or reordered,
whole runs copied under other names, foreign files and directories anywhere (some
named like the report's own outputs). ``lcam report TREE --no-figures`` then runs in
process, through the ``lcam`` command line's ``main``, and must

* return 0 or 1 (4 when it cannot write its output) and never let an exception out;
* on 0: account for every input file it found (``config.json`` in a ``seed<K>``
  directory, any ``metrics.jsonl`` or ``result.json``): either its run is in
  ``summary.json``, read from that file, or the file (or its directory) is named on
  standard error;
* on 1: say ``lcam report: error:`` and name a path of the tree; when no run could be
  read, name every input file it found (or its directory).

Example counts: five times those of the ``ci`` profile of tests/conftest.py (default); run
``HYPOTHESIS_PROFILE=long pytest tests/test_fuzz_report.py`` for many more.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, note, settings
from hypothesis import strategies as st
from test_report import CONTROL_A, FIXED, LCAM_A, LCAM_B, write_run

from lcam.cli import main

GROUPS = [FIXED, LCAM_A, LCAM_B, CONTROL_A]
PRESETS = ["c10-cdlr", "digits"]
INPUT_NAMES = ("config.json", "metrics.jsonl", "result.json")
RUN_DIR = re.compile(r"seed\d+")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
GARBAGE = [
    b"", b"[]", b"null", b'"x"', b"1", b"{", b"\n\n", b"NaN", b'{"epoch": Infinity}',
    b"\xff\xfe\x00garbage", b"[" * 3000 + b"]" * 3000, b"1" * 5000, b'{"a": 1}{"b": 2}',
    "{\"preset\": \"\u00e9\"}".encode("utf-16"),
]
KEYS = ["preset", "group", "seed", "epochs", "data", "model", "schedule", "epoch", "lr",
        "train_loss", "test_error", "fraction_above", "status", "final_test_error",
        "optimizer", "name", "momentum", "momentum_above", "momentum_below", "role",
        "matched_to", "zzz"]
FOREIGN_NAMES = ["notes.txt", "config.json", "metrics.jsonl", "result.json", "seed5",
                 "seedX", "report.md", "summary.json", "figures", ".hidden", "train.log",
                 "checkpoint.pt", "seed0 (copy)"]


@st.composite
def runs(draw: st.DrawFn) -> list[dict[str, Any]]:
    keys = draw(st.lists(
        st.tuples(st.sampled_from(PRESETS), st.integers(0, len(GROUPS) - 1), st.integers(0, 3)),
        min_size=1, max_size=6, unique=True))
    epochs = {preset: draw(st.integers(1, 4)) for preset in PRESETS}
    out = []
    for preset, group, seed in keys:
        finished = draw(st.booleans())
        size = epochs[preset] if finished else draw(st.integers(0, epochs[preset]))
        errors = draw(st.lists(st.floats(0.0, 100.0), min_size=size, max_size=size))
        fractions = None
        if GROUPS[group]["optimizer"] == "lcam":
            fractions = draw(st.lists(st.floats(0.0, 1.0), min_size=len(errors),
                                      max_size=len(errors)))
        out.append(dict(preset=preset, group=GROUPS[group], seed=seed, errors=errors,
                        fractions=fractions, finished=finished, epochs=epochs[preset]))
    return out


damage = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 99), st.sampled_from(INPUT_NAMES)),
    st.tuples(st.just("truncate"), st.integers(0, 99), st.sampled_from(INPUT_NAMES),
              st.floats(0.0, 1.0)),
    st.tuples(st.just("garbage"), st.integers(0, 99), st.sampled_from(INPUT_NAMES),
              st.sampled_from(GARBAGE) | st.binary(max_size=30)),
    st.tuples(st.just("set_key"), st.integers(0, 99), st.sampled_from(INPUT_NAMES),
              st.sampled_from(KEYS), json_values, st.integers(0, 9)),
    st.tuples(st.just("del_key"), st.integers(0, 99), st.sampled_from(INPUT_NAMES),
              st.sampled_from(KEYS), st.integers(0, 9)),
    st.tuples(st.just("lines"), st.integers(0, 99),
              st.sampled_from(["duplicate-all", "duplicate-one", "drop-one", "reverse",
                               "no-final-newline", "blank"]), st.integers(0, 9)),
    st.tuples(st.just("not-a-file"), st.integers(0, 99), st.sampled_from(INPUT_NAMES),
              st.sampled_from(["directory", "dangling-link"])),
    st.tuples(st.just("copy"), st.integers(0, 99),
              st.sampled_from(["seed9", "seed01", "seed0.bak", "seed0 (copy)", "old"]),
              st.sampled_from(["group", "root", "other-group", "inside"])),
    st.tuples(st.just("foreign"), st.integers(0, 99),
              st.sampled_from(["root", "preset", "group", "run"]),
              st.sampled_from(FOREIGN_NAMES),
              st.sampled_from(["file", "directory", "run-like"]),
              st.sampled_from(GARBAGE)),
)


def _write_tree(root: Path, specs: list[dict[str, Any]]) -> list[Path]:
    dirs = []
    for spec in specs:
        errors = spec["errors"]
        dirs.append(write_run(root, spec["group"], spec["seed"], errors,
                              preset=spec["preset"], finished=spec["finished"],
                              epochs=spec["epochs"],
                              fraction_above=spec["fractions"]))
    return dirs


def _replace(path: Path) -> None:
    """Make room for a new entry at ``path`` (whatever is there now)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _json_edit(path: Path, line: int, edit: Any) -> None:
    if not path.is_file() or path.is_symlink():
        return
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.name == "metrics.jsonl":
        lines = text.split("\n")
        candidates = [i for i, item in enumerate(lines) if item.strip()]
        if not candidates:
            return
        index = candidates[line % len(candidates)]
        try:
            value = json.loads(lines[index])
        except ValueError:
            return
        if isinstance(value, dict):
            edit(value)
            lines[index] = json.dumps(value)
        path.write_text("\n".join(lines), encoding="utf-8")
        return
    try:
        value = json.loads(text)
    except ValueError:
        return
    if isinstance(value, dict):
        edit(value)
        if "group" in value and isinstance(value["group"], dict) and line % 2:
            edit(value["group"])  # the group object's keys, too
        path.write_text(json.dumps(value), encoding="utf-8")


def _damage(root: Path, dirs: list[Path], op: tuple) -> None:
    kind, index = op[0], op[1]
    run = dirs[index % len(dirs)]
    if kind == "delete":
        if os.path.lexists(run / op[2]):
            _replace(run / op[2])
    elif kind == "truncate":
        path = run / op[2]
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            path.write_bytes(data[: int(len(data) * op[3])])
    elif kind == "garbage":
        _replace(run / op[2])
        (run / op[2]).write_bytes(op[3])
    elif kind == "set_key":
        _json_edit(run / op[2], op[5], lambda d: d.__setitem__(op[3], copy.deepcopy(op[4])))
    elif kind == "del_key":
        _json_edit(run / op[2], op[4], lambda d: d.pop(op[3], None))
    elif kind == "lines":
        path = run / "metrics.jsonl"
        if not path.is_file() or path.is_symlink():
            return
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        how, k = op[2], op[3] % max(len(lines), 1)
        if how == "duplicate-all":
            lines = lines + lines
        elif how == "duplicate-one" and lines:
            lines.insert(k, lines[k])
        elif how == "drop-one" and lines:
            del lines[k]
        elif how == "reverse":
            lines.reverse()
        elif how == "blank":
            lines.insert(k, "   ")
        text = "\n".join(lines) + ("" if how == "no-final-newline" else "\n")
        path.write_text(text, encoding="utf-8")
    elif kind == "not-a-file":
        path = run / op[2]
        _replace(path)
        if op[3] == "directory":
            path.mkdir()
            (path / "x").write_text("{}", encoding="utf-8")
        else:
            path.symlink_to(run / "does-not-exist")
    elif kind == "copy":
        name, where = op[2], op[3]
        parent = {"group": run.parent, "root": root, "inside": run,
                  "other-group": run.parent.parent / "other-group"}[where]
        target = parent / name
        if not os.path.lexists(target) and run.is_dir():
            shutil.copytree(run, target, symlinks=True)
    elif kind == "foreign":
        where, name, what, content = op[2], op[3], op[4], op[5]
        parent = {"root": root, "preset": run.parent.parent, "group": run.parent,
                  "run": run}[where]
        target = parent / name
        if where == "run" and name in INPUT_NAMES:
            return  # that is the "garbage" damage, not a foreign file
        if os.path.lexists(target):
            return
        if what == "file":
            target.write_bytes(content)
        elif what == "directory":
            target.mkdir()
        else:  # a directory holding what looks like a run's files
            target.mkdir()
            for input_name in INPUT_NAMES:
                (target / input_name).write_bytes(content)


def _input_files(root: Path) -> list[Path]:
    """What the report must read or name: config.json in a seed<K> directory, any
    metrics.jsonl or result.json (files, directories or links of those names)."""
    found = []
    for current, subdirs, files in os.walk(root):
        here = Path(current)
        for name in [*files, *subdirs]:
            if name in ("metrics.jsonl", "result.json") or (
                name == "config.json" and RUN_DIR.fullmatch(here.name)
            ):
                found.append(here / name)
    return sorted(found)


def _named(path: Path, text: str) -> bool:
    """Whether ``text`` names ``path`` or its directory (as a whole path)."""
    for candidate in (str(path), str(path.parent)):
        for match in re.finditer(re.escape(candidate), text):
            after = text[match.end(): match.end() + 1]
            if after in ("", "/", ":", " ", ")", ",", ";", "\n", "'"):
                return True
    return False


def _report(root: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["report", str(root), "--no-figures"])
    return status, out.getvalue(), err.getvalue()


# About 60 ms an example: five times the profile's count (about 20 s on 2 cores).
@settings(max_examples=5 * settings.default.max_examples)
@given(specs=runs(), damages=st.lists(damage, max_size=5))
def test_report_reads_or_names_every_file_of_a_damaged_tree(specs, damages):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        dirs = _write_tree(root, specs)
        for op in damages:
            note(f"damage: {op!r}"[:300])
            _damage(root, dirs, op)
        inputs = _input_files(root)
        status, out, err = _report(root)
        note(f"status {status}\nstdout: {out}\nstderr: {err}")
        assert "Traceback" not in err
        assert status in (0, 1, 4)
        if not damages:
            assert status == 0 and not err
        if status != 0:
            assert err.startswith("lcam report: error: ") and str(root) in err
            if "no run could be read" in err:  # then each file it found is named
                assert all(_named(path, err) for path in inputs)
            return
        summary = json.loads((root / "summary.json").read_text(encoding="utf-8"))
        reported = {(root / r["path"]).resolve() for r in summary["runs"]}
        for path in inputs:
            used = path.parent.resolve() in reported and path.is_file()
            assert used or _named(path, err), f"{path} neither reported nor named"


def test_a_clean_tree_reports_every_run():
    """Guard: the undamaged trees the property starts from are reported whole."""
    specs = [dict(preset=p, group=g, seed=s, errors=[5.0, 4.0], finished=True, epochs=2,
                  fractions=[0.5, 0.5] if g["optimizer"] == "lcam" else None)
             for p in PRESETS for g in GROUPS for s in range(2)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        _write_tree(root, specs)
        status, out, err = _report(root)
        assert (status, err) == (0, "")
        summary = json.loads((root / "summary.json").read_text(encoding="utf-8"))
        assert summary["counts"]["runs"] == len(specs)
        assert not math.isnan(summary["counts"]["finished"])
