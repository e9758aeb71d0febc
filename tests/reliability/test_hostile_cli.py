"""What a hostile tester typed at the command line (issue 18, section 4): config files that
break Python's JSON reader or the config's types, sizes that would ask the allocator for
terabytes, and a queue listed under a folder that does not exist.

Each is one line on stderr naming the file (or the setting) and the fault, exit status 2,
and nothing written: no run folder, no output folder, no queue folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli import main

#: A ``--config`` file's content -> a fragment of its one-line error.
CONFIG_FILES: dict[str, tuple[str, str]] = {
    "nested past the recursion limit": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "an integer of 5,000 digits": ('{"epochs": ' + "9" * 5000 + "}", "digits"),
    "a JSON list": ("[1, 2]", "not a JSON object"),
    "a word where a number belongs": ('{"epochs": "many"}', "epochs must be a whole number"),
    "true where a number belongs": ('{"batch_size": true}', "batch_size must be a whole number"),
    "a list where a number belongs": ('{"image_size": [512]}', "image_size must be"),
    "a number where text belongs": ('{"backbone": 7}', "backbone must be text"),
    "NaN as a learning rate": ('{"learning_rate": NaN}', "learning_rate must be a number"),
    "a list of augment settings": ('{"augment": [1]}', "augment must be an object"),
    "a list of loader options": ('{"dataset_options": [1]}', "dataset_options must be"),
    "a word as the fold count": ('{"folds": "x"}', "folds must be a whole number"),
    "a huge input size": ('{"image_size": 100000}', "image_size must be in (0, 2048]"),
    "not UTF-8": ("\udcff", "unreadable JSON config"),
}


def _one_line_refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI in this process; check status 2, nothing on stdout, one stderr line."""
    capsys.readouterr()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("case", list(CONFIG_FILES))
def test_a_hostile_config_file_is_one_line_naming_it(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, fragment = CONFIG_FILES[case]
    config = tmp_path / "config.json"
    config.write_bytes(content.encode("utf-8", errors="surrogateescape"))
    out = tmp_path / "runs"
    err = _one_line_refusal(["train", "--config", str(config), "--root", str(tmp_path),
                             "--out", str(out), "--json"], capsys)
    assert str(config) in err and fragment in err, err
    assert not out.exists()


@pytest.mark.parametrize("flag, value", [
    ("--image-size", "100000"), ("--patch-size", "100000"), ("--batch-size", "10000000"),
    ("--units", "100000000"), ("--attention-units", "100000000"), ("--steps", "100000"),
    ("--patches-per-lesion", "100000000"), ("--augment-target", "1000000000"),
])
def test_a_size_that_would_exhaust_memory_is_refused_before_anything_is_made(
        flag: str, value: str, synthetic_root: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--image-size 100000`` once asked for 1.38 TiB and left a failed run folder; the
    config's bounds refuse it, and the other array sizes, before a run folder exists."""
    out = tmp_path / "runs"
    err = _one_line_refusal(["train", "--root", str(synthetic_root), flag, value,
                             "--out", str(out), "--json"], capsys)
    name = flag.removeprefix("--").replace("-", "_")
    assert f"{name} must be in" in err and value in err, err
    assert not out.exists()


def test_listing_a_queue_that_does_not_exist_creates_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing queue holds no jobs (a fresh install lists nothing, as the app's job panel
    shows nothing); a read never creates the folder a typo named."""
    root = tmp_path / "nonexistent" / "jobs"
    capsys.readouterr()
    assert main(["jobs", "list", "--root", str(root), "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"
    assert not (tmp_path / "nonexistent").exists()
    err = _one_line_refusal(["jobs", "cancel", "no-such-job", "--root", str(root)], capsys)
    assert "no job no-such-job" in err and str(root) in err
    assert not (tmp_path / "nonexistent").exists()
