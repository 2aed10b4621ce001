"""docs/FINDINGS.md is generated from docs/findings/summary.json and must agree with it;
the README's short verdict table must agree with it too."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lcam.report.claims import CLAIMS
from lcam.report.findings import readme_table, render

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = ROOT / "docs" / "findings" / "summary.json"
FINDINGS = ROOT / "docs" / "FINDINGS.md"
README = ROOT / "README.md"
REFRESH = ".venv/bin/python scripts/refresh_findings.py runs/evidence"


def _summary() -> dict:
    return json.loads(SUMMARY.read_text(encoding="utf-8"))


def test_findings_page_is_the_rendered_summary() -> None:
    expected = render(_summary())
    assert FINDINGS.read_text(encoding="utf-8") == expected, (
        f"docs/FINDINGS.md differs from its summary: run `{REFRESH}`")


def test_summary_holds_every_claim_on_three_data_sets_with_enough_seeds() -> None:
    summary = _summary()
    assert list(summary["presets"]) == ["mnist1d", "mnist1d-large", "digits"]
    for name, preset in summary["presets"].items():
        assert set(preset["claims"]) == set(CLAIMS)
        verdicts = {c["verdict"] for c in preset["claims"].values()}
        assert verdicts <= {"supported", "contradicted", "inconclusive"}
        seeds = {g["n"] for g in preset["groups"].values()}
        assert seeds == {8 if name == "mnist1d-large" else 20}, name
    assert summary["sweep"]["seconds"] > 0 and summary["machine"]["cpu"]
    for figure in summary["figures"].values():
        assert (ROOT / "docs" / figure).is_file()


def test_readme_shows_the_verdict_table_of_the_summary() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- findings-table:start -->\n(.*?)<!-- findings-table:end -->",
                      text, re.S)
    assert match, "README.md lacks the findings table markers"
    assert match.group(1) == readme_table(_summary()), (
        f"README's findings table differs from docs/findings/summary.json: run `{REFRESH}`")
