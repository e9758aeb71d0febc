"""Which decoder turns a compressed DICOM's pixel data into numbers, chosen once, here.

Archives hold films as JPEG-LS, JPEG lossless (process 14), JPEG 2000, 12-bit JPEG
(process 4) and RLE as well as uncompressed. pydicom parses them all but decodes none of
the JPEG family itself: it calls plugins. The project installs two (``requirements.txt``
says why): GDCM (``python-gdcm``, BSD) for the JPEG family, and ``pylibjpeg-rle`` (MIT)
for RLE, which decodes a full-field film about ten times faster than pydicom's own numpy
RLE decoder. Both are permissive, so the tool stays free to share; the GPL decoder
(``pylibjpeg-libjpeg``) is installed only for the tests, as an independent reference.

One gap is filled here: GDCM decodes 12-bit JPEG (process 4) correctly, but pydicom's GDCM
plugin refuses it by a blanket rule, which would leave that syntax to the GPL decoder
alone. ``_decode_frame`` is a pydicom decoder plugin that hands such a frame to GDCM
directly, and ``plugin_for`` makes the reader prefer it for that syntax, so a 12-bit JPEG
decodes the same way whatever else happens to be installed. Every other syntax is left to
pydicom's own order of plugins (GDCM first for the JPEG family, pylibjpeg first for RLE).

The JPEG family is decoded in a child process (``decode``): GDCM throws C++ exceptions that
nothing catches on some damaged streams, and those abort the whole process, which would
take the app and every other film's work with it. The fuzz test found one with 26 bytes cut
from a 12-bit JPEG (``tests/test_dicom_decoders.py`` keeps it). A crash in the child costs
that film alone. RLE and uncompressed films decode here: pylibjpeg-rle's Rust panics reach
Python as exceptions.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.pixels.decoders.base import DecodeRunner

try:
    import gdcm

    HAVE_GDCM = True
except ImportError:  # the reader then says which package a compressed film needs
    HAVE_GDCM = False

#: The label of the plugin registered here, as pydicom's ``decoding_plugin`` names it.
GDCM_12BIT = "gdcm-12bit"
#: What pydicom reports as missing when GDCM is not installed (its plugin protocol).
DECODER_DEPENDENCIES = {uid.JPEGExtended12Bit: ("python-gdcm",)}
#: What to install for a compressed syntax no installed plugin decodes (requirements.txt).
INSTALL_HINT = "install the decoders in requirements.txt (python-gdcm, pylibjpeg, pylibjpeg-rle)"

_REGISTER_LOCK = threading.Lock()


def is_available(syntax: str) -> bool:
    """pydicom's plugin protocol: whether this plugin can decode ``syntax`` here."""
    return HAVE_GDCM and syntax in DECODER_DEPENDENCIES


def register() -> None:
    """Add the 12-bit JPEG plugin to pydicom's decoder once (idempotent, thread-safe:
    pydicom's ``add_plugin`` is neither)."""
    decoder = get_decoder(uid.JPEGExtended12Bit)
    with _REGISTER_LOCK:
        try:
            decoder.add_plugin(GDCM_12BIT, (__name__, "_decode_frame"))
        except ValueError:  # "already has a plugin named ...": registered before
            pass


def plugin_for(syntax: str) -> str:
    """The plugin the reader asks pydicom for: ours for 12-bit JPEG when GDCM is here, else
    ``""`` (pydicom's own choice among those installed)."""
    if syntax == uid.JPEGExtended12Bit and is_available(syntax):
        return GDCM_12BIT
    return ""


def _decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """One JPEG process 2/4 frame (8 or 12 bits) decoded by GDCM, as pydicom's GDCM plugin
    does for the other JPEG syntaxes, with the decoded length checked (GDCM returns what it
    has rather than raising)."""
    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(src)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())
    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((runner.columns, runner.rows, 1))
    image.SetDataElement(element)
    photometric = gdcm.PhotometricInterpretation.GetPIType(runner.photometric_interpretation)
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(photometric))
    if runner.samples_per_pixel > 1:
        image.SetPlanarConfiguration(runner.planar_configuration)
    syntax = gdcm.TransferSyntax.GetTSType(str.__str__(runner.transfer_syntax))
    image.SetTransferSyntax(gdcm.TransferSyntax(syntax))
    bits = runner.bits_stored
    image.SetPixelFormat(gdcm.PixelFormat(runner.samples_per_pixel, runner.bits_allocated,
                                          bits, bits - 1, runner.pixel_representation))
    buffer = image.GetBuffer()  # a str, or None when GDCM could not decode the frame
    if buffer is None:
        raise ValueError("GDCM could not decode the 12-bit JPEG frame (corrupt or truncated)")
    frame = buffer.encode("utf-8", "surrogateescape")
    expected = runner.rows * runner.columns * runner.samples_per_pixel * runner.bits_allocated // 8
    if len(frame) != expected:
        raise ValueError(f"GDCM decoded {len(frame):,} bytes of a 12-bit JPEG frame where "
                         f"{expected:,} were expected (corrupt or truncated)")
    return frame


# -- decoding in a child process ----------------------------------------------------------------
#: The syntaxes GDCM decodes, whose faults can abort a process: decoded in a child.
ISOLATED_SYNTAXES = (frozenset(uid.JPEGTransferSyntaxes) | frozenset(uid.JPEGLSTransferSyntaxes)
                     | frozenset(uid.JPEG2000TransferSyntaxes))
#: Child processes kept for decoding (each about 100 MB: Python, NumPy, pydicom, GDCM).
DECODE_WORKERS = 2
#: The longest one film's decoding may take; a full-field JPEG 2000 film takes about a second.
DECODE_TIMEOUT_S = 120.0


class DecoderCrashed(Exception):
    """The decoder died or hung on a film's pixel data: the film is damaged or hostile."""


_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def decode(ds: Dataset, syntax: str) -> np.ndarray:
    """``ds``'s pixel array, decoded by the plugin ``plugin_for`` picks: in a child process
    for ``ISOLATED_SYNTAXES``, here for the rest. Raises what pydicom raises for a film it
    cannot decode, and ``DecoderCrashed`` when the child dies or passes ``DECODE_TIMEOUT_S``.

    The children are shared by every thread (a pool, started on first use from a fork server
    that has already imported this module, so a new child costs milliseconds). A crash
    breaks the whole pool, and with it the other films being decoded at that moment; each
    such film is then decoded once more in a process of its own, so that only the film that
    crashes its decoder alone is refused."""
    if syntax not in ISOLATED_SYNTAXES:
        return _pixel_array(ds, syntax)
    pool = _pool()
    try:
        return _await(pool, pool.submit(_pixel_array, ds, syntax))
    except BrokenProcessPool:
        _discard(pool)
    alone = ProcessPoolExecutor(max_workers=1, mp_context=_context())
    try:
        return _await(alone, alone.submit(_pixel_array, ds, syntax))
    except BrokenProcessPool:
        raise DecoderCrashed("the decoder crashed on its pixel data (a damaged or hostile "
                             "compressed stream)") from None
    finally:
        _discard(alone)


def _pixel_array(ds: Dataset, syntax: str) -> np.ndarray:
    register()
    ds.pixel_array_options(decoding_plugin=plugin_for(syntax))
    return ds.pixel_array


def _await(pool: ProcessPoolExecutor, future: object) -> np.ndarray:
    try:
        return future.result(timeout=DECODE_TIMEOUT_S)  # type: ignore[attr-defined]
    except FutureTimeout:
        _discard(pool)
        raise DecoderCrashed(f"the decoder took more than {DECODE_TIMEOUT_S:g} s on its pixel "
                             "data and was stopped") from None


def _context() -> multiprocessing.context.BaseContext:
    """A fork server, not ``fork`` (this process may run TensorFlow's or Streamlit's threads)
    nor ``spawn`` (a fresh interpreter per child costs a second of imports)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _pool() -> ProcessPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ProcessPoolExecutor(max_workers=DECODE_WORKERS, mp_context=_context())
        return _POOL


def _discard(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool``'s children now (a hung one too) and forget the pool."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is pool:
            _POOL = None
    # ProcessPoolExecutor has no kill() before Python 3.14; its children are in _processes.
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
