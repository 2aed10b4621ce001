"""The tested support matrix: lcam's optimizer tests in fresh environments.

For each cell (a Python version and a torch version) this script

1. creates a fresh virtual environment under ``.compat/venvs/`` with that Python,
2. downloads torch (and pytest, hypothesis, numpy) into ``.compat/wheels/`` with the cell's own
   pip -- files already there are reused, so the multi-GB CUDA builds are fetched once --
   and records "no wheel" when pip answers that no distribution matches,
3. installs, without an index, torch, the test requirements and the lcam wheel built from
   this checkout (not editable: ``import lcam`` resolves to site-packages, never src/),
4. runs the optimizer's own tests (``tests/test_optimizer_*.py``: parity, state and
   checkpoints, decisions, the loss hand-off, the fused-kernel fallback, DDP on gloo and
   torch.compile; no framework, no harness),
5. records python, torch, passed/failed/skipped, wall times and the date in
   ``docs/compat/matrix.json`` (merged: a cell measured again replaces its old row) and
   re-renders the table in ``docs/COMPAT.md`` between its markers.

``make compat`` runs the default cells (Python 3.10, 3.11, 3.13 x the declared torch floor
and the newest torch this machine's index offers). ``--find-floor PY`` finds the oldest
torch minor release that passes on one Python (2.4.0, 2.5.0, ... upwards to the first
pass; every probe is recorded as a row with ``"role": "floor search"``). Cells run one
after another; each venv is deleted after its cell unless ``--keep-venvs``.

Usage::

    python scripts/compat_matrix.py                       # the default cells
    python scripts/compat_matrix.py --cells 3.11:2.4.0 3.13:2.14.1
    python scripts/compat_matrix.py --find-floor 3.11 --versions 2.5.0 2.6.0 2.7.0
    python scripts/compat_matrix.py --render              # only re-render docs/COMPAT.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".compat"
WHEELS = CACHE / "wheels"
DIST = CACHE / "dist"
VENVS = CACHE / "venvs"
LOGS = CACHE / "logs"
MATRIX_JSON = ROOT / "docs" / "compat" / "matrix.json"
COMPAT_MD = ROOT / "docs" / "COMPAT.md"
TABLE_START = "<!-- compat-table:start (scripts/compat_matrix.py writes this table) -->"
TABLE_END = "<!-- compat-table:end -->"

# The optimizer's own tests: no framework, no harness extra, only torch + pytest.
TEST_GLOBS = ("tests/test_optimizer_*.py",)
# What those tests need besides torch and lcam: pytest; hypothesis (tests/conftest.py
# loads its profiles); numpy, without which torch warns at import ("Failed to initialize
# NumPy") and which any user's environment has.
# pytest-timeout: a test that hangs (torch 2.4's gloo teardown can deadlock) fails after
# TEST_TIMEOUT_S instead of stalling the cell.
TEST_REQUIREMENTS = ("pytest", "pytest-timeout", "hypothesis", "numpy")
TEST_TIMEOUT_S = 300

PYTHONS = ("3.10", "3.11", "3.13")
DEFAULT_TORCHES = ("floor", "2.14.1")  # "floor": the version in pyproject's torch>=X
TORCH_MINORS = tuple(f"2.{m}.0" for m in range(4, 15))
CELL_TIMEOUT_S = 2400


def log(msg: str) -> None:
    print(f"[compat {dt.datetime.now(dt.timezone.utc):%H:%M:%S}] {msg}", flush=True)


_TORCH_REQ = re.compile(
    r'"(torch>=([0-9][0-9.]*)(?:\s*;\s*python_version\s*(<|>=)\s*[\'"]([0-9.]+)[\'"])?)"')


def declared_torch() -> str:
    """The torch requirement(s) in pyproject.toml, e.g. "torch>=2.4"."""
    found = _TORCH_REQ.findall((ROOT / "pyproject.toml").read_text())
    if not found:
        raise SystemExit("pyproject.toml declares no torch>=X dependency")
    return ", ".join(f[0] for f in found)


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def declared_floor(python: str) -> str:
    """The oldest torch release the requirement admits on ``python``: "2.4" -> "2.4.0".

    Understands one ``python_version < / >=`` marker per requirement line.
    """
    for _, floor, op, bound in _TORCH_REQ.findall((ROOT / "pyproject.toml").read_text()):
        if op == "<" and not _version_tuple(python) < _version_tuple(bound):
            continue
        if op == ">=" and not _version_tuple(python) >= _version_tuple(bound):
            continue
        return floor if floor.count(".") >= 2 else floor + ".0"
    raise SystemExit(f"pyproject.toml declares no torch>=X dependency for Python {python}")


def find_python(version: str) -> str | None:
    """An interpreter for ``version`` ("3.10"): pyenv's versions dir, then PATH."""
    candidates: list[str] = []
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    try:
        roots.insert(0, subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                                       check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    for root in filter(None, roots):
        candidates += sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"),
                             reverse=True)
    for name in (f"python{version}",):
        found = shutil.which(name)
        if found:
            candidates.append(found)
    for exe in candidates:
        try:
            out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return exe
    return None


def run(cmd: list[str], logfile: Path, *, timeout: float | None = None,
        **kw) -> subprocess.CompletedProcess:
    """Run ``cmd`` with its output streamed into ``logfile`` (and returned).

    It runs in its own session; whatever it leaves behind (a hung DDP rank whose test
    timed out, say) is killed with it.
    """
    start = logfile.stat().st_size if logfile.exists() else 0
    with logfile.open("a") as fh:
        fh.write(f"\n$ {' '.join(map(str, cmd))}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, **kw)
        try:
            proc.wait(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    with logfile.open() as fh:
        fh.seek(start)
        output = fh.read()
    return subprocess.CompletedProcess(cmd, proc.returncode, output)


def build_lcam_wheel() -> Path:
    """One wheel of this checkout for every cell (the build backend comes from the index)."""
    if DIST.exists():
        shutil.rmtree(DIST)
    DIST.mkdir(parents=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    proc = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(DIST),
                str(ROOT)], LOGS / "build.log")
    wheels = sorted(DIST.glob("lcam-*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        raise SystemExit(f"building the lcam wheel failed; see {LOGS / 'build.log'}")
    return wheels[0]


def _no_wheel_line(output: str) -> str | None:
    for line in output.splitlines():
        if "No matching distribution found for torch" in line or (
            "Could not find a version that satisfies the requirement torch" in line
        ):
            return line.strip()
    return None


def _junit_counts(path: Path) -> dict[str, int]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {k: sum(int(s.get(k, 0)) for s in suites)
             for k in ("tests", "failures", "errors", "skipped")}
    total["passed"] = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return total


def _junit_problems(path: Path, limit: int = 20) -> tuple[list[str], list[str]]:
    failed, skipped = [], []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        for child in case:
            if child.tag in ("failure", "error") and len(failed) < limit:
                msg = (child.get("message") or "").splitlines()[:1]
                failed.append(f"{name}: {msg[0][:200] if msg else child.tag}")
            elif child.tag == "skipped" and len(skipped) < limit:
                skipped.append(f"{name}: {(child.get('message') or '')[:200]}")
    return failed, skipped


def wait_quiet() -> None:
    """Block while this machine is reserved for a timed run (a local convention)."""
    if os.path.exists("/tmp/lcam_wait_quiet"):
        subprocess.run(["/tmp/lcam_wait_quiet"], check=False)


def run_cell(python: str, torch_version: str, lcam_wheel: Path, *, keep: bool,
             role: str) -> dict:
    wait_quiet()
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    row: dict = {"python": python, "torch": torch_version, "role": role, "date": date,
                 "platform": f"{platform.system()} {platform.machine()}"}
    name = f"py{python}-torch{torch_version}"
    LOGS.mkdir(parents=True, exist_ok=True)
    logfile = LOGS / f"{name}.log"
    logfile.write_text("")
    row["log"] = str(logfile.relative_to(ROOT))
    exe = find_python(python)
    if exe is None:
        row.update(status="no python", note=f"no Python {python} interpreter found")
        return row
    venv = VENVS / name
    if venv.exists():
        shutil.rmtree(venv)
    t0 = time.perf_counter()
    try:
        proc = run([exe, "-m", "venv", str(venv)], logfile)
        if proc.returncode != 0:
            row.update(status="setup error", note="python -m venv failed")
            return row
        vpy = str(venv / "bin" / "python")
        WHEELS.mkdir(parents=True, exist_ok=True)
        # The cell's own pip decides which wheel fits (its tags); what is already in
        # WHEELS is reused ("File was already downloaded").
        proc = run([vpy, "-m", "pip", "download", "--only-binary=:all:", "-d", str(WHEELS),
                    f"torch=={torch_version}", *TEST_REQUIREMENTS], logfile)
        if proc.returncode != 0:
            line = _no_wheel_line(proc.stdout)
            if not line:
                # With a constraints file pip may answer "ResolutionImpossible" instead:
                # ask it which torch versions it offers this interpreter.
                index = run([vpy, "-m", "pip", "index", "versions", "--only-binary=:all:",
                             "torch"], logfile)
                m = re.search(r"Available versions: (.*)", index.stdout)
                offered = [v.strip() for v in m.group(1).split(",")] if m else []
                if offered and torch_version not in offered:
                    line = (f"`pip index versions torch` offers Python {python} "
                            f"{offered[-1]} ... {offered[0]}, not {torch_version}")
            if line:
                row.update(status="no wheel", note=f"pip: {line}")
            else:
                row.update(status="setup error", note="pip download failed (see log)")
            return row
        proc = run([vpy, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(WHEELS),
                    f"torch=={torch_version}", *TEST_REQUIREMENTS, str(lcam_wheel)], logfile)
        if proc.returncode != 0:
            row.update(status="setup error", note="pip install failed (see log)")
            return row
        probe = run([vpy, "-c", "import sys, torch, lcam; print(sys.version.split()[0]); "
                     "print(torch.__version__); print(lcam.__file__)"], logfile, cwd=ROOT)
        if probe.returncode != 0:
            row.update(status="import error", note="import torch, lcam failed (see log)")
            return row
        py_full, torch_full, lcam_file = probe.stdout.strip().splitlines()[-3:]
        if str(ROOT / "src") in lcam_file:
            raise SystemExit(f"{name}: lcam was imported from the checkout ({lcam_file})")
        row.update(python_full=py_full, torch_full=torch_full)
        t_setup = time.perf_counter() - t0
        tests = sorted(p for g in TEST_GLOBS for p in glob.glob(str(ROOT / g)))
        junit = venv / "junit.xml"
        t1 = time.perf_counter()
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPATH", None)
        proc = run([vpy, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                    f"--timeout={TEST_TIMEOUT_S}",
                    *[os.path.relpath(t, ROOT) for t in tests]], logfile, cwd=ROOT, env=env,
                   timeout=CELL_TIMEOUT_S)
        t_tests = time.perf_counter() - t1
        row.update(setup_s=round(t_setup, 1), tests_s=round(t_tests, 1),
                   test_files=[os.path.relpath(t, ROOT) for t in tests])
        if not junit.exists():
            row.update(status="test error",
                       note=f"pytest exited {proc.returncode} without a report")
            return row
        counts = _junit_counts(junit)
        failed, skipped = _junit_problems(junit)
        row.update(passed=counts["passed"], failed=counts["failures"] + counts["errors"],
                   skipped=counts["skipped"], status="pass" if proc.returncode == 0 else "fail")
        if failed:
            row["failures"] = failed
        if skipped:
            row["skips"] = skipped
        return row
    except subprocess.TimeoutExpired:
        row.update(status="timeout", note=f"tests ran past {CELL_TIMEOUT_S} s")
        return row
    finally:
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        if not keep and venv.exists():
            shutil.rmtree(venv, ignore_errors=True)


def load_matrix() -> dict:
    if MATRIX_JSON.exists():
        return json.loads(MATRIX_JSON.read_text())
    return {"cells": []}


def save_row(row: dict) -> None:
    data = load_matrix()
    cells = [c for c in data["cells"]
             if (c["python"], c["torch"], c.get("role")) != (row["python"], row["torch"],
                                                            row.get("role"))]
    cells.append(row)
    cells.sort(key=lambda c: (c.get("role") != "matrix", tuple(map(int, c["python"].split("."))),
                              tuple(int(x) for x in re.findall(r"\d+", c["torch"])[:3])))
    data.update(
        description="lcam's optimizer tests (tests/test_optimizer_*.py) in fresh virtual "
                    "environments, one per (python, torch) cell; written by "
                    "scripts/compat_matrix.py (make compat)",
        declared=declared_torch(),
        cells=cells,
    )
    MATRIX_JSON.parent.mkdir(parents=True, exist_ok=True)
    MATRIX_JSON.write_text(json.dumps(data, indent=1) + "\n")


def _fmt_result(c: dict) -> str:
    if "passed" in c:
        return f"{c['passed']} / {c['failed']} / {c['skipped']}"
    return "—"


def _fmt_time(c: dict) -> str:
    if "tests_s" not in c:
        return "—"
    return f"{c['tests_s']:.0f} s (setup {c['setup_s']:.0f} s)"


def render_table(data: dict) -> str:
    status_text = {"pass": "**pass**", "fail": "**FAIL**", "no wheel": "no wheel"}
    lines = ["| Python | torch | result | passed / failed / skipped | tests (setup) | date |",
             "|---|---|---|---|---|---|"]
    search = []
    for c in data["cells"]:
        target = lines if c.get("role") == "matrix" else search
        py = c.get("python_full", c["python"])
        torch_v = c.get("torch_full", c["torch"])
        target.append(f"| {py} | {torch_v} | {status_text.get(c['status'], c['status'])} | "
                      f"{_fmt_result(c)} | {_fmt_time(c)} | {c['date']} |")
    out = lines
    if search:
        out += ["", "Floor search (one Python, torch minor releases upwards):", "",
                "| Python | torch | result | passed / failed / skipped | tests (setup) | date |",
                "|---|---|---|---|---|---|", *search]
    notes = [f"- Python {c['python']}, torch {c['torch']}: {c['note']}"
             for c in data["cells"] if c.get("note")]
    fails = []
    for c in data["cells"]:
        by_message: dict[str, list[str]] = {}
        for f in c.get("failures", []):
            test, _, message = f.partition(": ")
            by_message.setdefault(message, []).append(test.rsplit("::", 1)[-1])
        for message, tests in by_message.items():
            fails.append(f"- Python {c['python']}, torch {c['torch']}: {len(tests)} x "
                         f"`{message}` (e.g. `{tests[0]}`)")
    if notes:
        out += ["", *notes]
    if fails:
        out += ["", "Failures, by message (the first 20 failures of a cell are kept):", "",
                *fails]
    return "\n".join(out)


def render_markdown() -> None:
    data = load_matrix()
    table = render_table(data)
    if not COMPAT_MD.exists():
        raise SystemExit(f"{COMPAT_MD} is missing (it holds the prose around the table)")
    text = COMPAT_MD.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise SystemExit(f"{COMPAT_MD} lacks the table markers")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    COMPAT_MD.write_text(f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}")


def find_floor(python: str, versions: list[str], wheel: Path, keep: bool) -> str | None:
    """The oldest of ``versions`` (ascending) that passes on ``python``.

    Goes up from the oldest and stops at the first pass: the answer is expected near the
    declared floor and each probe costs minutes (a multi-GB install and the tests), so
    this takes fewer probes than a binary search would unless the answer is far up.
    """
    for v in versions:
        log(f"floor search: Python {python}, torch {v}")
        row = run_cell(python, v, wheel, keep=keep, role="floor search")
        save_row(row)
        render_markdown()
        log(f"  -> {row['status']} {_fmt_result(row)} in {row.get('wall_s')} s")
        if row["status"] == "pass":
            log(f"floor search: oldest passing torch on Python {python}: {v}")
            return v
    log(f"floor search: no version of {versions} passes on Python {python}")
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", nargs="*", metavar="PY:TORCH",
                    help="cells to run (default: 3.10, 3.11, 3.13 x floor, 2.14.1)")
    ap.add_argument("--find-floor", metavar="PY",
                    help="find the oldest passing torch minor release on Python PY")
    ap.add_argument("--versions", nargs="*", default=list(TORCH_MINORS),
                    help="torch versions the floor search tries (ascending)")
    ap.add_argument("--keep-venvs", action="store_true")
    ap.add_argument("--render", action="store_true", help="only re-render docs/COMPAT.md")
    args = ap.parse_args(argv)
    if args.render:
        render_markdown()
        return 0
    wheel = build_lcam_wheel()
    log(f"built {wheel.name}")
    if args.find_floor:
        return 0 if find_floor(args.find_floor, args.versions, wheel, args.keep_venvs) else 1
    if args.cells:
        cells = [tuple(c.split(":", 1)) for c in args.cells]
    else:
        cells = [(py, declared_floor(py) if t == "floor" else t)
                 for py in PYTHONS for t in DEFAULT_TORCHES]
    worst = 0
    for py, tv in cells:
        log(f"cell: Python {py}, torch {tv}")
        row = run_cell(py, tv, wheel, keep=args.keep_venvs, role="matrix")
        save_row(row)
        render_markdown()
        log(f"  -> {row['status']} {_fmt_result(row)} in {row.get('wall_s')} s")
        if row["status"] not in ("pass", "no wheel"):
            worst = 1
    return worst


if __name__ == "__main__":
    sys.exit(main())
