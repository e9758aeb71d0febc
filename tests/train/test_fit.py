"""Training end to end: run folders, both models, resume, and learning shown, not assumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import REPO
from core.data import load_dataset
from core.data.synthetic import generate
from core.errors import BadConfigError
from core.evaluate.evaluate import evaluate_run
from core.metrics.scores import classification_summary
from core.prep.arrays import load_arrays
from core.runs.config import TrainConfig
from core.runs.folder import HISTORY, MODEL, PROGRESS, WEIGHTS
from core.train.fit import train
from factories import TINY

#: Small enough to train in seconds: the point is the mechanics, not the scores.


def _tiny(root: Path, **overrides) -> TrainConfig:
    return TrainConfig(dataset="mias", root=str(root)).with_overrides(**{**TINY, **overrides})


def _predict(model: keras.Model, images: np.ndarray) -> dict[str, np.ndarray]:
    out = model.predict(images[..., None].astype(np.float32), verbose=0)
    return out if isinstance(out, dict) else {"class": out}


def test_attention_run_folder_holds_everything(synthetic_root: Path, tmp_path: Path) -> None:
    run = train(_tiny(synthetic_root, balance="augment"), tmp_path)
    manifest = run.manifest
    assert manifest["status"] == "done" and manifest["dataset"]["synthetic"] is True
    assert {p.name for p in run.path.iterdir()} >= {MODEL, WEIGHTS, HISTORY, PROGRESS,
                                                    "manifest.json", "checkpoint"}
    split = manifest["split"]
    patients = [{f["patient"] for f in split[part]} for part in ("train", "val", "test")]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert all(len(f["sha256"]) == 64 for part in split.values() for f in part)
    assert sum(manifest["counts_after"]) >= sum(manifest["counts_before"])
    assert len(set(manifest["counts_after"]) - {0}) == 1  # every present class grown equal
    assert manifest["config"]["image_size"] == 64 and "keras" in manifest["versions"]
    events = [e["event"] for e in run.events()]
    assert events[0] == "data" and "features" in events and events[-1] == "end"
    assert events.count("epoch") == 2

    # save -> load: the saved model reproduces the validation figures in the manifest.
    model = keras.models.load_model(run.path / MODEL, safe_mode=True)
    dataset = load_dataset("mias", synthetic_root)
    val_ids = {f["film"] for f in split["val"]}
    records = [r for r in dataset.records if r.film_id in val_ids]
    arrays = load_arrays(records, TrainConfig.from_dict(manifest["config"]).prep)
    out = _predict(model, arrays.images)
    again = classification_summary(arrays.labels, out["class"], dataset.classes,
                                   dataset.classes.index(manifest["val"]["baselines"]["majority"]["class"]))
    assert again == manifest["val"]
    assert out["attention"].shape[1] == 6
    # ... and the HDF5 weights fill a fresh copy of the architecture identically.
    clone = keras.models.clone_model(model)
    clone.load_weights(run.path / WEIGHTS)
    np.testing.assert_allclose(_predict(clone, arrays.images)["class"], out["class"], atol=1e-6)


def test_transfer_model_with_factors_and_fine_tuning(synthetic_root: Path, tmp_path: Path) -> None:
    config = _tiny(synthetic_root, model="transfer", weight_lr_factor=10.0, bias_lr_factor=20.0,
                   l2_factor=2.0, balance="class_weights", fine_tune_layers=3,
                   fine_tune_epochs=1, optimizer="sgd")
    run = train(config, tmp_path)
    manifest = run.manifest
    assert manifest["status"] == "done"
    phases = [e["phase"] for e in run.events() if e["event"] == "epoch"]
    assert phases == ["head", "head", "fine-tune"]
    unfrozen = next(e for e in run.events() if e["event"] == "unfreeze")["layers"]
    assert len(unfrozen) == 3
    assert manifest["counts_before"] == manifest["counts_after"]  # weights, not augmentation
    assert set(manifest["val"]) >= {"accuracy", "macro_f1", "per_class", "baselines"}


def test_patch_pretraining_tunes_only_the_encoder_top(keras_home: Path, synthetic_root: Path,
                                                     tmp_path: Path) -> None:
    from core.errors import BadConfigError
    from core.models.backbones import build_backbone
    from core.train.patches import pretrain_on_patches, tuned_encoder_file

    # ImageNet weights: in a random-init network ReLU6 saturates and some gradients are zero.
    config = _tiny(synthetic_root, weights="imagenet", patch_epochs=2, patch_size=32,
                   patch_layers=3, patches_per_lesion=4, patch_labels="class")
    run = train(config, tmp_path / "runs")
    assert run.manifest["status"] == "done"
    phases = [e["phase"] for e in run.events() if e["event"] == "epoch"]
    assert phases == ["patches", "patches", "head", "head"]
    counts = next(e for e in run.events() if e["event"] == "patches")["counts"]
    assert counts["NORM"] > 0 and len(counts) > 2

    before = build_backbone("mobilenet_025", 64, "imagenet")
    after = build_backbone("mobilenet_025", 64, "none")
    assert pretrain_on_patches(run, config, after, [], None, None, []) == "tuned"  # resumed
    weighted = [(b, a) for b, a in zip(before.model.layers, after.model.layers) if b.weights
                and not isinstance(b, keras.layers.BatchNormalization)]
    changed = [not all(np.array_equal(x, y) for x, y in zip(b.get_weights(), a.get_weights()))
               for b, a in weighted]
    assert changed == [False] * (len(weighted) - 3) + [True] * 3
    # The saved film model carries the tuned encoder, not the one it started from.
    model = keras.models.load_model(run.path / MODEL, safe_mode=True)
    tuned = weighted[-1][1].get_weights()
    assert any(np.array_equal(w, tuned[0]) for w in model.get_weights())
    assert tuned_encoder_file(run).is_file()
    tuned_encoder_file(run).write_bytes(b"not weights")  # a damaged run folder: one clear error
    with pytest.raises(BadConfigError, match="unreadable tuned encoder weights"):
        pretrain_on_patches(run, config, after, [], None, None, [])


def _films(labels: list[int], lesions: list[np.ndarray]):
    from core.prep.arrays import FilmArrays

    return FilmArrays([None] * len(labels), np.full((len(labels), 64, 64), 100, np.uint8),
                      [None] * len(labels), lesions, np.array(labels))


@pytest.mark.parametrize("labels", ["class", "lesion"])
def test_patch_pretraining_without_located_lesions_is_skipped_and_said(labels: str,
                                                                        tmp_path: Path) -> None:
    """It is on by default, so films without lesion locations (class folders) still train,
    with a warning in the run that the encoder was not tuned."""
    from core.models.backbones import build_backbone
    from core.runs.folder import create_run
    from core.train.patches import pretrain_on_patches

    films = _films([0, 1], [np.zeros((0, 3))] * 2)
    config = TrainConfig().with_overrides(**{**TINY, "patch_epochs": 1, "patch_size": 32,
                                             "patch_labels": labels})
    run, warnings = create_run("patches", {}, tmp_path), []
    backbone = build_backbone("mobilenet_025", 64, "none")
    before = backbone.model.get_weights()
    outcome = pretrain_on_patches(run, config, backbone, ["CIRC", "NORM"], films, films,
                                  warnings)
    assert outcome == "skipped"
    assert len(warnings) == 1 and "patch pretraining skipped" in warnings[0]
    assert all(np.array_equal(a, b) for a, b in zip(before, backbone.model.get_weights()))


def test_patch_pretraining_needs_two_kinds_of_patch(tmp_path: Path) -> None:
    """Class labels on lesions of a single class, with no normal class, leave one kind."""
    from core.errors import BadConfigError
    from core.models.backbones import build_backbone
    from core.runs.folder import create_run
    from core.train.patches import pretrain_on_patches

    films = _films([0, 0], [np.array([[32.0, 32.0, 8.0]])] * 2)
    config = TrainConfig().with_overrides(**{**TINY, "patch_epochs": 1, "patch_size": 32,
                                             "patch_labels": "class"})
    with pytest.raises(BadConfigError, match="give only MALIGNANT"):
        pretrain_on_patches(create_run("patches", {}, tmp_path), config,
                            build_backbone("mobilenet_025", 64, "none"), ["MALIGNANT", "BENIGN"],
                            films, films, [])


def test_lesion_patches_need_no_normal_class() -> None:
    """Benign vs malignant films: tissue clear of the lesions is the normal side."""
    from core.train.patches import _patches

    films = _films([0, 1], [np.array([[20.0, 20.0, 6.0]]), np.array([[44.0, 44.0, 6.0]])])
    config = TrainConfig().with_overrides(**{**TINY, "patch_epochs": 1, "patch_size": 16,
                                             "patch_labels": "lesion"})
    patches = _patches(config, films, ["BENIGN", "MALIGNANT"], seed=0)
    assert set(patches.labels.tolist()) == {0, 1, 2}  # both lesion classes and normal tissue
    assert (patches.labels == 2).sum() > 0


def test_early_stopping_keeps_the_best_epoch(synthetic_root: Path, tmp_path: Path) -> None:
    run = train(_tiny(synthetic_root, epochs=12, patience=2, learning_rate=0.05), tmp_path)
    history = [e for e in run.events() if e["event"] == "epoch"]
    losses = [e["val_loss"] for e in history]
    assert len(losses) < 12  # it stopped early
    best = int(np.argmin(losses))
    assert len(losses) == best + 1 + 2  # two epochs of patience after the best
    model = keras.models.load_model(run.path / MODEL, safe_mode=True)
    dataset = load_dataset("mias", synthetic_root)
    val_ids = {f["film"] for f in run.manifest["split"]["val"]}
    arrays = load_arrays([r for r in dataset.records if r.film_id in val_ids],
                         TrainConfig.from_dict(run.manifest["config"]).prep)
    probabilities = _predict(model, arrays.images)["class"]
    loss = float(keras.losses.categorical_crossentropy(
        np.eye(len(dataset.classes))[arrays.labels], probabilities).numpy().mean())
    # The saved model is the best epoch's, not the last one's (attention loss aside).
    assert loss == pytest.approx(history[best]["val_class_loss"], rel=1e-3)


def test_killed_run_resumes_from_its_last_checkpoint(synthetic_root: Path, tmp_path: Path) -> None:
    config = _tiny(synthetic_root, epochs=40)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config.to_dict()))
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "core", "train", "--config", str(config_file),
               "--out", str(runs), "--json"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    state = None
    while time.time() < deadline and process.poll() is None:
        folders = list(runs.glob("*")) if runs.exists() else []
        state = (folders[0] / "checkpoint" / "state.json") if folders else None
        if state and state.exists() and json.loads(state.read_text())["epoch"] >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[1].decode()[-2000:]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    run_path = next(runs.iterdir())
    killed_at = json.loads((run_path / "checkpoint" / "state.json").read_text())["epoch"]
    assert json.loads((run_path / "manifest.json").read_text())["status"] == "running"

    result = subprocess.run([sys.executable, "-m", "core", "train", "--resume", str(run_path),
                             "--json"], cwd=REPO, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout)
    assert document["status"] == "done" and document["run"] == str(run_path)
    epochs = [e["epoch"] for e in map(json.loads, (run_path / PROGRESS).read_text().splitlines())
              if e["event"] == "epoch"]
    # The log names every epoch, and the resumed run went on after the checkpoint (redoing
    # at most the epoch a kill between its log line and its checkpoint left unsaved).
    assert sorted(set(epochs)) == list(range(1, 41))
    assert min(epochs[epochs.index(killed_at) + 1:]) == killed_at + 1
    assert json.loads((run_path / "checkpoint" / "state.json").read_text())["epoch"] == 40


def test_a_run_stopped_while_fine_tuning_resumes_there_and_saves_the_tuned_model(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.train.progress as progress_module
    from core.models.transfer import leaves
    from core.train.fit import resume
    from core.train.progress import checkpoint_model_path, checkpoint_state

    def stop_after_the_first_fine_tuning_epoch(run) -> bool:
        state = checkpoint_state(run)
        return bool(state and state["phase"] == "fine-tune")

    monkeypatch.setattr(progress_module, "cancel_requested", stop_after_the_first_fine_tuning_epoch)
    config = _tiny(synthetic_root, fine_tune_layers=3, fine_tune_epochs=3)
    run = train(config, tmp_path)
    assert run.manifest["status"] == "cancelled"
    stopped_at = checkpoint_state(run)["epoch"]
    assert stopped_at < 3
    monkeypatch.undo()

    run = resume(run.path)
    assert run.manifest["status"] == "done"
    assert {"event": "resume", "phase": "fine-tune", "epoch": stopped_at}.items() <= \
        next(e for e in run.events() if e["event"] == "resume").items()
    fine_tuned = [e["epoch"] for e in run.events()
                  if e["event"] == "epoch" and e["phase"] == "fine-tune"]
    assert fine_tuned[-1] == 3 and sorted(set(fine_tuned)) == [1, 2, 3]
    # The saved film model holds the weights the resumed phase trained (on cut activations):
    # the encoder's top layers and the head alike.
    last = keras.models.load_model(checkpoint_model_path(run), safe_mode=True)
    saved = {layer.name: layer for layer in leaves(keras.models.load_model(run.path / MODEL,
                                                                            safe_mode=True))}
    trained = [layer for layer in leaves(last) if layer.weights]
    assert {"conv_pw_12", "conv_dw_13", "conv_pw_13", "class"} <= {layer.name for layer in trained}
    for layer in trained:
        for value, kept in zip(layer.get_weights(), saved[layer.name].get_weights()):
            np.testing.assert_array_equal(value, kept)


def test_both_breasts_train_resume_and_are_scored_as_pairs(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each film is trained and scored beside its other breast: stopped in the head's phase
    (the checkpoint is the pair trainer), resumed, fine-tuned on cut activations, saved as
    a model of pairs, and evaluated on exactly the pairs core.data.pairs names."""
    import core.train.progress as progress_module
    from core.data.pairs import other_breasts
    from core.models.pairs import stack_pair
    from core.train.fit import resume
    from core.train.progress import checkpoint_state

    def stop_after_the_first_head_epoch(run) -> bool:
        return bool(checkpoint_state(run))

    monkeypatch.setattr(progress_module, "cancel_requested", stop_after_the_first_head_epoch)
    config = _tiny(synthetic_root, both_breasts=True, balance="augment", epochs=3,
                   fine_tune_layers=2, fine_tune_epochs=1)
    run = train(config, tmp_path)
    assert run.manifest["status"] == "cancelled" and checkpoint_state(run)["phase"] == "head"
    monkeypatch.undo()
    run = resume(run.path)
    assert run.manifest["status"] == "done" and "both-breasts" in run.name
    phases = {e["phase"] for e in run.events() if e["event"] == "epoch"}
    assert phases == {"head", "fine-tune"}

    model = keras.models.load_model(run.path / MODEL, safe_mode=True)
    assert tuple(model.inputs[0].shape[1:]) == (64, 64, 2)
    evaluation = evaluate_run(run)
    dataset = load_dataset("mias", synthetic_root)
    test_ids = [f["film"] for f in run.manifest["split"]["test"]]
    records = [r for r in dataset.records if r.film_id in test_ids]
    arrays = load_arrays(records, config.prep)
    others = [arrays.images[i if j is None else j]
              for i, j in enumerate(other_breasts(arrays.records))]
    assert any(j is not None for j in other_breasts(arrays.records))
    pairs = stack_pair(arrays.images, np.stack(others), films=True).astype(np.float32)
    expected = model.predict_on_batch(pairs)["class"]
    scored = {f["film"]: list(f["probabilities"].values()) for f in evaluation["films"]}
    got = np.array([scored[r.film_id] for r in arrays.records])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_both_breasts_is_the_attention_model_s_and_in_memory_only(synthetic_root: Path,
                                                                  tmp_path: Path) -> None:
    with pytest.raises(BadConfigError, match="attention model only"):
        _tiny(synthetic_root, both_breasts=True, model="transfer")
    with pytest.raises(BadConfigError, match="in memory only"):
        train(_tiny(synthetic_root, both_breasts=True, streaming="on"), tmp_path)


def test_cli_train_prints_the_run_and_validation(synthetic_root: Path, tmp_path: Path) -> None:
    argv = ["train", "--dataset", "mias", "--root", str(synthetic_root), "--out", str(tmp_path),
            "--model", "attention", "--backbone", "mobilenet_025", "--weights", "none",
            "--image-size", "64", "--patch-epochs", "0", "--fine-tune-layers", "0", "--epochs", "1",
            "--cell", "gru", "--steps", "3", "--json"]
    result = subprocess.run([sys.executable, "-m", "core", *argv], cwd=REPO,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout)
    assert Path(document["run"]).is_dir() and document["status"] == "done"
    assert 0.0 <= document["val"]["macro_f1"] <= 1.0
    config = json.loads((Path(document["run"]) / "manifest.json").read_text())["config"]
    assert (config["cell"], config["steps"], config["weights"]) == ("gru", 3, "none")


@pytest.mark.parametrize("both_breasts", [False, True])
def test_training_runs_on_jax(synthetic_root: Path, tmp_path: Path, both_breasts: bool) -> None:
    """Every phase (patch pretraining, head, fine-tuning) on JAX, as a GPU machine runs it,
    one film or both breasts at a time."""
    phases = {"patch_epochs": 1, "patch_size": 32, "patches_per_lesion": 2,
              "fine_tune_layers": 2, "fine_tune_epochs": 1, "both_breasts": both_breasts}
    script = (
        "import json, sys; from core.runs.config import TrainConfig; from core.train.fit import train;"
        f"c = TrainConfig(dataset='mias', root={str(synthetic_root)!r}).with_overrides("
        f"**{ {**TINY, **phases}!r});"
        f"r = train(c, {str(tmp_path)!r}); m = r.manifest;"
        "p = sorted({e['phase'] for e in r.events() if e['event'] == 'epoch'});"
        "print(json.dumps([m['status'], m['versions']['backend'], m['val']['n'], p]))"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    status, backend, n, ran = json.loads(result.stdout.strip().splitlines()[-1])
    assert (status, backend) == ("done", "jax") and n > 0
    assert ran == ["fine-tune", "head", "patches"]


@pytest.mark.slow
def test_attention_model_learns_and_localises_on_synthetic_films(keras_home: Path,
                                                                 tmp_path: Path) -> None:
    """Acceptance (issues 3 and 4): trained on SYNTHETIC films of one seed, the default model
    classifies films of another seed (macro-F1 >= 0.6), and its attention peaks on the
    lesion (pointing game >= 0.6, far above a random point in the breast)."""
    train_root = generate(tmp_path / "train", n=140, seed=0, size=512)
    test_root = generate(tmp_path / "test", n=70, seed=1, size=512)
    config = TrainConfig(dataset="mias", root=str(train_root), epochs=20, patience=0,
                         batch_size=16, test_size=0.1, val_fraction=0.15)
    run = train(config, tmp_path / "runs")
    assert run.manifest["status"] == "done"
    result = evaluate_run(run, dataset="mias", root=test_root)
    assert result["synthetic"] is True and result["n"] == 70
    assert result["macro_f1"] >= 0.6, result["per_class"]
    localisation = result["localisation"]
    assert localisation["n_scored"] >= 50
    assert result["pointing_game"] >= 0.6, localisation
    assert result["pointing_game"] >= 5 * localisation["overall"]["chance"], localisation


def test_a_run_keeps_its_dataset_folder_absolute(synthetic_root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A folder typed relative (``../shared/data/mias``) was kept as typed, so ``evaluate``
    from anywhere else failed with "not a folder". The manifest now holds it absolute; a run
    saved before, with a relative root, still evaluates from the folder it was made in."""
    from core.cli import main
    from core.runs.folder import MANIFEST

    monkeypatch.chdir(synthetic_root.parent)
    run = train(_tiny(Path(synthetic_root.name), epochs=1), tmp_path / "runs")
    manifest = json.loads((run.path / MANIFEST).read_text())
    assert manifest["config"]["root"] == str(synthetic_root)
    assert manifest["dataset"]["root"] == str(synthetic_root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["evaluate", str(run.path), "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["n"] > 0

    manifest["config"]["root"] = manifest["dataset"]["root"] = synthetic_root.name  # as before
    (run.path / MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.chdir(synthetic_root.parent)
    assert main(["evaluate", str(run.path), "--json"]) == 0, capsys.readouterr().err
