"""The built wheels and sdists hold every file the packages need.

Both packages are built as ``python -m build`` does (an sdist, then the wheel from the
unpacked sdist, so a file the sdist misses is missing from the wheel too). Each wheel must
hold every module of its source package, ``py.typed``, the licence and the metadata the
console script and the extras need; each sdist the licence and the test suite. The first
test shows that the comparison catches a wheel that lacks a module.
``scripts/check_wheels.py`` (``make wheels-check``) then installs the wheels and runs them.
"""

from __future__ import annotations

import email
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = {"lcam": ROOT, "lcam_jax": ROOT / "lcam-jax"}


def package_files(project: Path, package: str) -> set[str]:
    """The files of ``src/<package>`` that an install needs, as wheel member names."""
    source = project / "src"
    return {path.relative_to(source).as_posix()
            for path in (source / package).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
            and path.suffix not in (".pyc", ".pyo")}


def missing_from_wheel(members: list[str], package: str, needed: set[str],
                       version: str) -> list[str]:
    """What ``needed`` (and the licence and metadata) lacks among the wheel's ``members``."""
    info = f"{package}-{version}.dist-info"
    required = needed | {f"{package}/py.typed", f"{info}/licenses/LICENSE",
                         f"{info}/METADATA", f"{info}/RECORD"}
    return sorted(required - set(members))


def _version(project: Path, package: str) -> str:
    namespace: dict[str, object] = {}
    exec((project / "src" / package / "_version.py").read_text(encoding="utf-8"), namespace)
    return str(namespace["__version__"])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """``package -> (wheel, sdist)``, built from the working tree."""
    pytest.importorskip("build", reason="pip install -e '.[dev]' (build)")
    out = tmp_path_factory.mktemp("dist")
    result = {}
    for package, project in PROJECTS.items():
        done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                               str(out / package), str(project)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        (wheel,) = (out / package).glob("*.whl")
        (sdist,) = (out / package).glob("*.tar.gz")
        result[package] = (wheel, sdist)
    return result


def test_a_wheel_without_a_module_is_caught() -> None:
    needed = package_files(ROOT, "lcam")
    assert {"lcam/optimizer.py", "lcam/py.typed", "lcam/harness/presets.py",
            "lcam/integrations/lightning.py", "lcam/report/findings.py"} <= needed
    members = sorted(needed | {"lcam-0.1.0.dist-info/licenses/LICENSE",
                               "lcam-0.1.0.dist-info/METADATA", "lcam-0.1.0.dist-info/RECORD"})
    assert missing_from_wheel(members, "lcam", needed, "0.1.0") == []
    members.remove("lcam/harness/presets.py")
    members.remove("lcam-0.1.0.dist-info/licenses/LICENSE")
    assert missing_from_wheel(members, "lcam", needed, "0.1.0") == [
        "lcam-0.1.0.dist-info/licenses/LICENSE", "lcam/harness/presets.py"]


@pytest.mark.slow
@pytest.mark.parametrize("package", list(PROJECTS))
def test_wheel_holds_every_module_py_typed_and_the_licence(
        built: dict[str, tuple[Path, Path]], package: str) -> None:
    project = PROJECTS[package]
    version = _version(project, package)
    wheel, _ = built[package]
    assert wheel.name == f"{package}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        members = archive.namelist()
        info = f"{package}-{version}.dist-info"
        licence = archive.read(f"{info}/licenses/LICENSE").decode()
        metadata = email.message_from_bytes(archive.read(f"{info}/METADATA"))
        entry_points = (archive.read(f"{info}/entry_points.txt").decode()
                        if f"{info}/entry_points.txt" in members else "")
    assert missing_from_wheel(members, package, package_files(project, package), version) == []
    # Nothing but the package and its metadata: no tests, docs or top-level modules.
    assert {m.split("/")[0] for m in members} == {package, info}
    assert licence == (project / "LICENSE").read_text(encoding="utf-8")
    assert metadata["Version"] == version
    assert metadata["License-Expression"] == "MIT"
    if package == "lcam":
        assert "lcam = lcam.cli:main" in entry_points
        extras = set(metadata.get_all("Provides-Extra"))
        assert {"harness", "report", "lightning", "transformers", "accelerate"} <= extras
    else:
        requires = " ".join(metadata.get_all("Requires-Dist"))
        assert "jax" in requires and "optax" in requires and "torch" not in requires


@pytest.mark.slow
@pytest.mark.parametrize("package", list(PROJECTS))
def test_sdist_holds_the_licence_the_sources_and_the_tests(
        built: dict[str, tuple[Path, Path]], package: str) -> None:
    project = PROJECTS[package]
    _, sdist = built[package]
    top = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}
        licence = archive.extractfile(f"{top}/LICENSE")
        assert licence is not None
        assert io.TextIOWrapper(licence, encoding="utf-8").read() == (
            project / "LICENSE").read_text(encoding="utf-8")
    assert {"LICENSE", "README.md", "pyproject.toml"} <= names
    assert {f"src/{name}" for name in package_files(project, package)} <= names
    tests = {p.relative_to(project).as_posix() for p in (project / "tests").glob("*.py")}
    assert tests <= names  # helpers and conftest too, not only test_*.py
    if package == "lcam":
        assert "CHANGELOG.md" in names
