"""Run folders are untrusted input: loading one never runs code from it, and a damaged or
foreign one is one clear error naming the file, through every way in.

A run folder can come from anywhere (a colleague's disk, a download, a backup), so its
``model.keras`` may hold arbitrary Python (a ``Lambda`` layer, pickled weights) and its
manifest anything at all. The ways in are the core API (``load_model``, ``loaded_run``,
``predict_films``, ``run_evaluation``), the command line (``predict``, ``evaluate``) and the
Predict and Evaluate pages.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO
from core.cli import main
from core.errors import BadConfigError
from core.evaluate.evaluate import load_model
from core.evaluate.predict import loaded_run, predict_films
from core.evaluate.saved import run_evaluation
from core.models.backbones import build_backbone
from core.runs.config import TrainConfig
from core.runs.folder import MANIFEST, MODEL, Run, list_runs
from factories import TINY, shared_folder

SIDE, CLASSES = 64, 7






@pytest.fixture(scope="module")
def trained(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One tiny run for all pytest-xdist workers, never changed: every test spoils a copy."""
    from core.train.fit import train

    with shared_folder(tmp_path_factory, "untrusted-source") as folder:
        if not list_runs(folder):
            config = TrainConfig(dataset="mias", root=str(synthetic_root)).with_overrides(
                **{**TINY, "epochs": 1})
            train(config, folder)
        (run,) = list_runs(folder)
    assert run.manifest["status"] == "done"
    return run


@pytest.fixture(scope="module")
def film(synthetic_root: Path) -> Path:
    return min(synthetic_root.glob("*.pgm"))


def _copy(run: Run, folder: Path) -> Path:
    return Path(shutil.copytree(run.path, folder,
                                ignore=shutil.ignore_patterns("report", "checkpoint")))


def _model(middle: Callable[[keras.KerasTensor], keras.KerasTensor] | None = None,
           side: int = SIDE, classes: int = CLASSES) -> keras.Model:
    """Films in, class scores out: the shape of a run's model, whatever lies between."""
    films = keras.Input((side, side, 1))
    inner = middle(films) if middle else films
    pooled = keras.layers.GlobalAveragePooling2D()(inner)
    return keras.Model(films, keras.layers.Dense(classes, activation="softmax",
                                                 name="dense")(pooled))


#: Where the Lambda layer's code leaves its mark (read when it runs, from the environment).
MARKER_ENV = "MAMMO_TEST_LAMBDA_MARKER"


def _lambda_model(marker: Path, monkeypatch: pytest.MonkeyPatch) -> keras.Model:
    """A model whose Lambda layer creates ``marker``: arbitrary Python that would run while
    the model is rebuilt from its file, were the file trusted."""
    monkeypatch.setenv(MARKER_ENV, str(marker))
    model = _model(keras.layers.Lambda(lambda films: (
        open(__import__("os").environ["MAMMO_TEST_LAMBDA_MARKER"], "w").close(), films)[1]))
    marker.unlink()  # building the model ran it once, here, on purpose
    return model


class _Unpickled:
    """Creates its marker when unpickled: what pickled weights could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (self.marker, "w")


def _pickled_weights(model_file: Path, marker: Path) -> bytes:
    """A ``.keras`` archive whose weights are an ``.npz`` of pickled objects."""
    _model().save(model_file)
    with zipfile.ZipFile(model_file) as archive:
        config, metadata = archive.read("config.json"), archive.read("metadata.json")
    hostile = np.empty((), dtype=object)
    hostile[()] = _Unpickled(marker)
    weights = io.BytesIO()
    np.savez(weights, **{"layers/dense": hostile, "layers/dense/vars": hostile})
    with zipfile.ZipFile(model_file, "w") as archive:
        archive.writestr("config.json", config)
        archive.writestr("metadata.json", metadata)
        archive.writestr("model.weights.npz", weights.getvalue())
    return weights.getvalue()


def _edit_manifest(folder: Path, edit: Callable[[dict], object]) -> None:
    """Change the manifest in place (what ``edit`` returns is ignored)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    edit(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _replace_in_archive(model_file: Path, member: str, content: bytes,
                        compression: int = zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(model_file) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members[member] = content
    with zipfile.ZipFile(model_file, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _padded_config(folder: Path) -> None:
    """The run's own model, its config.json padded with 9 MiB of blanks after the JSON: a
    valid model Keras would parse whole (a 300 MB one cost 1.43 GB), refused by its size."""
    with zipfile.ZipFile(folder / MODEL) as archive:
        config = archive.read("config.json")
    _replace_in_archive(folder / MODEL, "config.json", config + b" " * (9 * 1024**2),
                        zipfile.ZIP_DEFLATED)


def _weights_bomb(folder: Path) -> None:
    """Weights that expand from a few KB to 64 MiB: over 200 times their compressed size."""
    _replace_in_archive(folder / MODEL, "model.weights.h5", bytes(64 * 1024**2),
                        zipfile.ZIP_DEFLATED)


def _ours(stderr: str) -> str:
    """stderr without TensorFlow's C++ log lines (``E0000 00:00:...``), which this process
    may print at any time after training in-process; the real CLI process below is checked
    whole."""
    return "".join(line for line in stderr.splitlines(keepends=True)
                   if not re.match(r"[EWIF]\d{4} ", line))


def _all_refusals(folder: Path, film: Path, out: Path, capfd: pytest.CaptureFixture[str]
                  ) -> list[str]:
    """The one error of every way in, each checked to be one line; the CLI's exit status
    and streams checked too."""
    messages = []
    for call in (lambda: load_model(Run(folder)), lambda: loaded_run(folder),
                 lambda: predict_films(folder, [film], out),
                 lambda: run_evaluation(Run(folder))):
        with pytest.raises(BadConfigError) as caught:
            call()
        messages.append(str(caught.value))
    capfd.readouterr()
    for argv in (["predict", str(folder), str(film), "--out", str(out), "--json"],
                 ["evaluate", str(folder), "--json"]):
        assert main(argv) == 2
        stdout, stderr = capfd.readouterr()
        stderr = _ours(stderr)
        assert stdout == "" and stderr.startswith("error: ") and stderr.count("\n") == 1
        messages.append(stderr.removesuffix("\n"))
    assert all("\n" not in message for message in messages), messages
    assert not out.exists() or not any(out.iterdir())  # nothing written for a refused run
    return messages


def test_a_lambda_layer_is_refused_and_its_code_never_runs(
        trained: Run, film: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "lambda-ran"
    folder = _copy(trained, tmp_path / "run")
    _lambda_model(marker, monkeypatch).save(folder / MODEL)

    for message in _all_refusals(folder, film, tmp_path / "out", capfd):
        assert str(folder / MODEL) in message and "Lambda" in message
    assert not marker.exists()
    # The proof that the check above can fail: loading the same file unsafely runs the code.
    keras.models.load_model(folder / MODEL, safe_mode=False)
    assert marker.exists()


def test_pickled_weights_are_refused_and_never_unpickled(
        trained: Run, film: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pickle-ran"
    folder = _copy(trained, tmp_path / "run")
    weights = _pickled_weights(folder / MODEL, marker)

    for message in _all_refusals(folder, film, tmp_path / "out", capfd):
        assert str(folder / MODEL) in message and "allow_pickle" in message
    assert not marker.exists()
    np.load(io.BytesIO(weights), allow_pickle=True)["layers/dense"]  # the proof, as above
    assert marker.exists()


def test_a_lambda_model_is_refused_by_a_real_predict_process(
        trained: Run, film: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "lambda-ran"
    folder = _copy(trained, tmp_path / "run")
    _lambda_model(marker, monkeypatch).save(folder / MODEL)  # the child inherits the variable
    result = subprocess.run([sys.executable, "-m", "core", "predict", str(folder), str(film),
                             "--out", str(tmp_path / "out"), "--json"], cwd=REPO,
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and str(folder / MODEL) in result.stderr
    assert not marker.exists()


def _junk_zip(folder: Path) -> None:
    with zipfile.ZipFile(folder / MODEL, "w") as archive:
        archive.writestr("notes.txt", "not a model")


def _truncated(folder: Path) -> None:
    data = (folder / MODEL).read_bytes()
    (folder / MODEL).write_bytes(data[:len(data) // 2])


def _garbage_weights(folder: Path) -> None:
    _model().save(folder / MODEL)  # small, so that Keras soon reaches the weights
    _replace_in_archive(folder / MODEL, "model.weights.h5",
                        b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)


def _two_outputs(folder: Path) -> None:
    films = keras.Input((SIDE, SIDE, 1))
    flat = keras.layers.Flatten()(films)
    keras.Model(films, [flat, flat]).save(folder / MODEL)


def _sequential(folder: Path) -> None:
    """A harmless foreign model of the right input and class count: a Keras ``Sequential``
    loads without ``model.output`` defined, which was an AttributeError traceback."""
    keras.Sequential([keras.Input((SIDE, SIDE, 1)), keras.layers.GlobalAveragePooling2D(),
                      keras.layers.Dense(CLASSES)]).save(folder / MODEL)


def _sequential_transfer(folder: Path) -> None:
    """The same model, claimed by a transfer run: its output fits, its shape does not."""
    _sequential(folder)
    _edit_manifest(folder, lambda m: m["config"].update(model="transfer"))


#: A damaged or foreign run folder -> (how it is made, the file its error names, a fragment
#: of that error).
DAMAGE: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "model a zip of junk": (_junk_zip, MODEL, "config.json"),
    "model config not JSON": (
        lambda f: _replace_in_archive(f / MODEL, "config.json", b"{ not json"), MODEL,
        "JSONDecodeError"),
    "model config of an unknown layer": (
        lambda f: _replace_in_archive(f / MODEL, "config.json", json.dumps(
            {"module": "os", "class_name": "system", "config": {"command": "touch x"}}
        ).encode()), MODEL, "not a model this program can load"),
    "model truncated": (_truncated, MODEL, "not a Keras model"),
    "model a text file": (lambda f: (f / MODEL).write_text("hello\n"), MODEL,
                          "not a Keras model"),
    "model of another input size": (lambda f: _model(side=32).save(f / MODEL), MODEL,
                                    "takes (32, 32, 1)"),
    "model of another class count": (lambda f: _model(classes=3).save(f / MODEL), MODEL,
                                     "3 classes"),
    "model with two outputs": (_two_outputs, MODEL, "no class output"),
    "model a foreign Sequential": (_sequential, MODEL, "attention output"),
    "model a foreign Sequential, transfer run": (_sequential_transfer, MODEL,
                                                 "not films -> encoder -> head"),
    "model config.json expanding to 9 MiB": (_padded_config, MODEL, "config.json expands to"),
    "model weights a zip bomb": (_weights_bomb, MODEL, "likely zip bomb"),
    "model weights garbage": (_garbage_weights, MODEL, "not a model this program can load"),
    "model missing": (lambda f: (f / MODEL).unlink(), "", "no trained model"),
    "manifest not JSON": (lambda f: (f / MANIFEST).write_text("{status: done"), MANIFEST,
                          "unreadable manifest"),
    "manifest nested past the recursion limit": (
        lambda f: (f / MANIFEST).write_text("[" * 100_000 + "]" * 100_000), MANIFEST,
        "nested too deeply"),
    "manifest with a 5,000-digit integer": (
        lambda f: (f / MANIFEST).write_text('{"seed": ' + "9" * 5000 + "}"), MANIFEST,
        "digits"),
    "manifest a JSON list": (lambda f: (f / MANIFEST).write_text("[1, 2]"), MANIFEST,
                             "not a JSON object"),
    "manifest without config": (lambda f: _edit_manifest(f, lambda m: m.pop("config")),
                                MANIFEST, "no 'config'"),
    "manifest without classes": (
        lambda f: _edit_manifest(f, lambda m: m["dataset"].pop("classes")), MANIFEST,
        "no 'classes'"),
    "manifest config with an unknown key": (
        lambda f: _edit_manifest(f, lambda m: m["config"].update(exec_me="rm -rf /")),
        MANIFEST, "unknown setting(s) exec_me"),
    "manifest config of the wrong type": (
        lambda f: _edit_manifest(f, lambda m: m.update(config="attention")), MANIFEST,
        "training config"),
    "manifest classes a string": (
        lambda f: _edit_manifest(f, lambda m: m["dataset"].update(classes="ABCDEFG")),
        MANIFEST, "distinct names"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_or_foreign_run_is_one_clear_error_everywhere(
        damage: str, trained: Run, film: Path, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    make, file, fragment = DAMAGE[damage]
    folder = _copy(trained, tmp_path / "run")
    make(folder)
    messages = _all_refusals(folder, film, tmp_path / "out", capfd)
    named = str(folder / file) if file else str(folder)
    for message in messages:
        assert named in message and fragment in message, message


def test_a_run_without_its_split_predicts_but_is_not_evaluated(
        trained: Run, film: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A run shared without its film list still predicts; evaluating it on its own test
    split cannot be done, and says so naming the manifest."""
    folder = _copy(trained, tmp_path / "run")
    _edit_manifest(folder, lambda m: m["split"].pop("test"))
    entries = predict_films(folder, [film], tmp_path / "out")
    assert entries[0]["label"] in loaded_run(folder).classes
    with pytest.raises(BadConfigError, match=re.escape(f"{folder / MANIFEST}: no usable test")):
        run_evaluation(Run(folder))
    capfd.readouterr()
    assert main(["evaluate", str(folder), "--json"]) == 2
    stdout, stderr = capfd.readouterr()
    stderr = _ours(stderr)
    assert stdout == "" and stderr.count("\n") == 1 and str(folder / MANIFEST) in stderr


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_a_users_weights_file_is_read_as_weights_only(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Training with a weights file from elsewhere: garbage is refused naming the file, and
    a whole model with a Lambda layer gives up its weights (or is refused), never its code."""
    garbage = tmp_path / "weights.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\xff" * 512)
    with pytest.raises(BadConfigError, match=re.escape(str(garbage))):
        build_backbone("mobilenet_025", SIDE, str(garbage))
    marker = tmp_path / "lambda-ran"
    hostile = tmp_path / "model.keras"
    _lambda_model(marker, monkeypatch).save(hostile)
    with pytest.raises(BadConfigError, match=re.escape(str(hostile))):
        build_backbone("mobilenet_025", SIDE, str(hostile))
    assert not marker.exists()


#: Calls that would load or run code from a file; each must appear only in its safe form.
UNSAFE = {
    r"\bimport (pickle|cPickle|dill|cloudpickle|joblib|shelve|marshal)\b": "an unpickler",
    r"\bfrom (pickle|dill|cloudpickle|joblib|shelve|marshal)\b": "an unpickler",
    r"read_pickle|torch\.load|yaml\.load\(|yaml\.unsafe_load": "a loader that runs code",
    r"allow_pickle\s*=\s*True": "pickle allowed",
    r"safe_mode\s*=\s*False|enable_unsafe_deserialization": "Keras safe mode off",
    r"(?<![\w.])(eval|exec)\(": "eval or exec",
    r"from keras[\w.]* import .*\bload_model\b": "an unqualified Keras load_model",
}


def _calls(text: str, name: str) -> list[str]:
    """Each call of ``name`` with its arguments (to the closing parenthesis)."""
    calls = []
    for match in re.finditer(re.escape(name) + r"\(", text):
        depth, end = 1, match.end()
        while depth and end < len(text):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        calls.append(text[match.start():end])
    return calls


#: The one module that imports pickle: its unpickler resolves only the names a PyTorch state
#: dict is made of (tests/models/test_torch_weights.py: a hostile file is refused unrun).
RESTRICTED_UNPICKLER = "core/models/torch_weights.py"
#: What that module must never do: unpickle without its restricted subclass.
PLAIN_UNPICKLING = r"pickle\.loads?\(|pickle\.Unpickler\(|pickle\._Unpickler|\b_pickle\b"


def test_no_code_path_unpickles_or_loads_models_unsafely() -> None:
    sources = [*REPO.glob("core/**/*.py"), *REPO.glob("ui/*.py"), *REPO.glob("pages/*.py"),
               REPO / "app.py"]
    faults = []
    for source in sources:
        text = source.read_text()
        name = str(source.relative_to(REPO))
        faults += [f"{name}: {what}" for pattern, what in UNSAFE.items()
                   if re.search(pattern, text)
                   and not (name == RESTRICTED_UNPICKLER and what == "an unpickler")]
        if name == RESTRICTED_UNPICKLER and re.search(PLAIN_UNPICKLING, text):
            faults.append(f"{name}: unpickles without its restricted unpickler")
        faults += [f"{source.relative_to(REPO)}: {call}" for call in _calls(text, "np.load")
                   if "allow_pickle=False" not in call]
        faults += [f"{source.relative_to(REPO)}: {call}" for name in
                   ("keras.models.load_model", "keras.saving.load_model")
                   for call in _calls(text, name) if "safe_mode=True" not in call]
    assert len(sources) > 30 and not faults


# -- the pages ----------------------------------------------------------------------------------
@pytest.fixture()
def models(trained: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runs folder with a good run and, listed first (so chosen by default), a copy whose
    model is corrupt; the app runs as served (see tests/conftest.py)."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    monkeypatch.setattr(PagesManager, "uses_pages_directory", False)
    monkeypatch.setattr(app_test, "PagesManager", type("Served", (PagesManager,), {}))
    root = tmp_path / "models"
    _copy(trained, root / "00000000-000000-good")
    _truncated(_copy(trained, root / "99999999-999999-corrupt"))
    monkeypatch.setenv("MAMMO_MODELS", str(root))
    monkeypatch.setenv("MAMMO_DATA", str(tmp_path / "data"))
    return root


def _page(name: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    return at.switch_page(f"pages/{name}.py").run()


def test_predict_page_shows_one_error_for_a_corrupt_model_and_serves_the_others(
        models: Path) -> None:
    at = _page("predict")
    assert not at.exception
    assert [option.split()[0] for option in at.selectbox(key="predict_run").options] == [
        "99999999-999999-corrupt", "00000000-000000-good"]
    assert len(at.error) == 1 and "corrupt" in at.error[0].value
    assert MODEL in at.error[0].value and "\n" not in at.error[0].value
    assert not at.file_uploader

    at.selectbox(key="predict_run").select_index(1).run()
    assert not at.exception and not at.error
    assert at.file_uploader


def test_evaluate_page_shows_one_error_for_a_corrupt_model_and_serves_the_others(
        models: Path) -> None:
    at = _page("evaluate")
    assert not at.exception
    assert len(at.error) == 1 and "corrupt" in at.error[0].value
    assert MODEL in at.error[0].value
    assert not at.get("plotly_chart")

    at.selectbox(key="evaluate_run").select_index(1).run()
    assert not at.exception and not at.error
    assert at.get("plotly_chart") and at.metric
