"""Image intake: bytes from an upload -> validated 8-bit greyscale pixels.

Only PNG, JPEG and DICOM are accepted, identified by content (magic bytes), never
by file name or client-sent content type. Every failure is an ``ImageIntakeError``
with a stable ``code`` the web layer can map to a user-facing message.

Decoding is bounded by construction, because one hostile upload must not be able to
take the server down:

* every size is checked from headers before pixels are decoded (pixel budget, longest
  side; for DICOM also the exact length of native pixel data, and the own header of a
  compressed frame);
* deflated DICOM is inflated by us with a cap (what the declared image needs plus a
  margin), never handed whole to pydicom, which would inflate it without a limit;
* DICOM transfer syntaxes are an allow-list; the rest is refused by name;
* working copies are uint8/uint16 (float32 only once shrunk): the decoded picture is
  shrunk early to at most ``max_output_side`` (the model reads 224 px, the viewer ~2048);
* the structure is bounded before any parser builds objects from it: DICOM elements read
  (``DICOM_MAX_READS``), the length of every attribute the decode reads, encapsulated fragments
  and offset tables; PNG chunks and JPEG marker segments and scans (a Python object per element,
  chunk or marker, or a pass over every coefficient per scan, is what a small file multiplies);
* ``DecodeSlots`` caps how many decodes run at once in a process.

Identifying text in the pixels cannot be stripped like a tag: a DICOM whose header says text is
burned in (``BurnedInAnnotation`` YES) or that is a secondary capture (a screenshot or scan of an
image) is refused or flagged (``DecodedImage.pixel_phi``) by the caller's policy, from its header.
The technical tags kept are validated too: code strings against PS3.5's rules (and for
ViewPosition/Modality a vocabulary), numbers as numbers; an invalid value is dropped, not stored,
and its keyword listed under ``"_dropped"``.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DICOM_MAGIC = b"DICM"
DICOM_MAGIC_OFFSET = 128

# Stable error codes (the Django side maps them to messages / HTTP statuses).
UNSUPPORTED_FILE_TYPE = "unsupported_file_type"
CORRUPT_IMAGE = "corrupt_image"
IMAGE_TOO_LARGE = "image_too_large"
IMAGE_TOO_SMALL = "image_too_small"
DECOMPRESSION_BOMB = "decompression_bomb"
DICOM_NO_PIXEL_DATA = "dicom_no_pixel_data"
EMPTY_FILE = "empty_file"
SERVER_BUSY = "server_busy"  # not about the file: every decode slot stayed taken; retry later
DICOM_BURNED_IN_PHI = "dicom_burned_in_phi"  # BurnedInAnnotation YES and the policy refuses it
DICOM_SECONDARY_CAPTURE = "dicom_secondary_capture"  # a secondary capture and the policy refuses it

# Why a DICOM's pixels may show identifying text (``DecodedImage.pixel_phi``), and what a caller
# may do about each: refuse the upload, flag the image (kept, never used for training) or accept.
BURNED_IN_ANNOTATION = "burned_in_annotation"
SECONDARY_CAPTURE = "secondary_capture"
PIXEL_PHI_POLICIES = ("refuse", "flag", "accept")
# Secondary Capture Image Storage and its multi-frame variants (.7.1 to .7.4); "...1.1.77" (VL) is not one.
SECONDARY_CAPTURE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"

# Limits sized for chest radiographs: the largest CR/DR detectors are 43 x 43 cm at
# ~0.1 mm pixels, i.e. about 4,300 x 4,300 (~18.5 MP). Anything beyond this is not a chest
# X-ray we need, and at 16 bits it already costs ~50 MB per copy.
DEFAULT_MAX_PIXELS = 25_000_000
DEFAULT_MAX_SIDE = 5_000
DEFAULT_MIN_SIDE = 64
# Decoded pictures are shrunk (area-averaged) to this longest side: the model reads 224 px
# and the review viewer needs no more than ~2048, so nothing larger is kept in memory or storage.
DEFAULT_MAX_OUTPUT_SIDE = 2048

# Technical DICOM attributes safe to keep (allow-list: anything not named here,
# in particular patient, institution, physician, date/time and UID tags, is dropped).
DICOM_TECHNICAL_TAGS = (
    "Modality",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "ViewPosition",
    "BodyPartExamined",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "KVP",
    "ExposureTime",
    "Exposure",
)


class ImageIntakeError(ValueError):
    """An upload that cannot become a usable image; ``code`` is stable, ``message`` is human."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass
class DecodedImage:
    pixels: np.ndarray  # 2-D uint8, HxW, 0 = black; longest side at most the decode's max_output_side
    source_format: str  # 'png' | 'jpeg' | 'dicom'
    width: int  # of ``pixels``
    height: int
    technical: dict[str, str | float | int | list[str]] = field(default_factory=dict)  # DICOM only
    # Signals (BURNED_IN_ANNOTATION, SECONDARY_CAPTURE) whose policy was "flag": the pixels may
    # show identifying text. Empty for PNG/JPEG (nothing in their headers can say so).
    pixel_phi: tuple[str, ...] = ()


class DecodeSlots:
    """At most ``size`` decodes at once (per process, across threads).

    A decode holds a working copy of up to ~100 MB for the largest accepted image; without a
    cap, N simultaneous uploads hold N of them. A caller waits up to ``wait_s`` seconds for a
    slot and then gets ``server_busy`` rather than queueing without end.
    """

    def __init__(self, size: int, *, wait_s: float = 5.0) -> None:
        if size < 1:
            raise ValueError(f"DecodeSlots needs at least one slot, got {size}")
        self.size = size
        self.wait_s = wait_s
        self._semaphore = threading.BoundedSemaphore(size)

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._semaphore.acquire(timeout=max(0.0, self.wait_s)):
            raise ImageIntakeError(
                SERVER_BUSY, "The server is busy decoding other images. Please try again in a few seconds."
            )
        try:
            yield
        finally:
            self._semaphore.release()


def sniff_format(data: bytes) -> str | None:
    """Return 'png', 'jpeg' or 'dicom' from magic bytes, else None."""
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    # Strict: a DICOM Part-10 file with its 128-byte preamble and 'DICM' prefix.
    if data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == DICOM_MAGIC:
        return "dicom"
    return None


@dataclass(frozen=True)
class _Limits:
    max_pixels: int
    min_side: int
    max_side: int
    max_output_side: int


@dataclass(frozen=True)
class _PixelPhiPolicy:
    """What to do with each signal of identifying text in the pixels (see PIXEL_PHI_POLICIES)."""

    burned_in: str
    secondary_capture: str

    def __post_init__(self) -> None:
        for name in ("burned_in", "secondary_capture"):
            if getattr(self, name) not in PIXEL_PHI_POLICIES:
                raise ValueError(f"{name} must be one of {', '.join(PIXEL_PHI_POLICIES)}, not {getattr(self, name)!r}")

    def for_signal(self, signal: str) -> str:
        return self.burned_in if signal == BURNED_IN_ANNOTATION else self.secondary_capture


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    max_side: int = DEFAULT_MAX_SIDE,
    max_output_side: int = DEFAULT_MAX_OUTPUT_SIDE,
    slots: DecodeSlots | None = None,
    burned_in: str = "refuse",
    secondary_capture: str = "flag",
) -> DecodedImage:
    """Decode PNG/JPEG/DICOM bytes to 8-bit greyscale, or raise ImageIntakeError.

    ``max_pixels``/``max_side``/``min_side`` judge the source image (before decoding);
    the result is shrunk to at most ``max_output_side`` on its longest side. With ``slots``,
    the decode first takes one of them (``server_busy`` when none frees up in time).
    ``burned_in``/``secondary_capture`` ("refuse", "flag" or "accept") say what happens to a
    DICOM whose header says its pixels may show identifying text (see ``pixel_phi_signals``).
    """
    phi_policy = _PixelPhiPolicy(burned_in, secondary_capture)  # a bad value fails before any work
    if not data:
        raise ImageIntakeError(EMPTY_FILE, "The file is empty.")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageIntakeError(
            UNSUPPORTED_FILE_TYPE, "Unsupported file type: only PNG, JPEG and DICOM images are accepted."
        )
    limits = _Limits(max_pixels, min_side, max_side, max_output_side)
    with slots.hold() if slots is not None else _no_slot():
        if fmt == "dicom":
            return _decode_dicom(data, limits, phi_policy)
        return _decode_raster(data, fmt, limits)


@contextmanager
def _no_slot() -> Iterator[None]:
    yield


# zlib level 1 with run-length matching: for X-rays (after PNG's row filters) as small as the
# default level 6 and 1.5-5x faster to write (256 px: 8.4 -> 1.6 ms; 1,024 px: 55 -> 28 ms).
PNG_FAST = {"compress_level": 1, "compress_type": zlib.Z_RLE}


def encode_png(pixels: np.ndarray) -> bytes:
    """Encode a uint8 grey (HxW), RGB or RGBA (HxWx3/4) array as a metadata-free PNG."""
    if pixels.dtype != np.uint8:
        raise ValueError(f"encode_png expects uint8 pixels, got {pixels.dtype}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise ValueError(f"encode_png expects HxW or HxWx3/4, got shape {pixels.shape}")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", **PNG_FAST)
    return buf.getvalue()


def thumbnail_png(pixels: np.ndarray, max_side: int = 160) -> bytes:
    """A small PNG of decoded pixels for lists (area-averaged, aspect kept): a worklist shows
    dozens of these instead of the 2,048 px originals."""
    small = _shrink_image(Image.fromarray(np.ascontiguousarray(pixels)), max_side)
    return encode_png(np.asarray(small))


def _check_dimensions(width: int, height: int, limits: _Limits, *, frames: int = 1) -> None:
    # The pixel budget is checked first: a header claiming huge dimensions is a bomb
    # whatever its aspect ratio, and must be refused before anything is decoded.
    if width * height * frames > limits.max_pixels:
        claim = f"{frames}x{width}x{height}" if frames > 1 else f"{width}x{height}"
        raise ImageIntakeError(
            DECOMPRESSION_BOMB, f"The image claims {claim} pixels, more than the {limits.max_pixels:,} allowed."
        )
    if max(width, height) > limits.max_side:
        raise ImageIntakeError(
            IMAGE_TOO_LARGE, f"The image is {width}x{height}; the largest side allowed is {limits.max_side} pixels."
        )
    if min(width, height) < limits.min_side:
        raise ImageIntakeError(
            IMAGE_TOO_SMALL, f"The image is {width}x{height}; each side must be at least {limits.min_side} pixels."
        )


# --- shrinking and grey conversion (shared by PNG/JPEG and DICOM) ------------------------

# Modes Pillow can area-average directly (16-bit grey included); others are converted first.
_RESIZABLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_HIGH_BIT_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def _fit(width: int, height: int, max_side: int) -> tuple[int, int] | None:
    """The size that fits (width, height) within max_side, or None when it already fits."""
    longest = max(width, height)
    if longest <= max_side:
        return None
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrink_image(img: Image.Image, max_side: int) -> Image.Image:
    target = _fit(*img.size, max_side)
    if target is None:
        return img
    if img.mode not in _RESIZABLE_MODES:  # palette, 1-bit, CMYK...: Pillow would fall back to nearest
        img = img.convert("RGBA" if _has_alpha(img) else "RGB")
    # BOX = exact area average: no ringing, so values stay within the original range.
    return img.resize(target, Image.Resampling.BOX)


def _shrink_array(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Area-average a 2-D array to fit max_side, keeping an integer type for integer input
    (DICOM LUTs index with it). uint8/uint16 go to Pillow without any copy."""
    height, width = arr.shape
    if _fit(width, height, max_side) is None:
        return arr
    if arr.dtype == np.int16:
        # Pillow averages 16-bit grey only unsigned: flip the sign bit in place (x + 32768,
        # order-preserving; the decoded array is ours to change), shrink, and shift back.
        unsigned = (arr if arr.flags.writeable else arr.copy()).view(np.uint16)
        unsigned ^= 0x8000
        return _shrink_array(unsigned, max_side).astype(np.int32) - 32768
    if arr.dtype in (np.uint8, np.uint16):
        return np.asarray(_shrink_image(Image.fromarray(np.ascontiguousarray(arr)), max_side))
    # 32-bit or float samples (rare for radiographs): one float32 copy, then back to the type.
    small = np.asarray(_shrink_image(Image.fromarray(arr.astype(np.float32)), max_side))
    return np.rint(small).astype(arr.dtype) if arr.dtype.kind in "iu" else small


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info


def _to_grey_uint8(img: Image.Image) -> np.ndarray:
    """A (shrunk) Pillow image -> 2-D uint8 grey."""
    if img.mode == "L":
        return np.array(img, dtype=np.uint8)
    if img.mode in _HIGH_BIT_GREY_MODES:
        # >8-bit grey (e.g. 16-bit PNG exports of X-rays that use 10-14 bits): stretch
        # the actual range, as for DICOM, rather than dividing by 257.
        return _minmax_uint8(np.asarray(img))
    if _has_alpha(img):
        # Transparent areas become black (background of an X-ray), not arbitrary colours.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return np.array(img.convert("L"), dtype=np.uint8)


def _minmax_uint8(arr: np.ndarray) -> np.ndarray:
    """Stretch the value range to 0..255, in one float32 working copy scaled in place (inputs
    are already shrunk to the output size, so it is never a full-size copy)."""
    scaled = np.array(arr, dtype=np.float32)
    if arr.dtype.kind == "f":  # e.g. after a LUT; integers need no NaN pass (it costs a copy)
        np.nan_to_num(scaled, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(scaled.min()), float(scaled.max())
    if hi <= lo:  # constant image: no contrast to stretch
        return np.zeros(arr.shape, dtype=np.uint8)
    scaled -= np.float32(lo)
    scaled *= np.float32(255.0 / (hi - lo))
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


# --- PNG / JPEG -------------------------------------------------------------------------


# Pillow reads PNG chunks and the JPEG segments before the first scan in Python, one object or
# loop turn each (1,000,000 empty chunks or APP segments: 1-2 s and 100+ MB; junk or fill bytes
# before a JPEG marker: a turn per byte); libjpeg makes a pass over every coefficient of the
# image per progressive scan (~15 ms each at 25 MP, and a repeated scan costs a few bytes). Legit
# files: a PNG encoder writes 8-64 KB IDAT chunks (a 30 MB file: under 4,000); a JPEG has a few
# dozen segments, an ICC profile at most 255 more; libjpeg's progressive scripts use 6-10 scans, optimised ones ~20.
PNG_MAX_CHUNKS = 10_000
JPEG_MAX_SEGMENTS = 1_000
JPEG_MAX_SCANS = 32
_JPEG_MAX_GAP = 64  # junk and fill bytes before a marker, before the first scan
# The next marker: 0xFF (and fill 0xFFs), then a byte that is neither a stuffed 0x00 nor an RSTn.
_JPEG_NEXT_MARKER = re.compile(rb"\xff+([^\x00\xd0-\xd7\xff])")


def _check_png_structure(data: bytes) -> None:
    """Refuse a PNG with more chunks than an image needs, walking their lengths only."""
    position, chunks = len(PNG_MAGIC), 0
    while position + 8 <= len(data) and data[position + 4 : position + 8] != b"IEND":
        chunks += 1
        if chunks > PNG_MAX_CHUNKS:
            raise ImageIntakeError(
                CORRUPT_IMAGE, f"The PNG file has more than {PNG_MAX_CHUNKS:,} chunks; an image needs far fewer."
            )
        position += 12 + int.from_bytes(data[position : position + 4], "big")


def _check_jpeg_structure(data: bytes) -> None:
    """Refuse a JPEG with more marker segments or scans than an image needs, or junk before its
    first scan, walking markers only (entropy-coded data is skipped by a regex search, in C)."""
    position, segments, scans = 2, 0, 0
    while (marker := _JPEG_NEXT_MARKER.search(data, position)) is not None:
        if not scans and marker.end() - position > _JPEG_MAX_GAP + 2:
            raise ImageIntakeError(CORRUPT_IMAGE, "The JPEG file has junk between its header segments.")
        code, position = marker.group(1)[0], marker.end()
        if code == 0xD9:  # EOI
            return
        if code in (0x01, 0xD8):  # TEM, SOI: no length
            continue
        segments += 1
        scans += code == 0xDA  # SOS
        if segments > JPEG_MAX_SEGMENTS:
            raise ImageIntakeError(
                CORRUPT_IMAGE, f"The JPEG file has more than {JPEG_MAX_SEGMENTS:,} marker segments; it was not decoded."
            )
        if scans > JPEG_MAX_SCANS:
            raise ImageIntakeError(
                DECOMPRESSION_BOMB, f"The JPEG file has more than {JPEG_MAX_SCANS} scans; it was not decoded."
            )
        position += int.from_bytes(data[position : position + 2], "big")


def _decode_raster(data: bytes, fmt: str, limits: _Limits) -> DecodedImage:
    pil_format = {"png": "PNG", "jpeg": "JPEG"}[fmt]
    (_check_png_structure if fmt == "png" else _check_jpeg_structure)(data)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; make it fatal.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[pil_format])
            _check_dimensions(*img.size, limits)
            if fmt == "jpeg":
                # libjpeg decodes straight to grey and, for large pictures, at 1/2..1/8 scale
                # (still >= the output size): the full-size colour image never exists.
                img.draft("L", _fit(*img.size, limits.max_output_side) or img.size)
            img.load()  # full decode: truncated data raises here (LOAD_TRUNCATED_IMAGES stays False)
    except ImageIntakeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageIntakeError(DECOMPRESSION_BOMB, f"The image is too large to decode safely ({exc}).") from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, zlib.error...
        raise ImageIntakeError(CORRUPT_IMAGE, f"The {fmt.upper()} file is corrupt or truncated.") from exc

    if fmt == "jpeg":
        # Phones store portrait shots rotated + an EXIF flag; show what the user saw.
        img = ImageOps.exif_transpose(img)
    pixels = _to_grey_uint8(_shrink_image(img, limits.max_output_side))
    h, w = pixels.shape
    return DecodedImage(pixels=pixels, source_format=fmt, width=w, height=h, technical={})


# --- DICOM ------------------------------------------------------------------------------

# Deflated DICOM: how much of the inflated stream may hold the header before PixelData
# (overlays and private blocks come first; a few MB is generous), and how much may follow it
# (trailing padding, signatures). Inflation stops there: the pixels need no more.
DICOM_HEADER_BUDGET = 8 * 1024 * 1024
DICOM_TRAILER_MARGIN = 1024 * 1024
_INFLATE_INPUT_STEP = 64 * 1024
# pydicom builds a Python object (~300 bytes, ~4 us) for every element it reads, nested ones
# included: 1 MB of 8-byte elements is ~130,000 of them. Every element costs at least one read
# of the stream, so reads are what is bounded (a chest X-ray header has a few hundred elements;
# encapsulated pixel data is read in 8 KB steps, ~4,000 reads for 30 MB).
DICOM_MAX_READS = 60_000
# Attributes the decode reads are converted value by value (a DS "1\\1\\..." of 2 MB becomes a
# million Python floats, ~450 MB): longer than this, the file is refused before any is converted.
DICOM_MAX_VALUE_LENGTH = 1024
DICOM_MAX_LUT_DATA_LENGTH = 2 * 65536  # a LUT has at most 65,536 entries of 16 bits (PS3.3 C.11.1.1)
# Encapsulated pixel data: fragments walked to find the first frame (a 30 MB frame in 8 KB
# fragments is ~4,000); a Basic Offset Table has one entry per frame or none (PS3.5 A.4).
DICOM_MAX_FRAGMENTS = 16_384

# PixelData, FloatPixelData, DoubleFloatPixelData -> bits per sample (0: from BitsAllocated)
_PIXEL_TAGS = {0x7FE00010: 0, 0x7FE00008: 32, 0x7FE00009: 64}
_UNDEFINED_LENGTH = 0xFFFFFFFF

# Transfer syntaxes accepted (an allow-list; anything else is refused by name):
# - uncompressed ones, whose pixel-data length must equal what Rows x Columns x frames x
#   samples x bits declare. Deflated counts as uncompressed once inflated (with a cap, below):
#   clinics do send it, and capped inflation costs no more than the declared image.
_NATIVE_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2",  # Implicit VR Little Endian
        "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
        "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
        "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still read)
    }
)
_DEFLATED_SYNTAX = "1.2.840.10008.1.2.1.99"
# - compressed ones pydicom decodes through Pillow, once the frame's own header has been
#   checked against Rows x Columns (Pillow would otherwise decode whatever size the frame
#   claims). Refused, among others: RLE Lossless (pydicom expands every RLE segment without a
#   bound before checking it), JPEG Lossless / JPEG-LS / 12-bit JPEG / HTJ2K (no decoder here).
_PILLOW_SYNTAXES = {
    "1.2.840.10008.1.2.4.50": "JPEG",  # JPEG Baseline (8-bit)
    "1.2.840.10008.1.2.4.90": "JPEG2000",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": "JPEG2000",  # JPEG 2000
}


class _BoundedReads(io.BytesIO):
    """A BytesIO that allows at most ``DICOM_MAX_READS`` reads: pydicom's parser reads at least
    once per element, nested sequences included, so the objects it builds are bounded whatever
    the structure (``stop_when`` only sees top-level elements)."""

    reads_left = DICOM_MAX_READS

    def read(self, size: int | None = -1, /) -> bytes:
        self.reads_left -= 1
        if self.reads_left < 0:
            raise ImageIntakeError(
                CORRUPT_IMAGE, "The DICOM file has far more elements than an image needs; it was not read."
            )
        return super().read(size)


class _CappedInflater:
    """The raw-deflate dataset of a Deflated DICOM (PS3.5 A.5), inflated on demand into
    ``buffer`` and never past the size asked for. Input is fed in small steps so that
    ``unconsumed_tail`` never copies the rest of the upload."""

    def __init__(self, compressed: memoryview) -> None:
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._source = compressed
        self._position = 0
        self._tail = b""
        self.buffer = _BoundedReads()

    def inflate_to(self, size: int) -> int:
        """Grow ``buffer`` to ``size`` bytes (fewer if the stream ends first); its new size."""
        buffer = self.buffer
        buffer.seek(0, io.SEEK_END)
        while buffer.tell() < size and not self._inflater.eof:
            if not self._tail and self._position < len(self._source):
                self._tail = self._source[self._position : self._position + _INFLATE_INPUT_STEP]
                self._position += len(self._tail)
            chunk = self._inflater.decompress(self._tail, size - buffer.tell())
            self._tail = self._inflater.unconsumed_tail
            if not chunk and not self._tail and self._position >= len(self._source):
                break  # input exhausted before the end of the stream: truncated
            buffer.write(chunk)
        return buffer.tell()

    @property
    def finished(self) -> bool:
        return self._inflater.eof

    def has_more(self) -> bool:
        size = self.buffer.seek(0, io.SEEK_END)
        return self.inflate_to(size + 1) > size


def _decode_dicom(data: bytes, limits: _Limits, phi_policy: _PixelPhiPolicy) -> DecodedImage:
    # Imported lazily: only DICOM uploads pay for pydicom.
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on malformed data; judged by structure below
        try:
            ds, pixel_source = _read_dicom(data, limits, phi_policy)
        except ImageIntakeError:
            raise
        except Exception as exc:  # pydicom's parser raises many types
            raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM file is corrupt or unreadable.") from exc
        try:
            arr = _decode_first_frame(pixel_array, pixel_source, ds, limits.max_output_side)
        except NotImplementedError as exc:
            raise ImageIntakeError(
                UNSUPPORTED_FILE_TYPE, f"This DICOM image encoding is not supported ({_transfer_syntax_name(ds)})."
            ) from exc
        except Exception as exc:  # decoders raise ValueError, OSError, struct.error...
            raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM pixel data is corrupt or truncated.") from exc

    try:
        pixels = _dicom_to_grey_uint8(arr, ds, limits.max_output_side, apply_modality_lut, apply_voi_lut)
    except Exception as exc:
        raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM pixel data could not be interpreted.") from exc
    h, w = pixels.shape
    flagged = tuple(s for s in pixel_phi_signals(ds) if phi_policy.for_signal(s) == "flag")
    return DecodedImage(
        pixels=pixels,
        source_format="dicom",
        width=w,
        height=h,
        technical=dicom_technical_tags(ds),
        pixel_phi=flagged,
    )


def _decode_first_frame(pixel_array, pixel_source, ds, max_output_side: int) -> np.ndarray:
    """pydicom's decode of the first frame (a radiograph is one frame: only the first is decoded);
    a greyscale JPEG 2000 frame larger than needed is decoded at reduced resolution (see
    ``_j2k_reduction``), falling back to the full one if that decode fails."""
    reduce = _j2k_reduction(pixel_source, max_output_side)
    if reduce:
        from ml_core import dicom_j2k

        width, height = dicom_j2k.reduced_size(int(pixel_source.Columns), int(pixel_source.Rows), reduce)
        reduced = _single_frame_dataset(pixel_source, None, rows=height, columns=width)
        try:
            return pixel_array(reduced, index=0, decoding_plugin=_reduced_j2k_plugin(ds), j2k_reduce=reduce)
        except Exception:  # e.g. a tile with fewer wavelet levels than the main header's: full decode
            pass
    return pixel_array(pixel_source, index=0)


# JPEG 2000 frames are decoded at the largest power-of-two reduction that keeps the longest side
# at least ``max_output_side`` (the size they are shrunk to next) and within the codestream's
# wavelet levels: a 5000 x 5000 16-bit frame at 2500 x 2500 (bench_intake, one shared core: 1.0 s
# and 153 MB instead of 4.0 s and 318 MB). The area average to max_output_side follows as for any
# picture; the tolerance against the full decode is written down in tests/ml_core/test_imaging_hostile.py.
_J2K_MARKER_LIMIT = 256  # marker segments read from a main header before giving up (0 = full decode)
_j2k_plugin_lock = threading.Lock()


def _j2k_reduction(pixel_source, max_output_side: int) -> int:
    syntax = pixel_source.file_meta.get("TransferSyntaxUID")
    if _PILLOW_SYNTAXES.get(syntax) != "JPEG2000" or int(pixel_source.get("SamplesPerPixel", 1) or 1) != 1:
        return 0
    from ml_core.dicom_j2k import reduced_size

    longest = max(int(pixel_source.Rows), int(pixel_source.Columns))
    # The one-frame dataset's pixel data (``_single_frame_dataset``): offset table item, one fragment.
    data = memoryview(pixel_source.PixelData)
    levels = _j2k_wavelet_levels(data[16 + struct.unpack_from("<L", data, 4)[0] :])
    reduce = 0
    while reduce < levels and max(reduced_size(longest, longest, reduce + 1)) >= max_output_side:
        reduce += 1
    return reduce


def _j2k_wavelet_levels(codestream: bytes) -> int:
    """The fewest decomposition levels the codestream's main header gives any component (COD and
    COC marker segments; 0 when unreadable: no reduction)."""
    view = memoryview(codestream)
    if view[:2] != b"\xff\x4f":  # SOC
        return 0
    position, components, levels = 2, 1, None
    for _ in range(_J2K_MARKER_LIMIT):
        if position + 4 > len(view):
            return 0
        marker, length = struct.unpack_from(">HH", view, position)
        segment = view[position + 4 : position + 2 + length]
        if marker == 0xFF90 or length < 2 or len(segment) != length - 2:  # SOT: the main header ends
            break
        if marker == 0xFF51 and len(segment) >= 36:  # SIZ: Csiz after Rsiz and eight 32-bit sizes
            (components,) = struct.unpack_from(">H", segment, 34)
        elif marker == 0xFF52 and len(segment) >= 6:  # COD: Scod, SGcod (4 bytes), then SPcod's levels
            levels = min(segment[5], levels if levels is not None else 255)
        elif marker == 0xFF53:  # COC: Ccoc (1 or 2 bytes), Scoc, then SPcoc's levels
            at = (1 if components < 257 else 2) + 1
            if len(segment) <= at:
                return 0
            levels = min(segment[at], levels if levels is not None else 255)
        position += 2 + length
    return levels or 0


def _reduced_j2k_plugin(ds) -> str:
    """Register ``ml_core.dicom_j2k`` with pydicom's JPEG 2000 decoders once; its label."""
    from pydicom.pixels import get_decoder

    from ml_core import dicom_j2k

    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    with _j2k_plugin_lock:  # add_plugin is not thread-safe; decodes run in two threads
        if dicom_j2k.LABEL not in decoder.available_plugins:
            with suppress(ValueError):  # added before, but unavailable: the full decode follows
                decoder.add_plugin(dicom_j2k.LABEL, ("ml_core.dicom_j2k", "_decode_frame"))
    return dicom_j2k.LABEL


def _read_dicom(data: bytes, limits: _Limits, phi_policy: _PixelPhiPolicy):
    """Parse a DICOM upload into a dataset whose pixel data is known to match its header, and
    the dataset to decode pixels from: the same one when uncompressed; else one holding only the
    first frame, the very bytes checked (pydicom would find frames by itself, and could pick
    others, e.g. through an Extended Offset Table).

    Order matters: file meta -> transfer syntax allow-list -> header up to PixelData (its
    length read, its value not) -> identifying-text policy -> dimension and length checks ->
    only then the pixel data.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset

    fp = _BoundedReads(data)  # shares ``data``: no copy
    fp.seek(DICOM_MAGIC_OFFSET + len(DICOM_MAGIC))
    meta = FileMetaDataset(read_dataset(fp, False, True, stop_when=lambda tag, vr, length: tag >> 16 != 2))
    syntax = meta.get("TransferSyntaxUID")
    if not syntax:  # garbage after 'DICM' reads as an almost empty meta group
        raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM file is corrupt or unreadable.")
    _check_transfer_syntax(syntax)
    implicit, little = syntax.is_implicit_VR, syntax.is_little_endian

    inflater = None
    if syntax == _DEFLATED_SYNTAX:
        inflater = _CappedInflater(memoryview(data)[fp.tell() :])
        inflater.inflate_to(DICOM_HEADER_BUDGET)
        inflater.buffer.reads_left = fp.reads_left  # one budget for the whole file
        fp = inflater.buffer
        fp.seek(0)

    declared: list[tuple[int, int]] = []  # (tag, value length) of the pixel data element

    def at_pixel_data(tag, vr, length) -> bool:
        if int(tag) in _PIXEL_TAGS:
            declared.append((int(tag), length))
            return True
        return False

    ds = read_dataset(fp, implicit, little, stop_when=at_pixel_data)  # fp: rewound to the pixel element
    ds.file_meta = meta
    if not declared:
        if inflater is not None and not inflater.finished:
            raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM header is too large or the file is corrupt.")
        raise ImageIntakeError(DICOM_NO_PIXEL_DATA, "The DICOM file contains no image (no pixel data).")
    (tag, length), offset = declared[0], fp.tell()
    _check_value_lengths(ds)  # before any value is converted (the policy below reads some)
    _refuse_identifying_pixels(ds, phi_policy)  # from the header alone: no pixel is read for a refusal

    rows, cols, frames, expected = _declared_geometry(ds, tag, limits)
    native = syntax in _NATIVE_SYNTAXES
    if native:
        _check_native_length(length, expected, cols, rows)
    elif length != _UNDEFINED_LENGTH:
        raise ImageIntakeError(CORRUPT_IMAGE, "The compressed DICOM pixel data is not encapsulated.")

    if inflater is not None:
        # The pixels need `expected` bytes after the element start; the margin covers the
        # element header, padding and small trailing elements. Anything beyond is a bomb.
        inflater.inflate_to(offset + expected + DICOM_TRAILER_MARGIN)
        if inflater.has_more():
            raise ImageIntakeError(
                DECOMPRESSION_BOMB, f"The deflated DICOM file inflates far beyond its declared {cols}x{rows} pixels."
            )

    fp.seek(offset)
    # The pixel data element only: trailing elements (padding, signatures) are never needed.
    rest = read_dataset(fp, implicit, little, stop_when=lambda next_tag, vr, length: next_tag != tag)
    del fp, inflater  # drop the inflated stream (if any) before decoding
    if native and (tag not in rest or len(rest[tag].value or b"") != length):
        raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM pixel data is corrupt or truncated.")
    ds.update(rest)
    if native:
        return ds, ds
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frame = _first_frame(ds.PixelData, frames)
    _check_compressed_frame(frame, syntax, samples, cols, rows)
    return ds, _single_frame_dataset(ds, frame)


def pixel_phi_signals(ds) -> tuple[str, ...]:
    """Why a DICOM's pixels may show identifying text, from its header: the modality says text is
    burned in (BurnedInAnnotation YES), or it is a secondary capture (SOP class 1.2.840.10008.5.1.4.1.1.7
    or one of its multi-frame variants, an ImageType with SECONDARY, or a ConversionType): a
    screenshot, scan or conversion of an image, where names and ids are often part of the picture."""
    signals = []
    if "YES" in _header_codes(ds, "BurnedInAnnotation"):
        signals.append(BURNED_IN_ANNOTATION)
    meta = getattr(ds, "file_meta", None)
    sop_classes = {
        str(ds.get("SOPClassUID", "") or "").strip(),
        str(meta.get("MediaStorageSOPClassUID", "") or "").strip() if meta is not None else "",
    }
    if (
        any(
            uid == SECONDARY_CAPTURE_SOP_CLASS or uid.startswith(SECONDARY_CAPTURE_SOP_CLASS + ".")
            for uid in sop_classes
        )
        or "SECONDARY" in _header_codes(ds, "ImageType")
        or _header_codes(ds, "ConversionType")
    ):
        signals.append(SECONDARY_CAPTURE)
    return tuple(signals)


def _header_codes(ds, keyword: str) -> list[str]:
    """The values of a (possibly multi-valued) code-string attribute, upper-cased; [] when absent."""
    try:
        value = ds.get(keyword)
    except Exception:
        return ["?"]
    if value is None:
        return []
    return [code for code in (str(v).strip().upper() for v in _values(value)) if code]


def _values(value) -> list:
    """The items of a multi-valued attribute, or [value]."""
    from pydicom.multival import MultiValue

    return list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]


def _refuse_identifying_pixels(ds, phi_policy: _PixelPhiPolicy) -> None:
    signals = pixel_phi_signals(ds)
    if BURNED_IN_ANNOTATION in signals and phi_policy.burned_in == "refuse":
        raise ImageIntakeError(
            DICOM_BURNED_IN_PHI,
            "This DICOM image has text burned into its pixels (BurnedInAnnotation = YES), such as a name or "
            "patient ID, which cannot be removed. Please send an export without annotations.",
        )
    if SECONDARY_CAPTURE in signals and phi_policy.secondary_capture == "refuse":
        raise ImageIntakeError(
            DICOM_SECONDARY_CAPTURE,
            "This DICOM file is a secondary capture (a screenshot, scan or conversion of an image), whose "
            "pixels often show a name or patient ID. Please send the original radiograph.",
        )


# Every attribute the decode reads, by us (geometry, technical tags, identifying-text signals) or by
# pydicom (pixel module, modality and VOI LUTs, windows), and the LUT sequences it reads items of.
_READ_KEYWORDS = frozenset(
    {
        *DICOM_TECHNICAL_TAGS,
        "PlanarConfiguration",
        "VOILUTFunction",
        "BurnedInAnnotation",
        "SOPClassUID",
        "ImageType",
        "ConversionType",
        "ExtendedOffsetTable",
        "ExtendedOffsetTableLengths",
    }
)
_LUT_SEQUENCES = ("ModalityLUTSequence", "VOILUTSequence")
_LUT_ITEM_KEYWORDS = ("LUTDescriptor", "LUTExplanation", "ModalityLUTType")


def _check_value_lengths(ds) -> None:
    """Refuse an attribute the decode reads whose value is implausibly long, from its raw length:
    pydicom converts a value item by item (Python objects of ~100 bytes for 2 bytes of "1\\"),
    and a sequence stored as UN is parsed only when read, outside ``DICOM_MAX_READS``."""
    for keyword in _READ_KEYWORDS:
        _check_raw_length(ds, keyword, DICOM_MAX_VALUE_LENGTH)
    for keyword in _LUT_SEQUENCES:
        if _check_raw_length(ds, keyword, DICOM_MAX_LUT_DATA_LENGTH + DICOM_MAX_VALUE_LENGTH):
            continue  # raw and short (a UN sequence): its converted items are small too
        for item in ds.get(keyword) or ():
            for item_keyword in _LUT_ITEM_KEYWORDS:
                _check_raw_length(item, item_keyword, DICOM_MAX_VALUE_LENGTH)
            _check_raw_length(item, "LUTData", DICOM_MAX_LUT_DATA_LENGTH)


def _check_raw_length(ds, keyword: str, limit: int) -> bool:
    """Refuse ``keyword``'s value when longer than ``limit`` bytes; True when it is still raw
    (unconverted) bytes."""
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import RawDataElement

    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return False
    elem = ds.get_item(tag)
    if not isinstance(elem, RawDataElement):
        return False
    length = len(elem.value) if isinstance(elem.value, (bytes, bytearray)) else elem.length
    if length > limit:
        raise ImageIntakeError(
            CORRUPT_IMAGE, f"The DICOM attribute {keyword} is implausibly long ({length:,} bytes); it was not read."
        )
    return True


def _check_transfer_syntax(syntax) -> None:
    if syntax in _NATIVE_SYNTAXES or (syntax in _PILLOW_SYNTAXES and _decoder_available(syntax)):
        return
    compressed = {"JPEG": "JPEG baseline", "JPEG2000": "JPEG 2000"}
    accepted = ["uncompressed", "deflated"] + sorted(
        {compressed[fmt] for uid, fmt in _PILLOW_SYNTAXES.items() if _decoder_available(uid)}
    )
    raise ImageIntakeError(
        UNSUPPORTED_FILE_TYPE,
        f"DICOM images encoded as '{getattr(syntax, 'name', syntax)}' are not supported. "
        f"Accepted DICOM encodings: {', '.join(accepted)}; or send a PNG.",
    )


def _decoder_available(syntax: str) -> bool:
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(syntax).is_available)
    except NotImplementedError:
        return False


def _declared_geometry(ds, tag: int, limits: _Limits) -> tuple[int, int, int, int]:
    """(rows, columns, frames, pixel-data bytes) the header declares; refuses bad or too large ones."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = _PIXEL_TAGS[tag] or int(ds.BitsAllocated)
    except Exception as exc:  # missing or malformed values
        raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM file has invalid image dimensions.") from exc
    if frames < 1 or samples not in (1, 3) or bits not in (1, 8, 16, 32, 64):
        raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM file has invalid image dimensions.")
    _check_dimensions(cols, rows, limits, frames=frames)
    return rows, cols, frames, (rows * cols * frames * samples * bits + 7) // 8


def _check_native_length(length: int, expected: int, cols: int, rows: int) -> None:
    # An odd length is padded to even (PS3.5 7.1.1); nothing else may differ.
    if length in (expected, expected + expected % 2):
        return
    if length != _UNDEFINED_LENGTH and length > 2 * expected:
        raise ImageIntakeError(
            DECOMPRESSION_BOMB,
            f"The DICOM pixel data holds {length:,} bytes, far more than its declared {cols}x{rows} pixels need.",
        )
    raise ImageIntakeError(
        CORRUPT_IMAGE,
        f"The DICOM pixel data is corrupt: {length:,} bytes where its {cols}x{rows} pixels need {expected:,}.",
    )


def _first_frame(pixel_data: bytes, frames: int) -> bytes:
    """The first frame of encapsulated pixel data (PS3.5 A.4), with bounded work: a Basic Offset
    Table of one entry per frame or none (pydicom would turn any length into a list of ints: 27 MB
    of it, ~350 MB), at most ``DICOM_MAX_FRAGMENTS`` fragments (pydicom walks them all, twice, ~2 us
    each). Without a table, as pydicom: all fragments for one frame, one per frame when they match
    the frame count, else the fragments up to the first ending in a JPEG/J2K end marker."""
    view = memoryview(pixel_data)
    offsets: tuple[int, ...] | None = None
    fragments: list[tuple[int, int, int]] = []  # (item start, value start, value end)
    position = 0
    while position + 8 <= len(view):
        group, element, length = struct.unpack_from("<HHL", view, position)
        if (group, element) == (0xFFFE, 0xE0DD):  # sequence delimiter
            break
        value = position + 8
        if (group, element) != (0xFFFE, 0xE000) or value + length > len(view):
            raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM pixel data fragments are corrupt.")
        if offsets is None:
            if length % 4 or length // 4 not in (0, frames):
                raise ImageIntakeError(
                    CORRUPT_IMAGE, f"The DICOM offset table has {length // 4:,} entries for {frames} frame(s)."
                )
            offsets = struct.unpack_from(f"<{length // 4}L", view, value)
        else:
            fragments.append((position, value, value + length))
            if len(fragments) > DICOM_MAX_FRAGMENTS:
                raise ImageIntakeError(
                    CORRUPT_IMAGE, f"The DICOM pixel data has more than {DICOM_MAX_FRAGMENTS:,} fragments."
                )
        position = value + length
    if not fragments:
        raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM pixel data holds no frame.")
    first = fragments[0][0]
    if offsets:
        end = offsets[1] if frames > 1 else len(view)
        if offsets[0] != 0 or end <= 0:
            raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM offset table is corrupt.")
        chosen = [f for f in fragments if f[0] - first < end]
    elif frames == 1:
        chosen = fragments
    elif len(fragments) == frames:
        chosen = fragments[:1]
    else:
        ends = [i for i, (_, start, stop) in enumerate(fragments) if b"\xff\xd9" in view[max(start, stop - 10) : stop]]
        chosen = fragments[: ends[0] + 1] if ends else fragments
    return b"".join(view[start:stop] for _, start, stop in chosen)


def _single_frame_dataset(ds, frame: bytes | None, *, rows: int | None = None, columns: int | None = None):
    """A dataset with ``ds``'s pixel description and ``frame`` as its only, single-fragment frame
    (``None``: ``ds``'s pixel data, already one); ``rows``/``columns`` replace the size."""
    from pydicom.dataset import Dataset
    from pydicom.encaps import encapsulate

    one = Dataset()
    one.file_meta = ds.file_meta
    for keyword in _PIXEL_DESCRIPTION:
        if keyword in ds:
            one[keyword] = ds[keyword]
    if rows is not None:
        one.Rows, one.Columns = rows, columns
    one.add_new(0x7FE00010, "OB", ds.PixelData if frame is None else encapsulate([frame]))
    return one


_PIXEL_DESCRIPTION = (
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
)
# Pillow modes a frame may open as, by SamplesPerPixel: a frame with other components (a 4-component
# J2K under a greyscale header: 600 bytes that decoded to 580 MB before failing) is refused.
_FRAME_MODES = {1: frozenset({"L", "I;16", "I;16L", "I;16B", "I;16N", "I"}), 3: frozenset({"RGB", "YCbCr"})}


def _check_compressed_frame(frame: bytes, syntax: str, samples: int, cols: int, rows: int) -> None:
    """Read the frame's own header (no decoding) and refuse a size or components other than declared."""
    pil_format = _PILLOW_SYNTAXES[syntax]
    if pil_format == "JPEG":
        _check_jpeg_structure(frame)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(frame), formats=[pil_format]) as img:
                (width, height), mode = img.size, img.mode
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageIntakeError(DECOMPRESSION_BOMB, "The compressed DICOM frame is too large to decode.") from exc
    if (width, height) != (cols, rows):
        code = DECOMPRESSION_BOMB if width * height > cols * rows else CORRUPT_IMAGE
        raise ImageIntakeError(
            code, f"The compressed DICOM frame is {width}x{height} pixels but its header declares {cols}x{rows}."
        )
    if mode not in _FRAME_MODES.get(samples, ()):
        raise ImageIntakeError(
            CORRUPT_IMAGE,
            f"The compressed DICOM frame is {mode} but its header declares {samples} sample(s) per pixel.",
        )


def _dicom_to_grey_uint8(arr: np.ndarray, ds, max_side: int, apply_modality_lut, apply_voi_lut) -> np.ndarray:
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if arr.ndim == 3:
        # Colour DICOM (pydicom already converted YBR to RGB): ITU-R 601 luma, no LUTs.
        r, g, b = (_shrink_array(np.ascontiguousarray(arr[..., c]), max_side).astype(np.float32) for c in range(3))
        return _minmax_uint8(0.299 * r + 0.587 * g + 0.114 * b)
    # Shrink the stored values first (integer type kept), so that the LUTs below, which
    # work in float64, only ever see the small picture.
    arr = _shrink_array(arr, max_side)
    # Stored values -> modality units (e.g. rescale slope/intercept) -> VOI window/LUT.
    arr = apply_modality_lut(arr, ds)
    arr = apply_voi_lut(arr, ds, index=0)
    out = _minmax_uint8(np.asarray(arr))
    if photometric == "MONOCHROME1":
        out = 255 - out  # MONOCHROME1: low values are white; display convention is the opposite
    return out


# Code strings (VR CS, PS3.5 6.2): at most 16 upper-case letters, digits, spaces and underscores.
_CODE_STRING = re.compile(r"[A-Z0-9 _]{1,16}")
# RescaleType's VR is LO, but its defined terms (OD, HU, US, MGML, Z_EFF...) are codes: checked as CS.
_CODED_LONG_STRINGS = frozenset({"RescaleType"})
# Vocabularies of what a chest radiograph may carry (anything else is dropped, not stored):
_CODE_VOCABULARIES = {
    # PS3.3 C.8.11.5.1.1 defined terms.
    "ViewPosition": frozenset({"AP", "PA", "LL", "RL", "RLD", "LLD", "RLO", "LLO"}),
    # PS3.3 C.7.3.1.1.1 projection radiography and "other"; DR is no defined term but some
    # digital-radiography systems write it.
    "Modality": frozenset({"CR", "DX", "RG", "OT", "DR"}),
}
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "IS", "DS", "FL", "FD"})


def dicom_technical_tags(ds) -> dict[str, str | float | int | list[str]]:
    """Allow-listed, non-identifying technical attributes of a DICOM dataset, each validated for
    its VR: code strings by PS3.5's rules (and ViewPosition/Modality by vocabulary), numbers as
    numbers. An invalid value is dropped and its keyword listed under "_dropped"."""
    from pydicom.datadict import dictionary_VR

    out: dict[str, str | float | int | list[str]] = {}
    dropped: list[str] = []
    for keyword in DICOM_TECHNICAL_TAGS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom warns on invalid values; judged below
                value = ds.get(keyword)
        except Exception:
            dropped.append(keyword)
            continue
        if value is None or value == "":
            continue
        if not _valid_value(keyword, dictionary_VR(keyword), value):
            dropped.append(keyword)
            continue
        out[keyword] = _plain_value(value)
    if dropped:
        out["_dropped"] = dropped
    syntax = _transfer_syntax_name(ds)
    if syntax:
        out["TransferSyntax"] = syntax  # the name (e.g. "Explicit VR Little Endian"), never a UID value
    return out


def _valid_value(keyword: str, vr: str, value) -> bool:
    values = _values(value)
    if vr in _NUMBER_VRS:
        # pydicom converts valid DS/IS text to numbers and keeps invalid text as it was read.
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if vr == "CS" or keyword in _CODED_LONG_STRINGS:
        codes = [str(v).strip() for v in values]  # leading/trailing spaces are padding (PS3.5 6.2)
        vocabulary = _CODE_VOCABULARIES.get(keyword)
        return all(_CODE_STRING.fullmatch(c) and (vocabulary is None or c in vocabulary) for c in codes)
    return True


def _plain_value(value) -> str | float | int:
    from pydicom.multival import MultiValue

    if isinstance(value, (MultiValue, list, tuple)):
        return ",".join(str(_plain_value(v)) for v in value)[:64]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value).strip()[:64]


def _transfer_syntax_name(ds) -> str:
    try:
        return str(ds.file_meta.TransferSyntaxUID.name)
    except (AttributeError, KeyError):
        return ""
