"""docs/FINDINGS.md is generated from docs/findings/summary.json and must agree with it;
the README's short verdict table must agree with it too; the earlier data sets in it
are the committed earlier summary re-evaluated from its per-seed differences."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lcam.report.claims import CLAIMS, NOT_MEASURED
from lcam.report.findings import previous
from lcam.report.findings_page import readme_table, render
from lcam.report.margins import ABSOLUTE_MARGIN
from lcam.report.reevaluate import reevaluate_preset

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = ROOT / "docs" / "findings" / "summary.json"
EARLIER = ROOT / "docs" / "findings" / "evidence1-summary.json"
FINDINGS = ROOT / "docs" / "FINDINGS.md"
README = ROOT / "README.md"
REFRESH = ".venv/bin/python scripts/refresh_findings.py runs/evidence2 (see its docstring)"
ARMS = ["mnist1d-large-wide", "mnist1d-100", "mnist1d-100-coarse",
        "mnist1d-large-wide-lrx0.5", "mnist1d-large-wide-lrx2"]
VERDICTS = {"supported", "contradicted", "inconclusive", "not specific to LCAM",
            NOT_MEASURED}


def _summary() -> dict:
    return json.loads(SUMMARY.read_text(encoding="utf-8"))


def test_findings_page_is_the_rendered_summary() -> None:
    expected = render(_summary())
    assert FINDINGS.read_text(encoding="utf-8") == expected, (
        f"docs/FINDINGS.md differs from its summary: run `{REFRESH}`")


def test_readme_shows_the_verdict_table_of_the_summary() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- findings-table:start -->\n(.*?)<!-- findings-table:end -->",
                      text, re.S)
    assert match, "README.md lacks the findings table markers"
    assert match.group(1) == readme_table(_summary()), (
        f"README's findings table differs from docs/findings/summary.json: run `{REFRESH}`")


def test_summary_holds_every_claim_at_both_margins() -> None:
    summary = _summary()
    new = summary["presets"]
    assert list(new) in ([], ARMS)
    presets = {**new, **summary["previous"]["presets"]}
    assert list(summary["previous"]["presets"]) == ["mnist1d", "mnist1d-large", "digits"]
    for name, preset in presets.items():
        assert preset["margin"] == pytest.approx(0.04 * preset["groups"]["m0.9"]["mean"]), name
        assert preset["margin_absolute"] == ABSOLUTE_MARGIN
        for key in ("claims", "claims_absolute"):
            assert set(preset[key]) == set(CLAIMS), name
            assert {c["verdict"] for c in preset[key].values()} <= VERDICTS, name
    if new:
        assert [x["fine"] for x in summary["crossover"]] == ["mnist1d-100", "mnist1d-100"]
        assert summary["machine"]["cpu"]
        assert all(s["seconds"] > 0 for s in summary["sweeps"].values())
    for figure in [*summary["figures"].values(), *summary["previous"]["figures"].values()]:
        assert (ROOT / "docs" / figure).is_file()


def test_earlier_data_sets_are_re_evaluated_from_their_stored_differences() -> None:
    earlier = json.loads(EARLIER.read_text(encoding="utf-8"))
    assert _summary()["previous"] == json.loads(json.dumps(
        previous(earlier, source="docs/findings/evidence1-summary.json"), allow_nan=False)), (
        f"the earlier data sets' re-evaluation is out of date: run `{REFRESH}`")
    # At the old margin the rebuilt families are the stored ones, number for number.
    keys = ("mean_difference", "std_difference", "p_t", "p_wilcoxon", "p_holm",
            "p_equivalence", "minimum_detectable_effect", "alpha_mde", "probability_lower")
    for name, stored in earlier["presets"].items():
        rebuilt = reevaluate_preset(name, stored, margin=ABSOLUTE_MARGIN)
        for family in ("final_error", "rise"):
            for old, new in zip(stored[family], getattr(rebuilt, family), strict=True):
                assert (old["a"], old["against"], old["verdict"]) == (new.a, new.against,
                                                                      new.verdict)
                for key in keys:
                    value = getattr(new, key)
                    assert value == pytest.approx(old[key], rel=1e-9, abs=1e-12), (name, key)
                for key in ("ci_t", "ci_bootstrap", "probability_lower_ci"):
                    assert getattr(new, key) == pytest.approx(old[key], rel=1e-9, abs=1e-12)
