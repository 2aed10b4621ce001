"""docs/PAPER.md shows Table 1 exactly as ``lcam.report.paper`` holds it (the report's data)."""

from __future__ import annotations

import re
from pathlib import Path

from lcam.report.paper import COLUMNS, REFERENCE_RESULTS, TABLE1

PAPER = Path(__file__).resolve().parent.parent / "docs" / "PAPER.md"
DATA = {"speechcommands": "Speech Commands", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
MODELS = {"m11": "M11", "wrn-28-10": "WRN-28-10", "vit-b16": "ViT-B/16"}
SCHEDULERS = {"cdlr": "SGD+Cdlr", "constant": "SGD"}


def _table(name: str) -> list[list[str]]:
    text = PAPER.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.DOTALL)
    assert found, f"docs/PAPER.md has no {name} block"
    lines = found.group(1).strip().splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_table1_in_paper_md_equals_the_report_data() -> None:
    rows = _table("table1")
    assert rows[0] == ["data", "network", "scheduler", *(c.name for c in COLUMNS)]
    expected = []
    for row in TABLE1:
        cells = []
        for column in COLUMNS:
            value = row.value(column.name)
            assert value is not None
            text = value.text()
            cells.append(f"**{text}**" if column.name == row.best else text)
        expected.append([DATA[row.data], MODELS[row.model], SCHEDULERS[row.schedule], *cells])
    assert rows[2:] == expected


def test_table1_reference_rows_in_paper_md_equal_the_report_data() -> None:
    rows = _table("table1-references")
    assert rows[0] == ["data", "network", "method", "source", "test error"]
    shown = [(r[0], r[1], r[2], r[4]) for r in rows[2:]]
    assert shown == [(DATA[r.data], MODELS[r.model], r.method,
                      r.value.text()) for r in REFERENCE_RESULTS]
