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
            if line and not line.startswith(("-r", "-e .")):
                assert "==" in line, f"{name}: {line} is not pinned"


def _results_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("results", REPO / "bench" / "results.py")
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    return results


def test_results_document_is_what_the_saved_experiments_render() -> None:
    """No figure in docs/RESULTS.md is typed by hand: it is the saved JSON, rendered."""
    assert (REPO / "docs" / "RESULTS.md").read_text() == _results_script().rendered()


def test_repeated_commands_differ_from_the_first_only_by_their_seed() -> None:
    """RESULTS.md says a seed's rerun is the same command with ``--seed N``; hold it to that."""
    results = _results_script()
    folders = results._seed_folders()
    for seed, folder in folders.items():
        for command in folder.glob("*.cmd") if seed else ():
            first = (folders[0] / command.name).read_text().strip()
            rerun = command.read_text().strip()
            assert f" --seed {seed} " in rerun
            assert rerun.replace(f" --seed {seed}", "") == first


def _what_it_does(config) -> dict:
    """A config's settings that change what a run does: where the data sits and which fold is
    tested are the command's business, and a phase that is off has no settings that matter."""
    settings = config.to_dict()
    for name in ("root", "fold", "folds"):
        del settings[name]
    if not config.fine_tune_layers:
        del settings["fine_tune_epochs"], settings["fine_tune_lr_scale"]
    if not config.patch_epochs:
        for name in ("patch_size", "patch_layers", "patches_per_lesion", "patch_labels"):
            del settings[name]
    return settings


def test_every_saved_result_is_what_its_command_runs_today() -> None:
    """The printed commands must still reproduce their figures after the defaults change:
    each is parsed as the CLI would and compared with the settings the result was made with."""
    import json

    from core.cli import _train_config, build_parser
    from core.runs.config import TrainConfig

    results = _results_script()
    saved = [path for folder in results._seed_folders().values() for path in folder.glob("*.json")]
    assert saved
    for path in saved:
        command = path.with_suffix(".cmd").read_text().split()
        assert command[:4] == ["python", "-m", "core", "cv"], path
        runs = _train_config(build_parser().parse_args(command[3:]))
        made_with = TrainConfig.from_manifest(json.loads(path.read_text())["config"])
        assert _what_it_does(runs) == _what_it_does(made_with), path


def test_the_shipped_default_is_what_results_measured_as_ours() -> None:
    """Section 3 of RESULTS.md reports `train` with no options: if the defaults change, the
    figures must be measured again (``python bench/results.py best``) before they ship."""
    import json

    from core.runs.config import TrainConfig

    best = json.loads((REPO / "bench" / "out" / "results" / "best.json").read_text())
    assert best["overrides"] == {}
    assert (_what_it_does(TrainConfig.from_manifest(best["config"]))
            == _what_it_does(TrainConfig(dataset="mias")))


def test_pooled_gains_pair_folds_within_each_seed() -> None:
    """Gains are taken fold by fold against the same seed's reference, then pooled."""
    def cv(values: list[float]) -> dict:
        return {"folds": [{"fold": i, "auc_abnormal": v} for i, v in enumerate(values)]}

    pairs = [(cv([0.7, 0.8]), cv([0.6, 0.6])), (cv([0.5, 0.9]), cv([0.5, 0.7]))]
    mean, std, half, n = _results_script().pooled_gains(pairs, "auc_abnormal")
    assert n == 4
    assert abs(mean - 0.125) < 1e-9  # gains 0.1, 0.2, 0.0, 0.2
    assert abs(std - 0.0957427) < 1e-6
    assert abs(half - 3.182446 * std / 2) < 1e-6
