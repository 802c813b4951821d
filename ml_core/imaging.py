"""Image intake: bytes from an upload -> validated 8-bit greyscale pixels.

Only PNG, JPEG and DICOM are accepted, identified by content (magic bytes), never
by file name or client-sent content type. Every failure is an ``ImageIntakeError``
with a stable ``code`` the web layer can map to a user-facing message.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DICOM_MAGIC = b"DICM"
DICOM_MAGIC_OFFSET = 128

# Stable error codes (the Django side maps them to messages / HTTP 400s).
UNSUPPORTED_FILE_TYPE = "unsupported_file_type"
CORRUPT_IMAGE = "corrupt_image"
IMAGE_TOO_LARGE = "image_too_large"
IMAGE_TOO_SMALL = "image_too_small"
DECOMPRESSION_BOMB = "decompression_bomb"
DICOM_NO_PIXEL_DATA = "dicom_no_pixel_data"
EMPTY_FILE = "empty_file"

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
    pixels: np.ndarray  # 2-D uint8, HxW, 0 = black
    source_format: str  # 'png' | 'jpeg' | 'dicom'
    width: int
    height: int
    technical: dict[str, str | float | int] = field(default_factory=dict)  # DICOM only


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


def decode_image(
    data: bytes,
    *,
    max_pixels: int = 50_000_000,
    min_side: int = 64,
    max_side: int = 10_000,
) -> DecodedImage:
    """Decode PNG/JPEG/DICOM bytes to 8-bit greyscale, or raise ImageIntakeError."""
    if not data:
        raise ImageIntakeError(EMPTY_FILE, "The file is empty.")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageIntakeError(
            UNSUPPORTED_FILE_TYPE, "Unsupported file type: only PNG, JPEG and DICOM images are accepted."
        )
    if fmt == "dicom":
        return _decode_dicom(data, max_pixels=max_pixels, min_side=min_side, max_side=max_side)
    return _decode_raster(data, fmt, max_pixels=max_pixels, min_side=min_side, max_side=max_side)


def encode_png(pixels: np.ndarray) -> bytes:
    """Encode a uint8 grey (HxW), RGB or RGBA (HxWx3/4) array as a metadata-free PNG."""
    if pixels.dtype != np.uint8:
        raise ValueError(f"encode_png expects uint8 pixels, got {pixels.dtype}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise ValueError(f"encode_png expects HxW or HxWx3/4, got shape {pixels.shape}")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


# --- PNG / JPEG ---------------------------------------------------------------


def _check_dimensions(width: int, height: int, *, max_pixels: int, min_side: int, max_side: int) -> None:
    # The pixel budget is checked first: a header claiming huge dimensions is a bomb
    # whatever its aspect ratio, and must be refused before anything is decoded.
    if width * height > max_pixels:
        raise ImageIntakeError(
            DECOMPRESSION_BOMB,
            f"The image claims {width}x{height} pixels, more than the {max_pixels:,} allowed.",
        )
    if max(width, height) > max_side:
        raise ImageIntakeError(
            IMAGE_TOO_LARGE, f"The image is {width}x{height}; the largest side allowed is {max_side} pixels."
        )
    if min(width, height) < min_side:
        raise ImageIntakeError(
            IMAGE_TOO_SMALL, f"The image is {width}x{height}; each side must be at least {min_side} pixels."
        )


def _decode_raster(data: bytes, fmt: str, *, max_pixels: int, min_side: int, max_side: int) -> DecodedImage:
    pil_format = {"png": "PNG", "jpeg": "JPEG"}[fmt]
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; make it fatal.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[pil_format])
            _check_dimensions(*img.size, max_pixels=max_pixels, min_side=min_side, max_side=max_side)
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
    pixels = _to_grey_uint8(img)
    h, w = pixels.shape
    return DecodedImage(pixels=pixels, source_format=fmt, width=w, height=h, technical={})


def _to_grey_uint8(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "L":
        return np.asarray(img, dtype=np.uint8).copy()
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # >8-bit grey (e.g. 16-bit PNG exports of X-rays that use 10-14 bits): stretch
        # the actual range, as for DICOM, rather than dividing by 257.
        return _minmax_uint8(np.asarray(img, dtype=np.float64))
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    if has_alpha:
        # Transparent areas become black (background of an X-ray), not arbitrary colours.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("L"), dtype=np.uint8).copy()


def _minmax_uint8(arr: np.ndarray) -> np.ndarray:
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:  # constant image: no contrast to stretch
        return np.zeros(arr.shape, dtype=np.uint8)
    scaled = (arr - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# --- DICOM --------------------------------------------------------------------


def _decode_dicom(data: bytes, *, max_pixels: int, min_side: int, max_side: int) -> DecodedImage:
    import pydicom  # imported lazily: only DICOM uploads pay for it
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns on malformed data; judged by structure below
            ds = pydicom.dcmread(io.BytesIO(data), force=False)
    except Exception as exc:
        raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM file is corrupt or unreadable.") from exc
    # pydicom reads leniently: garbage after 'DICM' can yield an almost empty dataset.
    if len(ds) == 0 or "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM file is corrupt or unreadable.")

    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageIntakeError(DICOM_NO_PIXEL_DATA, "The DICOM file contains no image (no pixel data).")

    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    except Exception as exc:
        raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM file has invalid image dimensions.") from exc
    if rows * cols * frames > max_pixels:
        raise ImageIntakeError(
            DECOMPRESSION_BOMB,
            f"The DICOM image claims {frames}x{cols}x{rows} pixels, more than the {max_pixels:,} allowed.",
        )
    _check_dimensions(cols, rows, max_pixels=max_pixels, min_side=min_side, max_side=max_side)

    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        # Compressed transfer syntaxes whose decoder plugin is not installed.
        raise ImageIntakeError(
            UNSUPPORTED_FILE_TYPE, f"This DICOM compression is not supported ({_transfer_syntax_name(ds)})."
        ) from exc
    except Exception as exc:
        raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM pixel data is corrupt or truncated.") from exc

    try:
        pixels = _dicom_to_grey_uint8(arr, ds, frames, apply_modality_lut, apply_voi_lut)
    except Exception as exc:
        raise ImageIntakeError(CORRUPT_IMAGE, "The DICOM pixel data could not be interpreted.") from exc
    h, w = pixels.shape
    return DecodedImage(
        pixels=pixels, source_format="dicom", width=w, height=h, technical=dicom_technical_tags(ds)
    )


def _dicom_to_grey_uint8(arr: np.ndarray, ds, frames: int, apply_modality_lut, apply_voi_lut) -> np.ndarray:
    if frames > 1:
        arr = arr[0]  # a radiograph is a single frame; take the first of a multi-frame object
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if arr.ndim == 3:
        # Colour DICOM (pydicom already converted YBR to RGB): ITU-R 601 luma, no LUTs.
        rgb = arr[..., :3].astype(np.float64)
        return _minmax_uint8(rgb @ np.array([0.299, 0.587, 0.114]))
    # Stored values -> modality units (e.g. rescale slope/intercept) -> VOI window/LUT.
    arr = apply_modality_lut(arr, ds)
    arr = apply_voi_lut(arr, ds, index=0)
    out = _minmax_uint8(np.asarray(arr, dtype=np.float64))
    if photometric == "MONOCHROME1":
        out = 255 - out  # MONOCHROME1: low values are white; display convention is the opposite
    return out


def dicom_technical_tags(ds) -> dict[str, str | float | int]:
    """Allow-listed, non-identifying technical attributes of a DICOM dataset."""
    out: dict[str, str | float | int] = {}
    for keyword in DICOM_TECHNICAL_TAGS:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        out[keyword] = _plain_value(value)
    syntax = _transfer_syntax_name(ds)
    if syntax:
        out["TransferSyntax"] = syntax  # the name (e.g. "Explicit VR Little Endian"), never a UID value
    return out


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
    except Exception:
        return ""
