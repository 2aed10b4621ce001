"""The documentation site (mkdocs.yml, docs/): every public name has a docstring, and the
API reference pages render it.

The public names are those of ``lcam.__all__``, of each integration module's ``__all__``
and of ``lcam_jax.__all__``. Their docstrings are read the way the site's generator
(mkdocstrings, through griffe) reads them, without importing the frameworks. ``make docs``
builds the site with ``--strict``, which fails on a reference that does not resolve; this
test fails earlier, and names the public name that lacks a docstring or a reference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
API_PAGES = ROOT / "docs" / "api"
# module -> the source directory it is loaded from
PUBLIC_MODULES = {
    "lcam": ROOT / "src",
    "lcam.integrations.lightning": ROOT / "src",
    "lcam.integrations.transformers": ROOT / "src",
    "lcam_jax": ROOT / "lcam-jax" / "src",
}


def _griffe():
    return pytest.importorskip("griffe", reason="pip install -e '.[docs]' (mkdocstrings)")


def public_names() -> list[tuple[str, str]]:
    """``(module, name)`` for every name in the public modules' ``__all__``."""
    griffe = _griffe()
    names = []
    for module, source in PUBLIC_MODULES.items():
        loaded = griffe.load(module, search_paths=[str(source)])
        exports = loaded.exports
        assert exports, f"{module} defines no __all__"
        names += [(module, str(name)) for name in exports]
    return names


def reference_targets() -> set[str]:
    """The identifiers that the API pages render (``::: identifier`` lines)."""
    return {match for page in API_PAGES.glob("*.md")
            for match in re.findall(r"^::: (\S+)\s*$", page.read_text(encoding="utf-8"), re.M)}


def test_the_public_modules_export_what_the_packages_promise() -> None:
    names = public_names()
    assert {("lcam", "LCAM"), ("lcam", "balanced_momentum"), ("lcam", "__version__")} <= set(names)
    assert ("lcam.integrations.lightning", "LCAMCallback") in names
    assert ("lcam.integrations.transformers", "LCAMTrainer") in names
    assert {("lcam_jax", n) for n in ("lcam", "scale_by_lcam", "end_epoch")} <= set(names)


def test_every_public_name_has_a_docstring() -> None:
    griffe = _griffe()
    missing = []
    for module, source in PUBLIC_MODULES.items():
        loaded = griffe.load(module, search_paths=[str(source)])
        for name in loaded.exports:
            target = loaded[str(name)]
            docstring = target.docstring.value.strip() if target.docstring else ""
            if not docstring:
                missing.append(f"{module}.{name}")
    assert missing == [], f"public names without a docstring: {missing}"


def test_every_public_name_is_rendered_by_an_api_reference_page() -> None:
    targets = reference_targets()
    missing = []
    for module, name in public_names():
        # lcam and lcam_jax render their names as the user imports them (lcam.LCAM);
        # the integrations by their module (lcam.integrations.lightning.LCAMCallback).
        if f"{module}.{name}" not in targets:
            missing.append(f"{module}.{name}")
    assert missing == [], f"not in docs/api/*.md as '::: NAME': {missing}"


def test_the_api_pages_are_in_the_site_and_read_both_source_trees() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^strict: true$", config, re.M)
    assert re.search(r"^docs_dir: docs$", config, re.M)
    assert "paths: [src, lcam-jax/src]" in config
    for page in sorted(API_PAGES.glob("*.md")):
        assert f"api/{page.name}" in config, f"{page.name} is not in the site's nav"


def test_make_test_builds_the_site_strictly_and_checks_the_wheels() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    test_target = re.search(r"^test:.*?\n((?:\t.*\n)+)", makefile, re.M)
    assert test_target
    assert "docs" in test_target.group(1) and "wheels-check" in test_target.group(1)
    assert "mkdocs build --strict" in makefile
    assert "/site/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
