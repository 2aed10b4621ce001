"""Release metadata: one version per package, reported everywhere; the licence; the changelog."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import lcam
from lcam._version import __version__ as defined_version

ROOT = Path(__file__).resolve().parent.parent
JAX_ROOT = ROOT / "lcam-jax"


def _defined(path: Path) -> str:
    match = re.search(r'^__version__ = "([^"]+)"$', path.read_text(encoding="utf-8"), re.M)
    assert match, path
    return match.group(1)


@pytest.mark.parametrize("project, package", [(ROOT, "lcam"), (JAX_ROOT, "lcam_jax")])
def test_each_package_defines_its_version_in_one_place(project: Path, package: str) -> None:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"]
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": f"{package}._version.__version__"}
    sources = [p for p in (project / "src" / package).rglob("*.py")
               if re.search(r"^__version__ = ", p.read_text(encoding="utf-8"), re.M)]
    assert sources == [project / "src" / package / "_version.py"]


def test_lcam_reports_its_version() -> None:
    assert lcam.__version__ == defined_version == _defined(ROOT / "src/lcam/_version.py")
    out = subprocess.run([sys.executable, "-m", "lcam", "--version"], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == f"lcam {defined_version}"


def test_lcam_jax_reports_its_version() -> None:
    lcam_jax = pytest.importorskip("lcam_jax", reason="pip install ./lcam-jax")
    assert lcam_jax.__version__ == _defined(JAX_ROOT / "src/lcam_jax/_version.py")


@pytest.mark.parametrize("project", [ROOT, JAX_ROOT])
def test_both_packages_carry_the_mit_licence(project: Path) -> None:
    text = (project / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the lcam authors\n")
    assert text == (ROOT / "LICENSE").read_text(encoding="utf-8")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["license"] == "MIT"
    assert pyproject["project"]["license-files"] == ["LICENSE"]


def test_changelog_has_an_entry_for_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in text
    for version in (defined_version, _defined(JAX_ROOT / "src/lcam_jax/_version.py")):
        assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d\d-\d\d$", text, re.M)
