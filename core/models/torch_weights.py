"""Reading a PyTorch state dict (``.pth``) as NumPy arrays, without torch and without
running anything the file says.

Why this exists: some ImageNet encoders (EfficientNet-Lite) are published only as PyTorch
state dicts, and a ``.pth`` is a pickle. A plain unpickler (and torch's own loader unless
told ``weights_only``) calls whatever function the file names, so a doctored file would
run code the moment it is opened. ``_StateDictUnpickler`` resolves only the few names a state
dict is made of (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and the
typed storages) to objects of this module; any other name is refused before anything is
called. Those objects are immutable and hold no reference to code a ``BUILD`` opcode could
change, so the only calls a file can make are "make an OrderedDict" and "describe a
tensor". Tensors become lazy references first; only after the whole pickle has been read are
their storages' bytes read and checked, and then turned into arrays.

Both containers ``torch.save`` writes are read, recognised by their content:

* zip (PyTorch 1.6 and later): ``<name>/data.pkl`` plus one ``<name>/data/<key>`` member of
  raw bytes per storage (and ``<name>/byteorder``), held to the archive limits of
  ``core.data.archive.Limits`` (``MAMMO_MAX_ARCHIVE_*``) so that a zip bomb is refused
  from its directory, before anything is expanded;
* the legacy stream (before 1.6; the shared EfficientNet-Lite files): five pickles in a row
  (magic number, protocol version, system info, the state dict, its storage keys), then
  each storage as an 8-byte little-endian element count and its bytes. No storage may
  claim more bytes than the file has left.

Every fault (not a zip or torch stream, a forbidden name, a truncated or short storage, a
tensor reaching past its storage, an entry that is not a tensor) is one ``BadConfigError``
naming the file and the fault.
"""

from __future__ import annotations

import io
import math
import mmap
import os
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from core.data.archive import Limits
from core.errors import BadConfigError

#: The number ``torch.save``'s legacy stream starts with, and the only protocol it wrote.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
#: A state dict's pickle is its key names and tensor shapes: kilobytes for a CNN, a few MB
#: for the largest models. Anything far bigger is not a state dict.
MAX_PICKLE_BYTES = 64 * 1024**2
_ZIP_MAGIC = b"PK\x03\x04"
# What damaged or foreign bytes raise from inside pickle, zipfile and struct.
_UNREADABLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
               IndexError, KeyError, OverflowError, RecursionError, struct.error,
               zipfile.BadZipFile, zlib.error, NotImplementedError, UnicodeDecodeError)


class StorageKind(NamedTuple):
    """A typed storage class (``torch.FloatStorage``, ...) as its element type."""

    name: str
    dtype: str  # NumPy type code without byte order; bfloat16 is read as "u2"
    bfloat16: bool = False


#: The storages a state dict can hold, by their pickled class name in module ``torch``.
STORAGE_KINDS: dict[str, StorageKind] = {kind.name: kind for kind in (
    StorageKind("FloatStorage", "f4"), StorageKind("DoubleStorage", "f8"),
    StorageKind("HalfStorage", "f2"), StorageKind("BFloat16Storage", "u2", bfloat16=True),
    StorageKind("LongStorage", "i8"), StorageKind("IntStorage", "i4"),
    StorageKind("ShortStorage", "i2"), StorageKind("CharStorage", "i1"),
    StorageKind("ByteStorage", "u1"), StorageKind("BoolStorage", "b1"),
)}


class StorageRef(NamedTuple):
    """A storage the pickle points to: its key in the container, type and element count."""

    key: str
    kind: StorageKind
    numel: int


class TensorRef(NamedTuple):
    """What ``_rebuild_tensor_v2`` describes: a strided view of a storage."""

    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


class _RebuildTensor:
    """Stands in for ``torch._utils._rebuild_tensor_v2``: checks its arguments and returns a
    ``TensorRef``. Its slots are empty, so it has no ``__dict__`` and no attribute that a
    pickle's ``BUILD`` could set."""

    __slots__ = ()

    def __call__(self, storage: Any, offset: Any, shape: Any, stride: Any,
                 *_ignored: Any) -> TensorRef:
        if not isinstance(storage, StorageRef):
            raise pickle.UnpicklingError("a tensor without a storage")
        if not _whole(offset) or offset < 0:
            raise pickle.UnpicklingError(f"a tensor with storage offset {offset!r}")
        for what, values in (("shape", shape), ("stride", stride)):
            if not isinstance(values, tuple) or not all(_whole(v) and v >= 0 for v in values):
                raise pickle.UnpicklingError(f"a tensor with {what} {values!r}")
        if len(shape) != len(stride):
            raise pickle.UnpicklingError(f"a tensor with shape {shape} and stride {stride}")
        return TensorRef(storage, offset, shape, stride)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_REBUILD = _RebuildTensor()
#: Every global a state dict's pickle may name, and what it becomes here.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _REBUILD,
    **{("torch", name): kind for name, kind in STORAGE_KINDS.items()},
}


class _StateDictUnpickler(pickle.Unpickler):
    """An unpickler that knows only the names in ``_ALLOWED`` and storage persistent ids."""

    def __init__(self, file: BinaryIO, storages: dict[str, StorageRef] | None) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}, which a state dict never holds (a pickle can "
                f"run code through it); only tensors in an OrderedDict are read"
            ) from None

    def persistent_load(self, pid: Any) -> StorageRef:
        if self._storages is None or not isinstance(pid, tuple) or not pid \
                or pid[0] != "storage":
            raise pickle.UnpicklingError(f"an unexpected persistent id {_short(pid)}")
        # zip: (tag, kind, key, location, numel); legacy: the same and a view, always None.
        if len(pid) not in (5, 6) or (len(pid) == 6 and pid[5] is not None):
            raise pickle.UnpicklingError(f"a storage id of a form torch no longer writes: "
                                         f"{_short(pid)}")
        kind, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(kind, StorageKind) or not isinstance(key, str) \
                or not _whole(numel) or numel < 0:
            raise pickle.UnpicklingError(f"a malformed storage id {_short(pid)}")
        known = self._storages.setdefault(key, StorageRef(key, kind, numel))
        if known != (key, kind, numel):
            raise pickle.UnpicklingError(f"storage {key} declared twice, differently")
        return known


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unpickle(file: BinaryIO, storages: dict[str, StorageRef] | None = None) -> Any:
    return _StateDictUnpickler(file, storages).load()


# -- the two containers -------------------------------------------------------------------------
class _Container(NamedTuple):
    """What either container gives: the state dict's unpickled object, the storages it
    points to, a reader of one storage's bytes, and the byte order of those bytes."""

    state: Any
    storages: dict[str, StorageRef]
    read: Callable[[StorageRef], bytes]
    order: str


def _fault(path: Path, fault: str) -> BadConfigError:
    return BadConfigError(f"{path}: {fault}")


def _read_zip(path: Path, file: BinaryIO) -> _Container:
    """A ``torch.save`` zip: its directory is judged against the archive limits before any
    member is expanded, and each storage member must hold the bytes its tensors claim."""
    limits = Limits.from_env()
    archive = zipfile.ZipFile(file)
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise _fault(path, f"a zip of {len(members)} members (at most {limits.max_members})")
    expanded = sum(member.file_size for member in members)
    if expanded > limits.max_bytes:
        raise _fault(path, f"a zip that expands to {expanded} bytes (at most "
                           f"{limits.max_bytes}; MAMMO_MAX_ARCHIVE_BYTES)")
    for member in members:
        if member.file_size > limits.ratio_floor and \
                member.file_size > limits.max_ratio * max(member.compress_size, 1):
            raise _fault(path, f"zip member {member.filename} expands over "
                               f"{limits.max_ratio} times its size (a zip bomb?)")
    pickles = [m for m in members if len(PurePosixPath(m.filename).parts) == 2
               and PurePosixPath(m.filename).name == "data.pkl"]
    if len(pickles) != 1:
        raise _fault(path, "a zip without exactly one <name>/data.pkl: not a torch.save file")
    if pickles[0].file_size > MAX_PICKLE_BYTES:
        raise _fault(path, f"a data.pkl of {pickles[0].file_size} bytes: not a state dict")
    prefix = PurePosixPath(pickles[0].filename).parent
    sizes = {m.filename: m.file_size for m in members}
    order_name = str(prefix / "byteorder")
    order = "little"
    if order_name in sizes:
        order = archive.open(order_name).read(16).decode("ascii", "replace").strip()
    if order not in ("little", "big"):
        raise _fault(path, f"byte order {_short(order)} (neither little nor big)")
    storages: dict[str, StorageRef] = {}
    state = _unpickle(io.BytesIO(archive.read(pickles[0])), storages)

    def read(ref: StorageRef) -> bytes:
        name, needed = str(prefix / "data" / ref.key), _nbytes(ref)
        if name not in sizes:
            raise _fault(path, f"storage {ref.key} is missing ({name})")
        if sizes[name] < needed:
            raise _fault(path, f"storage {ref.key} holds {sizes[name]} bytes, but its "
                               f"{ref.numel} {ref.kind.name} elements need {needed}: too short")
        with archive.open(name) as member:
            return member.read(needed)

    return _Container(state, storages, read, order)


def _read_legacy(path: Path, file: BinaryIO) -> _Container:
    """The legacy stream: the header pickles are checked, and the storages' bytes, which
    follow the pickles in the order of the key list, are read at once. ``file`` must be
    a file whose ``read(n)`` returns what is there (a BytesIO, an mmap), so a length
    field of gigabytes in a doctored pickle is a truncation, not an allocation."""
    try:
        magic = _unpickle(file)
    except _UNREADABLE:
        magic = None
    if magic != LEGACY_MAGIC:
        raise _fault(path, "not a PyTorch state dict (neither a zip archive nor a torch.save "
                           "stream)")
    protocol = _unpickle(file)
    if protocol != LEGACY_PROTOCOL:
        raise _fault(path, f"a torch.save stream of protocol {_short(protocol)}, not "
                           f"{LEGACY_PROTOCOL}")
    system = _unpickle(file)
    big = isinstance(system, dict) and system.get("little_endian") is False
    order = "big" if big else "little"
    storages: dict[str, StorageRef] = {}
    state = _unpickle(file, storages)
    keys = _unpickle(file)
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys) \
            or sorted(keys) != sorted(storages):
        raise _fault(path, "its list of storage keys does not match the storages it uses")
    left = _bytes_left(file)
    data: dict[str, bytes] = {}
    for key in keys:
        ref = storages[key]
        header = file.read(8)
        if len(header) < 8:
            raise _fault(path, f"truncated: storage {key} is missing")
        (count,) = struct.unpack(">q" if big else "<q", header)
        left -= 8
        if count != ref.numel:
            raise _fault(path, f"storage {key} holds {count} elements where its tensors "
                               f"expect {ref.numel}")
        needed = _nbytes(ref)
        if needed > left:
            raise _fault(path, f"storage {key} needs {needed} bytes but only {left} are left: "
                               f"too short (truncated?)")
        data[key] = file.read(needed)
        left -= needed
    return _Container(state, storages, lambda ref: data[ref.key], order)


def _bytes_left(file: BinaryIO) -> int:
    here = file.tell()
    file.seek(0, io.SEEK_END)  # an mmap's seek returns None, not the position
    end = file.tell()
    file.seek(here)
    return end - here


def _nbytes(ref: StorageRef) -> int:
    return ref.numel * np.dtype(ref.kind.dtype).itemsize


# -- tensors --------------------------------------------------------------------------------
def _array(path: Path, name: str, ref: TensorRef, raw: bytes, order: str) -> np.ndarray:
    """The tensor's values as a new C-ordered array, once its view is known to fit."""
    kind = ref.storage.kind
    dtype = np.dtype(kind.dtype).newbyteorder("<" if order == "little" else ">")
    count = math.prod(ref.shape)
    if not count:
        return np.zeros(ref.shape, dtype=dtype.newbyteorder("="))
    last = ref.offset + sum((size - 1) * step for size, step in zip(ref.shape, ref.stride))
    if last >= ref.storage.numel or count > ref.storage.numel:
        raise _fault(path, f"tensor {name} of shape {ref.shape} reaches past its storage "
                           f"{ref.storage.key} of {ref.storage.numel} elements: too short")
    values = np.frombuffer(raw, dtype=dtype, count=ref.storage.numel)
    # A dimension of one is never stepped along, whatever stride the file gives it.
    steps = tuple(step * dtype.itemsize if size > 1 else 0
                  for size, step in zip(ref.shape, ref.stride))
    view = np.lib.stride_tricks.as_strided(values[ref.offset:], shape=ref.shape, strides=steps,
                                           writeable=False)
    array = np.array(view, dtype=dtype.newbyteorder("="), order="C")
    if kind.bfloat16:  # the top half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A PyTorch state dict file as ``{key: array}``, in the file's order.

    Only what a state dict is made of is accepted: an (Ordered)dict whose values are all
    tensors. Anything else, and any damage, is one ``BadConfigError`` naming ``path``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:
            if file.read(4) == _ZIP_MAGIC:
                file.seek(0)
                container = _read_zip(path, file)
                tensors, raw = _contents(path, container)
            elif not os.fstat(file.fileno()).st_size:
                raise _fault(path, "an empty file, not a PyTorch state dict")
            else:
                with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    container = _read_legacy(path, mapped)  # type: ignore[arg-type]
                    tensors, raw = _contents(path, container)
            return {name: _array(path, name, ref, raw[ref.storage.key], container.order)
                    for name, ref in tensors.items()}
    except BadConfigError:
        raise
    except pickle.UnpicklingError as error:
        raise _fault(path, f"refused: {error}") from None
    except OSError as error:
        raise _fault(path, f"cannot read it ({error.strerror or error})") from None
    except _UNREADABLE as error:
        raise _fault(path, f"not a readable PyTorch state dict ({type(error).__name__}: "
                           f"{_short(str(error))})") from None


def _contents(path: Path, container: _Container
              ) -> tuple[dict[str, TensorRef], dict[str, bytes]]:
    """The named tensors, and the bytes of each storage they use (read only now, once the
    pickle has been read and found to be a state dict)."""
    tensors = _tensors(path, container.state)
    raw = {ref.storage.key: container.read(ref.storage) for ref in tensors.values()}
    return tensors, raw


def _tensors(path: Path, state: Any) -> dict[str, TensorRef]:
    if not isinstance(state, dict):
        raise _fault(path, f"holds a {type(state).__name__}, not a state dict")
    bad = [key for key, value in state.items()
           if not isinstance(key, str) or not isinstance(value, TensorRef)]
    if bad:
        raise _fault(path, f"not a state dict: entry {_short(bad[0])} is not a named tensor")
    return dict(state)
