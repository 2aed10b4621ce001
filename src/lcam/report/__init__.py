"""``lcam report``: tables, Welch tests, figures and ``summary.json`` from run directories.

Reads the run directories the harness writes (``<preset>/<group>/seed<K>/`` with
``config.json``, ``metrics.jsonl``, ``result.json``; see ``docs/ARCHITECTURE.md``) and
writes ``report.md``, ``summary.json`` and ``figures/``. Everything is computed from
those files; nothing is edited by hand.

Modules, one idea each:

- `lcam.report.runs`: find and read run directories, `ReportError` for bad input;
- `lcam.report.stats`: mean ± sample std, Welch's t-test with CI, epochs to a target;
- `lcam.report.paper`: the paper's Table 1 as data and the preset/group mapping;
- `lcam.report.analysis`: every number of the report, per preset and group;
- `lcam.report.wording`: how numbers and verdicts are written;
- `lcam.report.markdown`: ``report.md``;
- `lcam.report.figures`: PNG and SVG figures (matplotlib, Agg);
- `lcam.report.build`: `build_report`, tying it together;
- `lcam.report.command`: the ``lcam report`` command line.

Needs the ``report`` extra (numpy, scipy, matplotlib): ``pip install 'lcam[report]'``.
"""

from lcam.report.build import ReportResult, build_report
from lcam.report.command import add_arguments, main, run
from lcam.report.runs import ReportError

__all__ = ["ReportError", "ReportResult", "add_arguments", "build_report", "main", "run"]
