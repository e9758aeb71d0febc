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
"""

from __future__ import annotations

import threading

from pydicom import uid
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
