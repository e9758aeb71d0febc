"""PyTorch state dicts read without torch: both containers ``torch.save`` writes, and every
kind of foreign or hostile file refused with one error naming it, without running it.

The files are written here byte by byte (``factories.torch_file``), so each test says
exactly what the file holds; the genuine EfficientNet-Lite files are read in
``test_efficientnet_lite.py``.
"""

from __future__ import annotations

import pickle
import shlex
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.errors import BadConfigError
from core.models.backbones import build_backbone
from core.models.torch_weights import STORAGE_KINDS, load_state_dict
from factories import (
    pickle_global,
    pickle_int,
    pickle_str,
    pickle_tuple,
    torch_dict,
    torch_file,
    torch_tensor,
)

CONTAINERS = ["legacy", "zip"]
MATRIX = np.arange(6, dtype=np.float32).reshape(2, 3) / 4


def _good(path: Path, legacy: bool) -> Path:
    """A state dict of a matrix, its transpose (a strided view of the same storage), a
    slice at an offset, a float16 vector and a step counter (int64 scalar)."""
    half = np.array([0.5, -2.0, 1024.0], dtype=np.float16)
    state = torch_dict([
        ("fc.weight", torch_tensor("0", "float32", 6, (2, 3), (3, 1), legacy=legacy)),
        ("fc.weight_t", torch_tensor("0", "float32", 6, (3, 2), (1, 3), legacy=legacy)),
        ("fc.row", torch_tensor("0", "float32", 6, (3,), (1,), offset=3, legacy=legacy)),
        ("bn.scale", torch_tensor("1", "float16", 3, (3,), (1,), legacy=legacy)),
        ("bn.num_batches_tracked", torch_tensor("2", "int64", 1, (), (), legacy=legacy)),
    ])
    storages = {"0": MATRIX.tobytes(), "1": half.tobytes(),
                "2": np.array([7], np.int64).tobytes()}
    return torch_file(path, state, storages, {"0": 6, "1": 3, "2": 1}, legacy)


@pytest.mark.parametrize("container", CONTAINERS)
def test_both_containers_read_back_what_was_written(tmp_path: Path, container: str) -> None:
    state = load_state_dict(_good(tmp_path / "good.pth", container == "legacy"))
    assert list(state) == ["fc.weight", "fc.weight_t", "fc.row", "bn.scale",
                           "bn.num_batches_tracked"]
    np.testing.assert_array_equal(state["fc.weight"], MATRIX)
    np.testing.assert_array_equal(state["fc.weight_t"], MATRIX.T)
    assert state["fc.weight_t"].flags.c_contiguous and state["fc.weight"].dtype == np.float32
    np.testing.assert_array_equal(state["fc.row"], MATRIX[1])
    np.testing.assert_array_equal(state["bn.scale"], [0.5, -2.0, 1024.0])
    assert state["bn.scale"].dtype == np.float16
    assert state["bn.num_batches_tracked"].shape == () and state["bn.num_batches_tracked"] == 7


def test_the_shared_efficientnet_lite_file_is_a_state_dict(weights_root: Path) -> None:
    state = load_state_dict(weights_root / "efficientnet-lite0-57934424.pth")
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    params = sum(v.size for k, v in state.items() if not k.endswith(("running_mean",
                 "running_var", "num_batches_tracked")))
    assert params == 4_652_008  # the README's 4.65 M


# -- hostile pickles -----------------------------------------------------------------------------
def _touching(marker: Path) -> bytes:
    """A pickled call of ``os.system("touch MARKER")``: what a doctored .pth can hide."""
    command = pickle_str(f"touch {shlex.quote(str(marker))}")
    return pickle_global("os", "system") + pickle_tuple([command]) + b"R"


@pytest.mark.parametrize("container", CONTAINERS)
def test_a_pickle_that_would_run_code_is_refused_without_running_it(
        tmp_path: Path, container: str) -> None:
    marker = tmp_path / "pickle-ran"
    legacy = container == "legacy"
    state = torch_dict([  # the payload comes first, so a plain unpickler reaches it at once
        ("payload", _touching(marker)),
        ("fc.weight", torch_tensor("0", "float32", 6, (2, 3), (3, 1), legacy=legacy)),
    ])
    path = torch_file(tmp_path / "hostile.pth", state, {"0": MATRIX.tobytes()}, {"0": 6}, legacy)

    for load in (load_state_dict,  # directly, and as a user's --weights file
                 lambda file: build_backbone("efficientnet_lite0", 64, weights=file)):
        with pytest.raises(BadConfigError) as caught:
            load(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: refused") and "os.system" in message
        assert "\n" not in message
    assert not marker.exists()
    # The proof that the check above can fail: a plain unpickler runs the payload (and then
    # stops at the first torch name, torch not being installed).
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(state)
    assert marker.exists()


@pytest.mark.parametrize("module, name", [
    ("builtins", "eval"), ("builtins", "getattr"), ("torch", "load"),
    ("torch._utils", "_rebuild_parameter"), ("collections", "defaultdict"),
    ("numpy.core.multiarray", "_reconstruct"),
])
def test_only_the_names_a_state_dict_is_made_of_are_resolved(
        tmp_path: Path, module: str, name: str) -> None:
    state = torch_dict([("x", pickle_global(module, name))])
    path = torch_file(tmp_path / "foreign.pth", state, {}, {}, legacy=False)
    with pytest.raises(BadConfigError, match=f"refused: it names {module}.{name}"):
        load_state_dict(path)


@pytest.mark.parametrize("build_state", [b"}(X\x05\x00\x00\x00dtypeX\x02\x00\x00\x00f8u",
                                         b"N}(X\x05\x00\x00\x00dtypeX\x02\x00\x00\x00f8u\x86"])
def test_a_pickle_cannot_change_the_stand_ins(tmp_path: Path, build_state: bytes) -> None:
    """``BUILD`` sets attributes on the object below it; on what ``find_class`` returns that
    would change every later load. Both of its forms (a dict, and a slot-state pair) fail."""
    state = b"\x80\x02" + pickle_global("torch", "FloatStorage") + build_state + b"b."
    path = torch_file(tmp_path / "build.pth", state, {}, {}, legacy=False)
    with pytest.raises(BadConfigError, match="not a readable PyTorch state dict"):
        load_state_dict(path)
    assert STORAGE_KINDS["FloatStorage"].dtype == "f4"
    np.testing.assert_array_equal(load_state_dict(_good(tmp_path / "good.pth", False))
                                  ["fc.weight"], MATRIX)


# -- foreign and damaged files ------------------------------------------------------------------
def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _bomb(path: Path) -> Path:
    """A zip whose data.pkl expands 32 MiB of zeros from a few dozen kilobytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open("archive/data.pkl", "w") as member:
        for _ in range(32):
            member.write(bytes(1024**2))
    return path


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _tensor_file(path: Path, numel: int, shape: tuple[int, ...], data: bytes,
                 legacy: bool) -> Path:
    state = torch_dict([("w", torch_tensor("0", "float32", numel, shape, (1,) * len(shape),
                                           legacy=legacy))])
    return torch_file(path, state, {"0": data}, {"0": numel}, legacy)


FAULTS = {
    "text": (lambda p: _written(p, b"just some text\n"),
             "not a PyTorch state dict (neither a zip archive nor a torch.save stream)"),
    "empty": (lambda p: _written(p, b""), "an empty file"),
    "another pickle": (lambda p: _written(p, pickle.dumps(12345)),
                       "not a PyTorch state dict"),
    "zip bomb": (_bomb, "expands over 200 times its size (a zip bomb?)"),
    "zip of something else": (lambda p: _zip(p, {"readme.txt": b"hello"}),
                              "a zip without exactly one <name>/data.pkl"),
    "zip storage too short": (lambda p: _tensor_file(p, 6, (6,), bytes(8), legacy=False),
                              ("storage 0 holds 8 bytes, but its 6 FloatStorage elements need "
                               "24: too short")),
    "legacy storage too short": (lambda p: _tensor_file(p, 6, (6,), bytes(8), legacy=True),
                                 "storage 0 needs 24 bytes but only 8 are left: too short"),
    "tensor past its storage": (lambda p: _tensor_file(p, 2, (4,), bytes(8), legacy=False),
                                ("tensor w of shape (4,) reaches past its storage 0 of 2 "
                                 "elements")),
    "not a dict": (lambda p: torch_file(p, b"\x80\x02]q\x00.", {}, {}, legacy=False),
                   "holds a list, not a state dict"),
    "a value that is no tensor": (
        lambda p: torch_file(p, torch_dict([("epoch", pickle_int(3))]), {}, {}, legacy=False),
        "not a state dict: entry 'epoch' is not a named tensor"),
    "a module persistent id": (
        lambda p: torch_file(p, b"\x80\x02" + pickle_tuple([pickle_str("module")]) + b"Q.",
                             {}, {}, legacy=False),
        "refused: an unexpected persistent id ('module',)"),
    "truncated legacy stream": (
        lambda p: _written(p, _good(p, True).read_bytes()[:300]),
        "not a readable PyTorch state dict"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_is_one_error_naming_the_file(tmp_path: Path, fault: str) -> None:
    make, expected = FAULTS[fault]
    path = make(tmp_path / "weights.pth")
    with pytest.raises(BadConfigError) as caught:
        load_state_dict(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert expected in message


def test_the_archive_limits_apply_to_zips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _good(tmp_path / "good.pth", legacy=False)
    monkeypatch.setenv("MAMMO_MAX_ARCHIVE_BYTES", "64")
    with pytest.raises(BadConfigError, match="expands to .* bytes .*MAMMO_MAX_ARCHIVE_BYTES"):
        load_state_dict(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BadConfigError, match=f"{tmp_path / 'absent.pth'}: cannot read it"):
        load_state_dict(tmp_path / "absent.pth")
