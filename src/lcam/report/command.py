"""The ``lcam report`` command line: ``lcam report DIR [DIR ...] [--out OUT]``.

`lcam.cli` adds the subcommand with `add_arguments` and dispatches to `run`; `main`
runs it on its own (``python -m lcam.report DIR``). Exit status: 0 on success (runs
that cannot be read are left out, each named in a warning), 1 when the runs cannot be
reported (`ReportError`; the message names the file and line), 4 when the report
cannot be written (the message names the file and the cause).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lcam.harness.exitstatus import WRITE_FAILED
from lcam.harness.writes import describe_os_error
from lcam.report.build import build_report
from lcam.report.comparisons import EQUIVALENCE_MARGIN
from lcam.report.runs import EXPECTED_LAYOUT, ReportError

__all__ = ["add_arguments", "main", "run"]

DESCRIPTION = (
    "Write report.md (paired verdicts, tables like the paper's Table 1), summary.json and "
    "figures from run directories written by `lcam train` / `lcam sweep`."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` arguments to ``parser`` (a subparser of ``lcam``)."""
    parser.add_argument(
        "dirs",
        metavar="DIR",
        nargs="+",
        type=Path,
        help=f"output directory of a sweep or run(s), searched for {EXPECTED_LAYOUT}; "
        "several are merged",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write report.md, summary.json and figures/ (default: the first DIR)",
    )
    parser.add_argument(
        "--equivalence-margin",
        type=float,
        default=EQUIVALENCE_MARGIN,
        metavar="POINTS",
        help="a paired difference shown to lie within ±POINTS of test error is called "
        f"equivalent (default {EQUIVALENCE_MARGIN}: the smallest gain Table 1 reports)",
    )
    parser.add_argument(
        "--no-figures",
        dest="figures",
        action="store_false",
        help="write only report.md and summary.json (figures are the slow part)",
    )


def run(args: argparse.Namespace) -> int:
    """Build the report for parsed arguments; print what was written."""
    if not args.equivalence_margin > 0:
        print(f"lcam report: error: invalid --equivalence-margin {args.equivalence_margin} "
              "(must be > 0 points of test error)", file=sys.stderr)
        return 2
    try:
        result = build_report(args.dirs, args.out, figures=args.figures,
                              margin=args.equivalence_margin)
    except ReportError as exc:
        print(f"lcam report: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # writing report.md, summary.json or a figure
        path = exc.filename2 if exc.filename2 is not None else exc.filename
        print(f"lcam report: error: cannot write {path}: {describe_os_error(exc)}",
              file=sys.stderr)
        return WRITE_FAILED
    for warning in result.warnings:
        print(f"lcam report: warning: {warning}", file=sys.stderr)
    figures = len(result.figure_paths)
    where = f" and {figures} figure files in {result.out_dir / 'figures'}" if figures else ""
    print(
        f"wrote {result.report_path}, {result.summary_path}{where} "
        f"({result.finished_runs} finished runs, {result.partial_runs} partial)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``lcam report`` as a standalone program."""
    parser = argparse.ArgumentParser(
        prog="lcam report", allow_abbrev=False, description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
