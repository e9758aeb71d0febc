"""The project's promises about itself: the README's commands are what CI runs."""

from __future__ import annotations

import re

from conftest import REPO


def _readme_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", readme)


def test_readme_opens_with_app_and_test_commands() -> None:
    commands = _readme_commands()
    assert "streamlit run app.py" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci_lines


def test_requirements_pin_every_package() -> None:
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                assert "==" in line, f"{name}: {line} is not pinned"


def test_results_document_is_what_the_saved_experiments_render() -> None:
    """No figure in docs/RESULTS.md is typed by hand: it is the saved JSON, rendered."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("results", REPO / "bench" / "results.py")
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    assert (REPO / "docs" / "RESULTS.md").read_text() == results.rendered()
