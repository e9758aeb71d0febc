"""The package stays layered: import-linter's contracts (``pyproject.toml``) hold on the tree,
and they do catch a wrong import, shown on a copy with one planted."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the ``core`` and ``ui`` packages found in ``tree``, with the repo's
    contracts. ``tree`` comes first on the path, so a copy is read instead of the checkout."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"),
                           "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_import_contracts_hold() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.split("Contracts:")[-1].split(",")[0]


def test_an_upward_import_breaks_the_contracts(tmp_path: Path) -> None:
    """The films layer importing training is the kind of shortcut the contracts exist for."""
    for package in ("core", "ui"):
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    films = tmp_path / "core" / "films.py"
    films.write_text(films.read_text() + "\n\nimport core.train.fit  # noqa: E402,F401\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "core.films -> core.train.fit" in result.stdout


def test_core_importing_the_app_breaks_the_contracts(tmp_path: Path) -> None:
    for package in ("core", "ui"):
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    errors = tmp_path / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\n\nimport ui.state  # noqa: E402,F401\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "core.errors -> ui.state" in result.stdout


def _imported_modules(file: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
    return modules


def test_pages_stay_thin() -> None:
    """Pages call core and ui; they train nothing and touch no backend or decoder themselves
    (jobs train; the backbone registry is read, never built, by a page)."""
    for page in [REPO / "app.py", *sorted((REPO / "pages").glob("*.py"))]:
        for module in _imported_modules(page):
            root = module.split(".")[0]
            assert root not in ("keras", "tensorflow", "jax", "cv2", "pydicom"), (page, module)
            assert not module.startswith("core.train."), (page, module)
