"""`lcam report` on damaged run trees: each fault tests/test_fuzz_report.py found, as a
plain test with the exact message the user sees (through the command line's ``main``).

A run whose files cannot be read is left out with a warning naming the file; the report
is written from the others; exit status 1 only when no run is left, with every file
named; 4 when the report itself cannot be written. Never a traceback.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_report import FIXED, LCAM_A, PRESET, write_run

from lcam.cli import main


def _report(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(["report", str(root), "--no-figures"])
    captured = capsys.readouterr()
    if status == 0:
        assert captured.out.startswith(f"wrote {root / 'report.md'}")
    return status, captured.err


def _two_runs(tmp_path: Path) -> tuple[Path, Path]:
    return (write_run(tmp_path, FIXED, 0, [5.0, 4.0]),
            write_run(tmp_path, LCAM_A, 0, [5.0, 3.5]))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfe\x00garbage", "not UTF-8 text (invalid start byte at byte 0)"),
        (b"[" * 3000 + b"]" * 3000, "not valid JSON (RecursionError: maximum recursion depth "
                                    "exceeded"),
        (b"1" * 5000, "not valid JSON (ValueError: Exceeds the limit (4300 digits)"),
    ],
    ids=["not-utf8", "nested-too-deep", "huge-integer"],
)
def test_unparsable_file_leaves_its_run_out_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, reason: str
) -> None:
    bad, good = _two_runs(tmp_path)
    (bad / "config.json").write_bytes(content)
    status, err = _report(tmp_path, capsys)
    assert status == 0
    assert err.startswith(f"lcam report: warning: {bad / 'config.json'}: {reason}")
    assert err.rstrip().endswith("(run left out)")
    assert "Traceback" not in err
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"{bad / 'config.json'}: {reason}" in report  # ## Warnings


def test_bad_metrics_line_leaves_the_run_out_and_the_others_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad, good = _two_runs(tmp_path)
    with open(bad / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"epoch": 2, "lr"\n')
    status, err = _report(tmp_path, capsys)
    assert status == 0
    assert err.startswith(f"lcam report: warning: {bad / 'metrics.jsonl'} line 3: not valid "
                          "JSON (")
    summary = (tmp_path / "summary.json").read_text(encoding="utf-8")
    assert f"{PRESET}/{good.parent.name}/seed0" in summary
    assert f"{PRESET}/{bad.parent.name}/seed0\"" not in summary


def test_every_unreadable_run_is_named_when_none_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixed, lcam = _two_runs(tmp_path)
    (fixed / "config.json").write_text("{", encoding="utf-8")
    (lcam / "result.json").write_text("[]", encoding="utf-8")
    status, err = _report(tmp_path, capsys)
    assert status == 1
    assert err.splitlines() == [  # in path order: m0.857_0.93 before m0.9
        "lcam report: error: no run could be read:",
        f"  {lcam / 'result.json'}: expected a JSON object, got list",
        f"  {fixed / 'config.json'}: not valid JSON (Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1))",
    ]


@pytest.mark.parametrize("name", ["metrics.jsonl", "result.json"])
def test_dangling_link_is_named_not_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Before: a dangling ``result.json`` made a finished run partial, a dangling
    ``metrics.jsonl`` a run without epochs, both silently."""
    bad, good = _two_runs(tmp_path)
    (bad / name).unlink()
    (bad / name).symlink_to(bad / "gone")
    status, err = _report(tmp_path, capsys)
    assert status == 0
    assert err == (f"lcam report: warning: {bad / name}: cannot read (No such file or "
                   "directory) (run left out)\n")


def test_run_files_outside_a_run_directory_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run copied under another name, or into a run directory, was silently ignored."""
    run, _ = _two_runs(tmp_path)
    shutil.copytree(run, run.parent / "seed0.bak")
    shutil.copytree(run, run / "seed9")
    status, err = _report(tmp_path, capsys)
    assert status == 0
    assert err.splitlines() == [
        f"lcam report: warning: {path}: holds run files but is not a run directory "
        "(<preset>/<group>/seed<K>/config.json, not inside another run), not reported"
        for path in (run.parent / "seed0.bak", run / "seed9")  # sorted: "." < "/"
    ]


def test_output_that_cannot_be_written_is_one_line_and_status_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a traceback (IsADirectoryError) when report.md was a directory."""
    _two_runs(tmp_path)
    (tmp_path / "report.md").mkdir()
    status, err = _report(tmp_path, capsys)
    assert status == 4
    assert err == (f"lcam report: error: cannot write {tmp_path / 'report.md'}: Is a "
                   "directory (EISDIR)\n")
    assert (tmp_path / "report.md").is_dir() and not any((tmp_path / "report.md").iterdir())
    assert os.path.exists(tmp_path / PRESET)
