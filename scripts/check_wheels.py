"""Install-from-wheel check: what a user gets from ``pip install`` works, away from the source.

``make wheels-check`` (part of ``make test``) runs it. In a temporary directory it

1. builds an sdist and a wheel of ``lcam`` and of ``lcam-jax`` (``python -m build``: the
   wheel is built from the unpacked sdist, so both must be complete) and runs
   ``twine check --strict`` on all four;
2. creates a fresh virtual environment (no system site packages), installs the CPU build
   of torch (``--torch``, default ``torch==2.13.0``) and then the lcam wheel with the
   ``harness``, ``report`` and ``lightning`` extras (not editable), and, from a
   directory outside the checkout with the source tree nowhere on ``sys.path``, runs
   ``lcam --version``, ``lcam presets``, a one-epoch ``digits`` run, ``lcam report`` on
   it and ``import lcam, lcam.integrations.lightning``;
3. creates a second fresh environment without torch, installs the lcam-jax wheel (jax and
   optax from the package index), checks that torch cannot be imported and runs the
   lcam-jax example (``lcam-jax/examples/train_mlp.py``, copied out of the checkout).

Any failing step exits non-zero and says which. ``--drop MEMBER`` (or the environment
variable ``LCAM_WHEELS_DROP``) deletes a file from the built lcam wheel before it is
installed, to show that the check catches a wheel that lacks a module, e.g.::

    .venv/bin/python scripts/check_wheels.py --drop lcam/harness/presets.py   # fails
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JAX_ROOT = ROOT / "lcam-jax"
JAX_EXAMPLE = JAX_ROOT / "examples" / "train_mlp.py"
LCAM_EXTRAS = "harness,report,lightning"


class CheckFailed(Exception):
    """A step of the check failed; the message says which and why."""


_local = threading.local()  # the prefix of this thread's lines (the two checks run at once)


def _environment(venv: Path | None) -> dict[str, str]:
    """The caller's environment without anything that would point Python at the source."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["MPLBACKEND"] = "Agg"
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(step: str, command: list[str], *, cwd: Path, venv: Path | None = None,
        expect: str | None = None) -> str:
    """Run one step; raise :class:`CheckFailed` with its output if it fails."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=_environment(venv), capture_output=True,
                            text=True)
    seconds = time.perf_counter() - start
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise CheckFailed(f"{step}: exit status {result.returncode} "
                          f"({' '.join(command)})\n{output[-4000:]}")
    if expect is not None and expect not in output:
        raise CheckFailed(f"{step}: expected {expect!r} in the output of "
                          f"{' '.join(command)}\n{output[-4000:]}")
    print(f"  ok {seconds:6.1f} s  {getattr(_local, 'prefix', '')}{step}", flush=True)
    return result.stdout


def build(dist: Path) -> tuple[Path, Path]:
    """sdists and wheels of both packages in ``dist``; twine-checked; the two wheels."""
    for project in (ROOT, JAX_ROOT):
        run(f"build {project.name if project != ROOT else 'lcam'} (sdist, wheel from it)",
            [sys.executable, "-m", "build", "--outdir", str(dist), str(project)], cwd=ROOT)
    artefacts = sorted(dist.iterdir())
    run("twine check --strict", [sys.executable, "-m", "twine", "check", "--strict",
                                 *map(str, artefacts)], cwd=ROOT)
    wheels = {p.name.split("-")[0]: p for p in artefacts if p.suffix == ".whl"}
    return wheels["lcam"], wheels["lcam_jax"]


def drop_member(wheel: Path, member: str) -> None:
    """Rewrite ``wheel`` without ``member`` (as if the packaging had left it out)."""
    with zipfile.ZipFile(wheel) as source:
        names = source.namelist()
        if member not in names:
            raise SystemExit(f"check_wheels: {member!r} is not in {wheel.name}")
        entries = [(info, source.read(info)) for info in source.infolist()
                   if info.filename != member]
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            target.writestr(info, data)
    print(f"  -- {member} deleted from {wheel.name} (--drop)", flush=True)


def make_venv(path: Path) -> Path:
    """A fresh virtual environment without system site packages (and without pip of its
    own: :func:`pip_install` drives it with this interpreter's pip); its python."""
    run(f"venv {path.name}", [sys.executable, "-m", "venv", "--without-pip", str(path)],
        cwd=path.parent)
    return path / "bin" / "python"


def pip_install(step: str, python: Path, venv: Path, work: Path, *requirements: str) -> None:
    """``pip install`` into the venv of ``python`` (not editable; no .pyc compiled ahead:
    that halves the time torch takes to install, and Python compiles on import)."""
    run(step, [sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
               "--no-compile", *requirements], cwd=work, venv=venv)


def check_source_not_used(python: Path, venv: Path, work: Path, package: str) -> None:
    """``package`` is imported from the venv's site-packages, and the checkout is not on
    ``sys.path``."""
    code = (f"import sys, sysconfig, pathlib, {package}\n"
            f"site = pathlib.Path(sysconfig.get_paths()['purelib']).resolve()\n"
            f"where = pathlib.Path({package}.__file__).resolve()\n"
            f"assert where.is_relative_to(site), (where, site)\n"
            f"assert where.is_relative_to(pathlib.Path({str(venv)!r}).resolve()), where\n"
            f"root = pathlib.Path({str(ROOT)!r}).resolve()\n"
            f"bad = [p for p in sys.path if p and pathlib.Path(p).resolve()"
            f".is_relative_to(root)]\n"
            f"assert not bad, bad\n"
            f"print(where)\n")
    run(f"{package} imported from the venv's site-packages, not the checkout",
        [str(python), "-c", code], cwd=work, venv=venv)


def check_lcam(wheel: Path, tmp: Path, torch_spec: str, version: str) -> None:
    """The lcam wheel with torch and its extras: the console script, a run, a report."""
    _local.prefix = "lcam: "
    venv = tmp / "venv-lcam"
    python = make_venv(venv)
    work = tmp / "work-lcam"
    work.mkdir()
    bin_ = venv / "bin"
    pip_install(f"pip install {torch_spec}", python, venv, work, torch_spec)
    pip_install(f"pip install {wheel.name}[{LCAM_EXTRAS}]", python, venv, work,
                f"{wheel}[{LCAM_EXTRAS}]")
    check_source_not_used(python, venv, work, "lcam")
    run("lcam --version", [str(bin_ / "lcam"), "--version"], cwd=work, venv=venv,
        expect=f"lcam {version}")
    run("lcam presets", [str(bin_ / "lcam"), "presets"], cwd=work, venv=venv, expect="digits")
    run("lcam train digits (1 epoch)",
        [str(bin_ / "lcam"), "train", "digits", "--group", "m0.95_0.9", "--seed", "0",
         "--epochs", "1", "--out", "runs", "--no-progress"], cwd=work, venv=venv)
    finished = work / "runs" / "digits" / "m0.95_0.9" / "seed0" / "result.json"
    if not finished.is_file():
        raise CheckFailed(f"lcam train wrote no {finished.relative_to(work)}")
    run("lcam report", [str(bin_ / "lcam"), "report", "runs"], cwd=work, venv=venv)
    if not (work / "runs" / "report.md").is_file():
        raise CheckFailed("lcam report wrote no runs/report.md")
    run("import lcam, lcam.integrations.lightning; py.typed shipped",
        [str(python), "-c",
         "import pathlib, lcam, lcam.integrations.lightning; "
         "assert (pathlib.Path(lcam.__file__).parent / 'py.typed').is_file()"],
        cwd=work, venv=venv)


def check_lcam_jax(wheel: Path, tmp: Path, version: str) -> None:
    """The lcam-jax wheel without torch: its example trains."""
    _local.prefix = "lcam-jax: "
    venv = tmp / "venv-jax"
    python = make_venv(venv)
    work = tmp / "work-jax"
    work.mkdir()
    pip_install(f"pip install {wheel.name}", python, venv, work, str(wheel))
    check_source_not_used(python, venv, work, "lcam_jax")
    run("torch is not installed",
        [str(python), "-c",
         "import importlib.util as u, lcam_jax; assert u.find_spec('torch') is None; "
         f"assert lcam_jax.__version__ == {version!r}, lcam_jax.__version__"],
        cwd=work, venv=venv)
    example = shutil.copy(JAX_EXAMPLE, work / JAX_EXAMPLE.name)
    run("lcam-jax example (examples/train_mlp.py)", [str(python), str(example)], cwd=work,
        venv=venv, expect="train accuracy")


def _defined_version(path: Path) -> str:
    namespace: dict[str, object] = {}
    exec(path.read_text(encoding="utf-8"), namespace)
    return str(namespace["__version__"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch", default=os.environ.get("TORCH_SPEC", "torch==2.13.0"),
                        help="what pip installs as torch first (default: %(default)s)")
    parser.add_argument("--drop", default=os.environ.get("LCAM_WHEELS_DROP") or None,
                        metavar="MEMBER",
                        help="delete this file from the built lcam wheel before installing "
                             "it, e.g. lcam/harness/presets.py (the check must then fail)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="lcam-wheels-"))
    print(f"check_wheels: in {tmp}", flush=True)
    try:
        dist = tmp / "dist"
        lcam_wheel, jax_wheel = build(dist)
        for wheel in (lcam_wheel, jax_wheel):
            print(f"  -- {wheel.name}: {wheel.stat().st_size} bytes", flush=True)
        if args.drop:
            drop_member(lcam_wheel, args.drop)
        # The two environments are independent: install and run them at the same time.
        with ThreadPoolExecutor(max_workers=2) as pool:
            checks = [
                pool.submit(check_lcam, lcam_wheel, tmp, args.torch,
                            _defined_version(ROOT / "src" / "lcam" / "_version.py")),
                pool.submit(check_lcam_jax, jax_wheel, tmp,
                            _defined_version(JAX_ROOT / "src" / "lcam_jax" / "_version.py"))]
            for check in checks:
                check.result()
    except CheckFailed as failure:
        print(f"check_wheels: FAILED after {time.perf_counter() - started:.0f} s: {failure}",
              file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"check_wheels: kept {tmp}")
        else:
            # Deleting the 1.3 GB of the two environments can take minutes on a disk
            # mounted with online discard: a detached process does it.
            subprocess.Popen(["rm", "-rf", str(tmp)], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"check_wheels: both wheels install clean and run "
          f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
