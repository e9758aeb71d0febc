"""Several processes at once: they never corrupt the feature cache, never share a run folder
and never show a reader half a manifest.

The app serves many sessions, the training queue runs jobs in child processes, and a user
may start the CLI beside both; threads share one interpreter (tests/train/test_features.py
covers them), so these tests start real processes. Two sessions submitting training at once
is tests/train/test_jobs.py's (one job runs, the other queues).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from conftest import REPO
from core.models.features import cached_features
from core.runs.folder import list_runs

PROCESSES = 4
IMAGES, SIDE, CHANNELS = 24, 64, 32  # 256 KB of features per image: a write takes a while


def _start(code: str, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen[str]) -> str:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-2000:]
    return stdout


def _images() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 255, (IMAGES, SIDE, SIDE), dtype=np.uint8)


def _encode(batch: np.ndarray) -> np.ndarray:
    return np.repeat(batch[..., None].astype(np.float32) / 255, CHANNELS, axis=-1)


_COMMON = f"""
import sys, time
from pathlib import Path
import numpy as np
IMAGES, SIDE, CHANNELS = {IMAGES}, {SIDE}, {CHANNELS}
def wait(go):
    while not Path(go).exists():
        time.sleep(0.001)
"""

_CACHE_WRITER = _COMMON + """
from core.models.features import cached_features
cache, go, out, shift = sys.argv[1:5]
images = np.random.default_rng(7).integers(0, 255, (IMAGES, SIDE, SIDE), dtype=np.uint8)
order = np.roll(np.arange(IMAGES), int(shift))  # each process starts at another image

def encode(batch):
    return np.repeat(batch[..., None].astype(np.float32) / 255, CHANNELS, axis=-1)

wait(go)
features = cached_features(encode, images[order], "shared", Path(cache), batch_size=2)
np.save(out, features[np.argsort(order)], allow_pickle=False)
"""

_CACHE_READER = _COMMON + """
folder, go, done = Path(sys.argv[1]) / "features" / "shared", sys.argv[2], Path(sys.argv[3])
wait(go)
reads = torn = 0
while not done.exists():
    for file in folder.glob("[!.]*.npy") if folder.is_dir() else ():
        try:
            array = np.load(file, allow_pickle=False)
        except FileNotFoundError:
            continue
        except (ValueError, EOFError):  # half a file
            torn += 1
            continue
        reads += 1
        torn += array.shape != (SIDE, SIDE, CHANNELS)
print(reads, torn)
"""


def test_processes_filling_one_feature_cache_at_once_never_corrupt_it(tmp_path: Path) -> None:
    go, done = tmp_path / "go", tmp_path / "done"
    writers = [_start(_CACHE_WRITER, tmp_path, go, tmp_path / f"out{i}.npy", i * IMAGES // 4)
               for i in range(PROCESSES)]
    reader = _start(_CACHE_READER, tmp_path, go, done)
    time.sleep(0.5)  # let every interpreter reach the start line
    go.touch()
    for writer in writers:
        _finish(writer)
    done.touch()
    reads, torn = map(int, _finish(reader).split())

    expected = _encode(_images()).astype(np.float16)
    for i in range(PROCESSES):
        np.testing.assert_array_equal(np.load(tmp_path / f"out{i}.npy"), expected)
    assert torn == 0 and reads > 0  # a reader saw only whole files while they were written
    folder = tmp_path / "features" / "shared"
    files = sorted(folder.iterdir())
    assert len(files) == IMAGES and not [f for f in files if f.name.startswith(".")]
    calls: list[int] = []
    again = cached_features(lambda b: calls.append(len(b)) or _encode(b), _images(), "shared",
                            tmp_path)
    np.testing.assert_array_equal(again, expected)
    assert calls == []  # every entry they wrote is complete and used


_RUN_MAKER = _COMMON + """
from core.runs.folder import create_run
root, go, index = sys.argv[1:4]
wait(go)
print(create_run("same name", {"writer": int(index)}, Path(root)).path)
"""


def test_processes_creating_runs_of_one_name_at_once_get_their_own_folders(
        tmp_path: Path) -> None:
    go = tmp_path / "go"
    makers = [_start(_RUN_MAKER, tmp_path / "runs", go, i) for i in range(6)]
    time.sleep(0.5)
    go.touch()
    paths = [Path(_finish(maker).strip()) for maker in makers]
    assert len(set(paths)) == 6
    for index, path in enumerate(paths):
        assert path.parent == tmp_path / "runs"
        assert json.loads((path / "manifest.json").read_text())["writer"] == index
    assert len(list_runs(tmp_path / "runs")) == 6


_MANIFEST_WRITER = _COMMON + """
from core.runs.folder import Run
folder, go, index = sys.argv[1:4]
run = Run(Path(folder))
wait(go)
for round in range(60):
    run.update_manifest(writer=int(index), round=round, padding="x" * 200_000)
"""

_MANIFEST_READER = _COMMON + """
from core.runs.folder import Run
folder, go, done = sys.argv[1], sys.argv[2], Path(sys.argv[3])
run = Run(Path(folder))
wait(go)
reads = 0
while not done.exists():
    manifest = run.manifest  # raises on half a file
    assert len(manifest["padding"]) == 200_000
    reads += 1
print(reads)
"""


def test_a_reader_never_sees_half_a_manifest_being_rewritten(tmp_path: Path) -> None:
    from core.runs.folder import create_run

    run = create_run("shared", {"padding": "x" * 200_000}, tmp_path)
    go, done = tmp_path / "go", tmp_path / "done"
    writers = [_start(_MANIFEST_WRITER, run.path, go, i) for i in range(2)]
    reader = _start(_MANIFEST_READER, run.path, go, done)
    time.sleep(0.5)
    go.touch()
    for writer in writers:
        _finish(writer)
    done.touch()
    assert int(_finish(reader)) > 0
    assert run.manifest["round"] == 59 and not list(run.path.glob(".*"))
