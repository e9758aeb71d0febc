"""The CLI contract: --json prints one document, user mistakes exit 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from core.cli import _train_config, build_parser, main
from core.data import LOADERS
from core.runs.config import SETTINGS, TrainConfig
from core.runs.knobs import Setting
from factories import rsna_export


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_mias_summary_matches_the_shared_readme(capsys, mias_root: Path) -> None:
    doc = _run_json(capsys, "data", "summary", "--dataset", "mias", "--root", str(mias_root))
    assert doc["dataset"] == "mias" and doc["synthetic"] is False
    assert (doc["films"], doc["rows"]) == (256, 260)
    assert doc["classes"] == {"ARCH": 15, "ASYM": 12, "CALC": 19, "CIRC": 18, "MISC": 11,
                              "NORM": 166, "SPIC": 15}
    assert doc["severity"] == {"B": 49, "M": 41}
    assert len(doc["missing"]) == 66 and {"mdb025", "mdb312"} <= set(doc["missing"])
    assert any("mdb025" in warning for warning in doc["warnings"])


def test_any_dataset_can_count_its_inverted_films(capsys, tmp_path: Path) -> None:
    out = tmp_path / "films"
    assert main(["data", "synth", "--out", str(out), "--n", "7", "--size", "64"]) == 0
    capsys.readouterr()
    doc = _run_json(capsys, "data", "summary", "--dataset", "mias", "--root", str(out),
                    "--inverted")
    assert doc["inverted"] == 0 and doc["inverted_by_class"]["NORM"] == 0
    assert doc["films"] == 7


def test_synth_then_summary_round_trip(capsys, tmp_path: Path) -> None:
    out = tmp_path / "films"
    made = _run_json(capsys, "data", "synth", "--out", str(out), "--n", "70", "--seed", "3",
                     "--size", "128")
    assert made["synthetic"] is True and made["films"] == 70
    doc = _run_json(capsys, "data", "summary", "--dataset", "mias", "--root", str(out))
    assert doc["films"] == 70 and doc["synthetic"] is True
    assert all(count > 0 for count in doc["classes"].values())


def test_human_output_is_not_json(capsys, tmp_path: Path) -> None:
    assert main(["data", "synth", "--out", str(tmp_path), "--n", "7", "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "films: 7" in out and not out.lstrip().startswith("{")


@pytest.mark.parametrize("argv, fragment", [
    (["data", "summary", "--dataset", "mias", "--root", "/no/such/folder", "--json"],
     "/no/such/folder"),
    (["data", "summary", "--dataset", "nope", "--root", ".", "--json"], "invalid choice"),
    (["data", "synth", "--out", "x", "--n", "-3", "--json"], "positive integer"),
    (["data"], "required"),
    (["backbones", "--size", "512"], "unrecognized arguments: --size 512"),
])
def test_user_mistakes_give_one_line_and_status_2(argv: list[str], fragment: str) -> None:
    result = subprocess.run([sys.executable, "-m", "core", *argv], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.stderr


def test_backbones_lists_every_encoder_and_its_weights(
        capsys, weights_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.models.backbones import BACKBONES

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    for name in ("efficientnet-lite0-57934424.pth",
                 "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"):
        (tmp_path / "models" / name).symlink_to(weights_root / name)
    rows = _run_json(capsys, "backbones")
    assert [row["name"] for row in rows] == list(BACKBONES)
    by_name = {row["name"]: row for row in rows}
    lite0, lite2 = by_name["efficientnet_lite0"], by_name["efficientnet_lite2"]
    assert (lite0["input_size"], lite0["stride"], lite0["feature_layer"]) == \
        (224, 16, "block6a_expand_activation")
    assert lite0["imagenet_available"] and lite0["imagenet_format"] == "pytorch"
    assert lite0["imagenet_path"] == str(tmp_path / "models" / "efficientnet-lite0-57934424.pth")
    assert lite2["input_size"] == 260 and not lite2["imagenet_available"]
    assert not lite2["keras_downloads"]
    v2 = by_name["mobilenet_v2"]
    assert (v2["input_size"], v2["stride"], v2["feature_layer"]) == \
        (224, 16, "block_13_expand_relu")
    assert v2["imagenet_available"] and v2["keras_downloads"]
    assert by_name["inception_v3"]["input_size"] == 299
    assert not by_name["vgg16"]["imagenet_available"]
    assert by_name["alexnet"]["imagenet_file"] is None
    assert not by_name["alexnet"]["imagenet_available"]

    assert main(["backbones"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["backbone", "input", "min", "stride"]
    assert len(table) == len(BACKBONES) + 2
    lines = {line.split()[0]: line for line in table[1:-1]}
    assert lines["efficientnet_lite0"].split()[1:5] == ["224", "32", "16",
                                                        "block6a_expand_activation"]
    assert lines["efficientnet_lite0"].endswith("installed: efficientnet-lite0-57934424.pth")
    assert lines["efficientnet_lite2"].endswith("missing: efficientnet-lite2-9656183e.pth")
    assert lines["alexnet"].endswith("none published")
    assert f"imagenet looks in {tmp_path / 'models'}/" in table[-1]


def test_folder_without_info_txt_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "core", "data", "summary", "--dataset", "mias",
                             "--root", str(tmp_path), "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 2
    assert "Info.txt" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- options made from the declarations ----------------------------------------------------------
def _other_value(setting: Setting) -> tuple[list[str], object]:
    """Command-line words setting ``setting`` to a valid value other than its default, and
    that value as the config should hold it."""
    if setting.kind is bool:
        flag = setting.flag if not setting.default else "--no-" + setting.flag[2:]
        return [flag], not setting.default
    if setting.knob.choices:
        value = next(c for c in setting.knob.choices if c != setting.default)
    elif setting.kind is int:
        value = 7 if setting.default is None else setting.default + 1
    elif setting.kind is float:
        value = setting.default / 2 if setting.default else 0.5
    else:
        value = f"some/{setting.name}"
    return [setting.flag, str(value)], value


@pytest.mark.parametrize("command", [["train"], ["cv"], ["sweep", "--grid", "seed=1,2"]])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_setting_is_an_option_that_reaches_the_config(command: list[str],
                                                            name: str) -> None:
    words, value = _other_value(SETTINGS[name])
    config = _train_config(build_parser().parse_args([*command, *words]))
    assert getattr(config, name) == value
    unset = _train_config(build_parser().parse_args(command))
    assert getattr(unset, name) == SETTINGS[name].default  # an option left out changes nothing


def test_training_options_are_the_declared_settings_and_nothing_else() -> None:
    """No option is written by hand beside the declarations (which would drift from them)."""
    parsed = vars(build_parser().parse_args(["train"]))
    loader_options = {option.name for loader in LOADERS.values() for option in loader.options}
    assert set(parsed) == (set(SETTINGS) | loader_options
                           | {"config", "out", "json", "resume", "verbose", "command", "handler"})
    assert not set(SETTINGS) & loader_options


@pytest.mark.parametrize("command", [["data", "summary", "--root", "x"],
                                     ["train"], ["cv"], ["sweep", "--grid", "seed=1"],
                                     ["evaluate", "run", "--root", "x"]])
def test_every_registered_dataset_is_a_choice_of_every_command(command: list[str]) -> None:
    for name in LOADERS:
        assert build_parser().parse_args([*command, "--dataset", name]).dataset == name


def test_a_cbis_option_reaches_the_loader(capsys, cbis_root: Path) -> None:
    """The real description CSVs without images: every film (or crop) is missing, so the
    count of missing ones says which CSVs were read, and how."""
    base = ["data", "summary", "--dataset", "cbis", "--root", str(cbis_root)]
    calc = _run_json(capsys, *base)
    mass_crops = _run_json(capsys, *base, "--abnormality", "mass", "--mode", "crop")
    assert len(mass_crops["missing"]) == 1318 + 378  # mass abnormalities, one crop each
    assert len(calc["missing"]) != len(mass_crops["missing"])


def test_loader_options_reach_a_training_config() -> None:
    def options(*argv: str) -> dict:
        return _train_config(build_parser().parse_args(["train", *argv])).dataset_options

    assert options("--dataset", "cbis") == {"abnormality": "calc", "mode": "film"}
    assert options("--dataset", "cbis", "--abnormality", "mass", "--with-masks") == {
        "abnormality": "mass", "mode": "film", "with_masks": True}
    assert options("--dataset", "mias-lesions", "--side-factor", "2.5") == {"side_factor": 2.5}
    assert options("--dataset", "mias") == {}


def test_a_loader_option_of_another_dataset_is_refused(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "core", "data", "summary", "--dataset",
                             "mias", "--root", str(tmp_path), "--abnormality", "mass"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "the mias loader takes no options, got abnormality" in result.stderr


@pytest.mark.parametrize("name", list(LOADERS))
def test_data_summary_reads_every_registered_dataset(capsys, name: str, mias_root: Path,
                                                     cbis_root: Path, tmp_path: Path) -> None:
    roots = {"mias": mias_root, "mias-lesions": mias_root, "cbis": cbis_root,
             "folder": _class_folders(tmp_path),
             "rsna": rsna_export(tmp_path / "rsna", {"malignant": ["1_10"], "benign": ["2_20"]})}
    doc = _run_json(capsys, "data", "summary", "--dataset", name, "--root", str(roots[name]))
    assert doc["dataset"] == name
    # Films are read for their polarity by default only where files cannot mark it.
    assert (doc["inverted"] is None) == (not LOADERS[name].polarity_unknown)


def _class_folders(root: Path) -> Path:
    import cv2
    import numpy as np

    for label in ("BENIGN", "MALIGNANT"):
        (root / label).mkdir(parents=True)
        for number in range(2):
            film = np.full((32, 32), 40 * (number + 1), np.uint8)
            cv2.imwrite(str(root / label / f"{label.lower()}{number}.png"), film)
    return root


@pytest.mark.parametrize("command", [["train"], ["cv"]])
def test_rsna_with_no_options_gets_its_best_measured_configuration(command: list[str]) -> None:
    """``train --dataset rsna --root PATH`` trains what docs/RESULTS.md section 4 measured
    best (DATASET_DEFAULTS); an option given still wins, and MIAS keeps its own default."""
    rsna = _train_config(build_parser().parse_args([*command, "--dataset", "rsna",
                                                    "--root", "films"]))
    assert (rsna.model, rsna.image_size, rsna.patch_epochs, rsna.fine_tune_layers) == \
        ("attention", 256, 0, 0)
    chosen = _train_config(build_parser().parse_args([*command, "--dataset", "rsna",
                                                      "--root", "films", "--image-size", "512"]))
    assert chosen.image_size == 512 and chosen.fine_tune_layers == 0
    mias = _train_config(build_parser().parse_args([*command, "--root", "films"]))
    assert mias.to_dict() == TrainConfig(root="films").to_dict()
