"""No file of the repository refers to a path outside it.

A user who clones or installs lcam has the repository and nothing else, so every file
(docs, code, tests, build files) may only point at files inside it. The scan flags:

- a relative path that climbs out of the repository: resolved against the directory
  of the file it is in, it has more parent-directory steps than that directory is deep
  (one is too many in ``README.md``, two in ``docs/PAPER.md``);
- an absolute path in the development machines' layout (the ``work`` and ``shared``
  directories at the file system's root);
- the names of the project's private notes, which live outside the repository (its
  reference and style notes, its folder of papers and hooks);
- a relative link in a Markdown file that leaves the repository or names a file that
  does not exist (URLs and in-page anchors are not checked).

Each finding is reported as ``file:line: what``. The patterns below are written so that
this file does not match them itself.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Not part of the repository: tools' caches and environments.
_SKIPPED_DIRECTORIES = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache",
                        ".ruff_cache", "build", "dist", "runs", "data"}

_PATH_WITH_PARENT = re.compile(r"[\w./-]*\.\./[\w./-]*")
_ABSOLUTE_MACHINE_PATH = re.compile(r"(?<![\w.:/-])/(?:work|shared)/[\w./-]*")
_ABSOLUTE_URL_PATH = re.compile(r"file:///(?:work|shared)/[\w./-]*")
_OUTSIDE_NOTES = re.compile(
    r"(?:\bshared/)?\b(?:REFER" r"ENCE|ST" r"YLE)\.md\b"
    r"|\bshared/(?:pa" r"per|hoo" r"ks|REFER" r"ENCE|ST" r"YLE)\b")
_MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_MARKDOWN_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)")
_INLINE_CODE = re.compile(r"`[^`]*`")
_URL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//|#)")


def outside_references(
    path: str, text: str, exists: Callable[[str], bool]
) -> list[tuple[int, str]]:
    """``(line number, what)`` for every reference in ``text`` to a path outside the repo.

    ``path`` is the file's path relative to the repository root (POSIX separators);
    ``exists(relative_path)`` says whether a repository path exists.
    """
    directory = posixpath.dirname(path)
    found: list[tuple[int, str]] = []
    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        for token in _PATH_WITH_PARENT.findall(line):
            if token.startswith("/"):
                continue  # an absolute path or a URL's path: not relative to this file
            resolved = posixpath.normpath(posixpath.join(directory, token))
            if resolved == ".." or resolved.startswith("../"):
                found.append((number, f"{token!r} leads outside the repository"))
        for match in (*_ABSOLUTE_MACHINE_PATH.finditer(line),
                      *_ABSOLUTE_URL_PATH.finditer(line)):
            found.append((number, f"{match.group(0)!r} is a path on a development machine"))
        for match in _OUTSIDE_NOTES.finditer(line):
            found.append((number, f"{match.group(0)!r} names notes outside the repository"))
        if not path.endswith(".md"):
            continue
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        prose = _INLINE_CODE.sub("", line)
        targets = [m.group(1) for m in _MARKDOWN_LINK.finditer(prose)]
        targets += [m.group(1) for m in _MARKDOWN_REFERENCE.finditer(prose)]
        for target in targets:
            problem = _link_problem(directory, target, exists)
            if problem:
                found.append((number, problem))
    return found


def _link_problem(directory: str, target: str, exists: Callable[[str], bool]) -> str | None:
    if _URL.match(target):
        return None
    file_part = target.split("#", 1)[0].split("?", 1)[0]
    if not file_part:
        return None
    base = "" if file_part.startswith("/") else directory
    resolved = posixpath.normpath(posixpath.join(base, file_part.lstrip("/")))
    if resolved == ".." or resolved.startswith("../"):
        return f"link {target!r} leads outside the repository"
    if not exists(resolved):
        return f"link {target!r} names {resolved}, which does not exist"
    return None


def repository_files() -> list[str]:
    """The repository's files: tracked and new (not ignored) ones, or a walk without git."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        listed = [
            str(p.relative_to(ROOT).as_posix()) for p in ROOT.rglob("*")
            if p.is_file() and not _SKIPPED_DIRECTORIES.intersection(p.relative_to(ROOT).parts)
            and not any(part.endswith(".egg-info") for part in p.relative_to(ROOT).parts)
        ]
    return sorted(name for name in listed if (ROOT / name).is_file())


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _exists(relative: str) -> bool:
    return (ROOT / relative).exists()


def test_no_repository_file_refers_to_a_path_outside_the_repository() -> None:
    files = repository_files()
    assert "README.md" in files and "docs/PAPER.md" in files
    findings = []
    scanned = 0
    for name in files:
        text = _text(ROOT / name)
        if text is None:
            continue  # binary (images)
        scanned += 1
        findings += [f"{name}:{line}: {what}"
                     for line, what in outside_references(name, text, _exists)]
    assert scanned > 50
    assert not findings, "references outside the repository:\n" + "\n".join(findings)


_PARENT = ".." + "/"
_NOTES = "REFER" + "ENCE.md"


@pytest.mark.parametrize(("path", "line", "expected"), [
    ("README.md", f"paper in `{_PARENT}shared/" "paper/`",
     [f"'{_PARENT}shared/" "paper/' leads outside the repository",
      "'shared/" "paper' names notes outside the repository"]),
    ("docs/HARNESS.md", f"(from `shared/{_NOTES}`)",
     [f"'shared/{_NOTES}' names notes outside the repository"]),
    ("src/lcam/harness/presets.py", f"Every value comes from ``{_NOTES}``",
     [f"'{_NOTES}' names notes outside the repository"]),
    ("tests/x.py", "see /" "work/main/README.md",
     ["'/" "work/main/README.md' is a path on a development machine"]),
    ("docs/SCALE_OUT.md", "--out /" "shared/runs",
     ["'/" "shared/runs' is a path on a development machine"]),
    ("docs/PAPER.md", f"[up]({_PARENT}{_PARENT}elsewhere/README.md)",
     [f"'{_PARENT}{_PARENT}elsewhere/README.md' leads outside the repository",
      f"link '{_PARENT}{_PARENT}elsewhere/README.md' leads outside the repository"]),
    ("docs/PAPER.md", "[gone](GONE.md)",
     ["link 'GONE.md' names docs/GONE.md, which does not exist"]),
    # Legitimate: inside the repository, URLs, anchors, code, cluster paths.
    ("docs/PAPER.md", f"[readme]({_PARENT}README.md) and [harness](HARNESS.md#overrides)", []),
    ("README.md", "[paper](docs/PAPER.md), ![fig](docs/images/demo_digits_curves.png)", []),
    ("docs/PAPER.md", "[repo](https://github.com/hakumaicc/Asymmetric-Momentum-LCAM), [top](#top)",
     []),
    ("README.md", "see https://example.org/" "work/page and file.txt", []),
    ("tests/x.py", "ROOT = Path(__file__).resolve().parent.parent", []),
    ("docs/SCALE_OUT.md", "--out /nfs/runs --data-root /nfs/data", []),
    ("src/lcam/x.py", f'Path("{_PARENT}{_PARENT}README.md")', []),
    ("README.md", "`lst[0](x)` is code, not a link", []),
])
def test_the_matcher_flags_outside_paths_and_only_those(
    path: str, line: str, expected: list[str]
) -> None:
    assert [what for _, what in outside_references(path, line, _exists)] == expected


def test_the_matcher_reports_line_numbers_and_skips_code_fences() -> None:
    text = "\n".join(["# title", "```", "[x](nowhere.md)", "```", "[y](nowhere.md)"])
    assert outside_references("README.md", text, _exists) == [
        (5, "link 'nowhere.md' names nowhere.md, which does not exist")]
