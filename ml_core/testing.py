"""Test fixtures shared by the ml_core and Django test suites.

Everything here is SYNTHETIC: random-weight models and generated images. Nothing
produced here is a medical model or a real patient record. torch is imported
lazily (only ``make_tiny_package`` needs it).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ml_core.imaging import JPEG_MAX_SCANS, encode_png

TINY_IMAGE_SIZE = 64

# Identifying values written into synthetic DICOMs: tests assert none of them leaks.
FAKE_PATIENT_TAGS = {
    "PatientName": "Doe^Jane",
    "PatientID": "MRN-0042-SECRET",
    "PatientBirthDate": "19700101",
    "PatientSex": "F",
    "InstitutionName": "St Example Hospital",
    "ReferringPhysicianName": "House^Gregory",
    "AccessionNumber": "ACC-99887766",
    "StudyDate": "20240229",
    "StudyTime": "101500",
}


def make_xray_like_pixels(size: int = 256, seed: int = 0, *, height: int | None = None) -> np.ndarray:
    """A uint8 greyscale picture with chest-radiograph structure (dark lungs, bright
    mediastinum, spine and ribs), varied by ``seed``. Not anatomy, just plausible statistics."""
    rng = np.random.default_rng(seed)
    h, w = (height or size), size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = yy / h, xx / w
    img = np.full((h, w), 40.0, dtype=np.float32)  # air outside the body
    body = ((x - 0.5) / 0.46) ** 2 + ((y - 0.55) / 0.6) ** 2 < 1
    img[body] = 170
    shift = rng.uniform(-0.03, 0.03)
    for cx in (0.3 + shift, 0.7 + shift):  # lungs: dark ellipses
        lung = ((x - cx) / 0.16) ** 2 + ((y - 0.5) / 0.3) ** 2 < 1
        img[lung] = 70 + rng.uniform(-10, 10)
    ribs = (np.sin(y * np.pi * 18 + x * 2) > 0.85) & body
    img[ribs] += 35
    img[(np.abs(x - 0.5 - shift) < 0.05) & body] = 215  # spine / mediastinum
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_xray_like_png(size: int = 256, seed: int = 0) -> bytes:
    return encode_png(make_xray_like_pixels(size, seed))


EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"


def make_dicom_bytes(
    *,
    rows: int = 256,
    columns: int = 256,
    seed: int = 0,
    monochrome1: bool = False,
    with_patient_tags: bool = True,
    bits_stored: int = 12,
    rescale_slope: float | None = None,
    rescale_intercept: float | None = None,
    window: tuple[float, float] | None = None,  # (center, width) in modality units
    with_pixel_data: bool = True,
    stored_values: np.ndarray | None = None,  # raw uint16 values to store (overrides the picture)
    transfer_syntax: str = EXPLICIT_VR_LITTLE_ENDIAN,
    frames: int = 1,  # NumberOfFrames; the stored values are repeated for each frame
    pixel_data: bytes | None = None,  # raw PixelData bytes, whatever the header says (hostile files)
    header: dict[str, object] | None = None,  # extra or replaced attributes, e.g. {"BurnedInAnnotation": "YES"}
) -> bytes:
    """A synthetic DX DICOM Part-10 file, Explicit VR Little Endian unless ``transfer_syntax``
    names another: deflated, JPEG baseline (8-bit), JPEG 2000 lossless and RLE are really
    encoded; for any other UID the native bytes are encapsulated as they are (enough for a
    file that must be refused by its transfer syntax).

    By default the stored values are the X-ray-like picture scaled to ``bits_stored``
    bits; with ``monochrome1`` they are stored inverted (as a MONOCHROME1 modality
    would), so a correct reader displays the same picture either way. ``header`` sets attributes
    by keyword after the defaults (a ``SOPClassUID`` is copied into the file meta as well).
    """
    from pydicom.encaps import encapsulate

    bits_allocated = 16
    if transfer_syntax == JPEG_BASELINE:
        bits_allocated = bits_stored = 8  # baseline JPEG is 8-bit only
    ds = _xray_dataset(
        rows=rows,
        columns=columns,
        seed=seed,
        monochrome1=monochrome1,
        with_patient_tags=with_patient_tags,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        transfer_syntax=transfer_syntax,
        frames=frames,
    )
    if rescale_slope is not None or rescale_intercept is not None:
        ds.RescaleSlope = rescale_slope if rescale_slope is not None else 1.0
        ds.RescaleIntercept = rescale_intercept if rescale_intercept is not None else 0.0
        ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = float(window[0]), float(window[1])
    for keyword, value in (header or {}).items():
        setattr(ds, keyword, value)
        if keyword == "SOPClassUID":
            ds.file_meta.MediaStorageSOPClassUID = value

    if pixel_data is not None:
        ds.PixelData = pixel_data
    elif with_pixel_data:
        if stored_values is None:
            picture = make_xray_like_pixels(columns, seed, height=rows).astype(np.float64) / 255.0
            if monochrome1:
                picture = 1.0 - picture
            stored_values = np.rint(picture * (2**bits_stored - 1))
        values = np.asarray(stored_values, dtype=np.uint8 if ds.BitsAllocated == 8 else np.uint16)
        if transfer_syntax == RLE_LOSSLESS:
            ds.compress(RLE_LOSSLESS, values, generate_instance_uid=False)
        elif transfer_syntax in (JPEG_BASELINE, JPEG_2000_LOSSLESS):
            frame = _pillow_encode(values, "JPEG" if transfer_syntax == JPEG_BASELINE else "JPEG2000")
            ds.PixelData = encapsulate([frame] * frames)
        elif transfer_syntax in (EXPLICIT_VR_LITTLE_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN):
            ds.PixelData = values.tobytes() * frames
        else:  # another compressed syntax: its content does not matter, it is refused by name
            ds.PixelData = encapsulate([values.tobytes()] * frames)

    from pydicom.uid import UID

    # pydicom deflates the dataset for the deflated syntax; a made-up UID needs its encoding spelt out.
    encoding = {} if UID(transfer_syntax).is_transfer_syntax else {"implicit_vr": False, "little_endian": True}
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, **encoding)
    return buf.getvalue()


def _xray_dataset(
    *,
    rows: int,
    columns: int,
    seed: int,
    monochrome1: bool,
    with_patient_tags: bool,
    bits_allocated: int,
    bits_stored: int,
    transfer_syntax: str,
    frames: int,
):
    """The header of a synthetic DX image (no pixel data)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    sop_instance = generate_uid(entropy_srcs=[f"deepmed-test-{seed}-sop"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax

    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"deepmed-test-{seed}-study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"deepmed-test-{seed}-series"])
    ds.Modality = "DX"
    ds.ViewPosition = "PA"
    ds.BodyPartExamined = "CHEST"
    ds.PixelSpacing = [0.139, 0.139]
    if with_patient_tags:
        for keyword, value in FAKE_PATIENT_TAGS.items():
            setattr(ds, keyword, value)

    ds.Rows, ds.Columns = rows, columns
    if frames != 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    return ds


def _pillow_encode(values: np.ndarray, pil_format: str) -> bytes:
    buf = io.BytesIO()
    if pil_format == "JPEG":
        Image.fromarray(values).save(buf, format="JPEG", quality=95)
    else:  # lossless JPEG 2000 codestream, as DICOM encapsulates it
        Image.fromarray(values).save(buf, format="JPEG2000", irreversible=False, no_jp2=True)
    return buf.getvalue()


# --- hostile and limit-sized uploads ------------------------------------------------------
# Shared by tests/ml_core/test_imaging_hostile.py and ``python -m ml_core.bench_intake``. Each
# generator is cheap even when the decoded size would be huge: data that compresses ~1000:1
# (zeros) is streamed through zlib, or only a header claims the size.

_MB = 1024 * 1024


def make_large_xray_values(side: int, *, bits: int = 12, seed: int = 0) -> np.ndarray:
    """A side x side uint16 X-ray-like picture using ``bits`` bits, cheaply: the 512 px picture
    upscaled by repetition (the content matters less than the size)."""
    small = make_xray_like_pixels(512, seed).astype(np.uint16) * ((2**bits - 1) // 255)
    index = np.arange(side) * 512 // side
    return small[np.ix_(index, index)]


def make_noisy_xray_values(side: int, *, bits: int = 12, sigma: float = 48.0, seed: int = 0) -> np.ndarray:
    """``make_large_xray_values`` with Gaussian detector noise (``sigma`` in stored units): as hard
    to compress as a real radiograph (lossless JPEG 2000 at 5000 x 5000, 12 bits: ~26 MB)."""
    values = make_large_xray_values(side, bits=bits, seed=seed).astype(np.float32)
    values += np.random.default_rng(seed).normal(0, sigma, values.shape).astype(np.float32)
    return np.clip(np.rint(values), 0, 2**bits - 1).astype(np.uint16)


def make_png_stream(width: int, height: int, *, bit_depth: int = 16, flat: bool = False, seed: int = 0) -> bytes:
    """A valid greyscale PNG written row by row: X-ray-like (upscaled, 12 bits used of 16), or
    ``flat`` (one value: a huge flat image compresses to almost nothing)."""
    sample = np.dtype(">u2") if bit_depth == 16 else np.dtype(np.uint8)
    small = (make_xray_like_pixels(512, seed).astype(np.uint16) * (16 if bit_depth == 16 else 1)).astype(sample)
    columns = np.arange(width) * 512 // width
    flat_row = b"\x00" + np.zeros(width, sample).tobytes()
    compressor = zlib.compressobj(6)
    idat = [
        compressor.compress(flat_row if flat else b"\x00" + small[y * 512 // height, columns].tobytes())
        for y in range(height)
    ]
    idat.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)  # greyscale, no interlace
    return _png_file(ihdr, b"".join(idat))


def make_png_claiming(width: int, height: int) -> bytes:
    """A syntactically valid 8-bit PNG whose IHDR claims width x height over a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return _png_file(ihdr, zlib.compress(b"\x00" * 64))


def _png_file(ihdr: bytes, idat: bytes) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def make_jpeg_bytes(width: int, height: int, *, seed: int = 0, quality: int = 90) -> bytes:
    """A real greyscale JPEG of an (upscaled) X-ray-like picture."""
    small = make_xray_like_pixels(512, seed)
    picture = small[np.ix_(np.arange(height) * 512 // height, np.arange(width) * 512 // width)]
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def make_jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) is patched to claim width x height (<= 65535)."""
    data = bytearray(make_jpeg_bytes(64, 64))
    sof = data.index(b"\xff\xc0")  # marker, length (2), precision (1), height (2), width (2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def make_deflated_dicom_bomb(
    *, inflated_mb: int = 64, hidden_after_pixels: bool = False, rows: int = 256, columns: int = 256
) -> bytes:
    """A Deflated Explicit VR Little Endian DICOM declaring rows x columns (16-bit) whose dataset
    inflates to ``inflated_mb`` MB of zeros: as its PixelData (far longer than declared), or with
    ``hidden_after_pixels``, after a PixelData of the right length (as trailing padding).
    Deflate packs zeros ~1000:1: 400 MB of pixels cost ~400 KB."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    ds = _xray_dataset(
        rows=rows,
        columns=columns,
        seed=0,
        monochrome1=False,
        with_patient_tags=True,
        bits_allocated=16,
        bits_stored=12,
        transfer_syntax=DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
        frames=1,
    )
    meta, header = DicomBytesIO(), DicomBytesIO()
    for fp in (meta, header):
        fp.is_little_endian, fp.is_implicit_VR = True, False
    meta.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    write_dataset(header, ds)

    def element(group: int, elem: int, vr: bytes, length: int) -> bytes:  # explicit VR, 4-byte length
        return struct.pack("<HH2sHI", group, elem, vr, 0, length)

    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw deflate, as PS3.5 A.5
    parts = [meta.getvalue(), compressor.compress(header.getvalue())]
    if hidden_after_pixels:
        pixels = rows * columns * 2
        parts.append(compressor.compress(element(0x7FE0, 0x0010, b"OW", pixels) + bytes(pixels)))
        parts.append(compressor.compress(element(0xFFFC, 0xFFFC, b"OB", inflated_mb * _MB)))  # trailing padding
    else:
        parts.append(compressor.compress(element(0x7FE0, 0x0010, b"OW", inflated_mb * _MB)))
    zeros = bytes(_MB)
    parts += [compressor.compress(zeros) for _ in range(inflated_mb)]
    parts.append(compressor.flush())
    return b"".join(parts)


IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010), little endian


def _insert_before_pixel_data(data: bytes, raw: bytes) -> bytes:
    """``data`` (a little-endian DICOM) with raw element bytes inserted just before PixelData."""
    at = data.index(_PIXEL_DATA_TAG)
    return data[:at] + raw + data[at:]


def _undefined_length_sequence(tag: tuple[int, int], body: bytes) -> bytes:
    """An explicit VR SQ of undefined length holding one undefined-length item with ``body``."""
    return (
        struct.pack("<HH2sHI", *tag, b"SQ", 0, 0xFFFFFFFF)
        + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
        + body
        + struct.pack("<HHIHHI", 0xFFFE, 0xE00D, 0, 0xFFFE, 0xE0DD, 0)
    )


def make_dicom_many_elements(count: int, *, nested: bool = False) -> bytes:
    """A 64x64 DICOM whose header holds ``count`` empty private elements (8 bytes each: 1 MB is
    ~130,000), at the top level or inside one sequence item (``nested``)."""
    tags = ((group, element) for group in range(0x0009, 0x7FDF, 2) for element in range(0x1000, 0x10000))
    body = b"".join(struct.pack("<HH2sH", *tag, b"SH", 0) for tag, _ in zip(tags, range(count), strict=False))
    if nested:
        body = _undefined_length_sequence((0x0009, 0x0FFF), body)
    return _insert_before_pixel_data(make_dicom_bytes(rows=64, columns=64), body)


def make_dicom_nested_sequences(depth: int) -> bytes:
    """A 64x64 DICOM with ``depth`` sequences nested in each other (undefined lengths)."""
    open_level = struct.pack("<HH2sHIHHI", 0x0009, 0x1010, b"SQ", 0, 0xFFFFFFFF, 0xFFFE, 0xE000, 0xFFFFFFFF)
    close_level = struct.pack("<HHIHHI", 0xFFFE, 0xE00D, 0, 0xFFFE, 0xE0DD, 0)
    return _insert_before_pixel_data(make_dicom_bytes(rows=64, columns=64), open_level * depth + close_level * depth)


def make_dicom_long_value(tag: tuple[int, int], count: int, item: bytes = b"1") -> bytes:
    """An Implicit VR (4-byte lengths) 64x64 DICOM whose attribute ``tag`` holds ``count`` values
    ``item`` ("1\\1\\..."): e.g. (0028,1050) WindowCenter, a DS converted value by value."""
    pixels = make_xray_like_pixels(64).astype("<u2").tobytes()
    data = make_dicom_bytes(rows=64, columns=64, transfer_syntax=IMPLICIT_VR_LITTLE_ENDIAN, pixel_data=pixels)
    value = b"\\".join([item] * count)
    value += b" " * (len(value) % 2)
    return _insert_before_pixel_data(data, struct.pack("<HHI", *tag, len(value)) + value)


def _fragment(payload: bytes) -> bytes:
    payload += b"\0" * (len(payload) % 2)
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(payload)) + payload


def encapsulate_raw(fragments: list[bytes], *, offsets: bytes = b"") -> bytes:
    """Encapsulated pixel data as written, lies included: a Basic Offset Table item holding
    ``offsets`` (raw), the fragments, the sequence delimiter."""
    return _fragment(offsets) + b"".join(_fragment(f) for f in fragments) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def make_jpeg_dicom(pixel_data: bytes, *, frames: int = 1, side: int = 256, extended_offsets: bytes = b"") -> bytes:
    """A side x side JPEG-baseline DICOM with raw encapsulated ``pixel_data``, and with
    ``extended_offsets`` an Extended Offset Table (7FE0,0001) of that content (lengths: the rest
    of the pixel data)."""
    data = make_dicom_bytes(
        rows=side,
        columns=side,
        transfer_syntax=JPEG_BASELINE,
        pixel_data=pixel_data,
        header={"NumberOfFrames": frames} if frames != 1 else None,
    )
    if extended_offsets:
        lengths = struct.pack(f"<{len(extended_offsets) // 8}Q", *[len(pixel_data)] * (len(extended_offsets) // 8))
        data = _insert_before_pixel_data(
            data,
            struct.pack("<HH2sHI", 0x7FE0, 0x0001, b"OV", 0, len(extended_offsets))
            + extended_offsets
            + struct.pack("<HH2sHI", 0x7FE0, 0x0002, b"OV", 0, len(lengths))
            + lengths,
        )
    return data


def make_dicom_offset_table_bomb(entries: int) -> bytes:
    """A JPEG-baseline DICOM (one frame) whose Basic Offset Table claims ``entries`` frames
    (4 bytes each, distinct values: each becomes its own Python int when parsed)."""
    offsets = np.arange(1000, 1000 + entries, dtype="<u4").tobytes()
    return make_jpeg_dicom(encapsulate_raw([make_jpeg_bytes(256, 256)], offsets=offsets))


def make_dicom_many_fragments(count: int, *, frames: int = 2) -> bytes:
    """A multi-frame JPEG-baseline DICOM without offset table: one real frame, then ``count``
    2-byte fragments (10 bytes each)."""
    return make_jpeg_dicom(encapsulate_raw([make_jpeg_bytes(256, 256)] + [b"\0\0"] * count), frames=frames)


def make_dicom_hidden_frame(hidden: bytes) -> bytes:
    """A 256x256 JPEG-baseline DICOM whose offset table and fragments say frame 0 is a genuine
    256x256 JPEG, and whose Extended Offset Table points at ``hidden`` instead."""
    genuine = make_jpeg_bytes(256, 256)
    offset = 8 + len(genuine) + len(genuine) % 2  # from the first fragment's item tag
    return make_jpeg_dicom(encapsulate_raw([genuine, hidden]), extended_offsets=struct.pack("<Q", offset))


def make_flat_jpeg(width: int, height: int, *, progressive: bool = False, mode: str = "L") -> bytes:
    """A one-colour JPEG: a large picture in a few KB (~0.15 bit per pixel)."""
    buf = io.BytesIO()
    Image.new(mode, (width, height), 100 if mode == "L" else (100,) * len(mode)).save(
        buf, format="JPEG", quality=50, progressive=progressive
    )
    return buf.getvalue()


def make_j2k_frame(width: int, height: int, *, mode: str = "L") -> bytes:
    """A lossless JPEG 2000 codestream of a one-colour picture (``mode`` L, I;16, RGB, RGBA...)."""
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, format="JPEG2000", irreversible=False, no_jp2=True)
    return buf.getvalue()


def make_j2k_dicom(frame: bytes, *, rows: int, columns: int, bits: int = 8) -> bytes:
    """A one-sample (greyscale) JPEG 2000 DICOM of rows x columns whose frame is ``frame``."""
    from pydicom.encaps import encapsulate

    header = {"BitsAllocated": bits, "BitsStored": bits, "HighBit": bits - 1}
    return make_dicom_bytes(
        rows=rows, columns=columns, transfer_syntax=JPEG_2000_LOSSLESS, pixel_data=encapsulate([frame]), header=header
    )


def make_jpeg_marker_flood(count: int) -> bytes:
    """A 256x256 JPEG with ``count`` empty APP5 segments (4 bytes each) before its frame."""
    jpeg = make_jpeg_bytes(256, 256)
    return jpeg[:2] + b"\xff\xe5\x00\x02" * count + jpeg[2:]


def make_jpeg_many_scans(side: int, scans: int) -> bytes:
    """A progressive side x side one-colour JPEG whose last scan is repeated to ``scans`` extra
    scans: each one is a pass over the whole coefficient buffer for a few bytes of input."""
    jpeg = make_flat_jpeg(side, side, progressive=True)
    last_scan = jpeg[jpeg.rindex(b"\xff\xda") : -2]  # SOS segment and its entropy-coded data, before EOI
    return jpeg[:-2] + last_scan * scans + b"\xff\xd9"


def make_png_chunk_flood(count: int, *, kind: bytes = b"aaAa") -> bytes:
    """A 256x256 PNG with ``count`` empty ancillary chunks (12 bytes each) before its IDAT;
    ``kind`` b"tEXt" makes them text chunks (each with its own key)."""
    png = make_xray_like_png(256)
    payloads = [b"k%d\0" % k for k in range(count)] if kind == b"tEXt" else [b""] * count
    chunks = b"".join(
        struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        for payload in payloads
    )
    at = png.index(b"IDAT") - 4
    return png[:at] + chunks + png[at:]


@dataclass(frozen=True)
class IntakeCase:
    """One upload for the intake tests and benchmark: ``expected`` is the ml_core error code,
    or None when it must be accepted."""

    name: str
    make: Callable[[], bytes]
    expected: str | None
    about: str


def intake_cases(*, full_scale: bool = False) -> list[IntakeCase]:
    """Hostile inputs of every class, and the largest legitimate ones. ``full_scale`` makes the
    deflated bomb as large as in the security report (400 MB inflated); tests use 64 MB."""
    bomb_mb = 400 if full_scale else 64
    flood = 3_500_000 if full_scale else 200_000  # tiny elements/values/markers; full scale ~28 MB
    tiny = np.zeros((2, 2))
    j2k_side = 5000 if full_scale else 1200  # 26 MB, 4 s to encode; tests: 1.5 MB
    pixels = 256 * 256
    return [
        IntakeCase(
            "dicom_deflated_bomb",
            lambda: make_deflated_dicom_bomb(inflated_mb=bomb_mb),
            "decompression_bomb",
            f"deflated, declares 256x256, PixelData {bomb_mb} MB of zeros",
        ),
        IntakeCase(
            "dicom_deflated_bomb_trailer",
            lambda: make_deflated_dicom_bomb(inflated_mb=bomb_mb, hidden_after_pixels=True),
            "decompression_bomb",
            f"deflated, right PixelData, then {bomb_mb} MB of padding",
        ),
        IntakeCase(
            "dicom_pixels_too_long",
            lambda: make_dicom_bytes(stored_values=np.zeros(pixels + 4096)),
            "corrupt_image",
            "native, PixelData 8 KB longer than 256x256x16 bit",
        ),
        IntakeCase(
            "dicom_pixels_far_too_long",
            lambda: make_dicom_bytes(stored_values=np.zeros(pixels * 8)),
            "decompression_bomb",
            "native, PixelData 8x longer than declared",
        ),
        IntakeCase(
            "dicom_pixels_too_short",
            lambda: make_dicom_bytes(stored_values=np.zeros(pixels // 2)),
            "corrupt_image",
            "native, PixelData half as long as declared",
        ),
        IntakeCase(
            "dicom_huge_rows_columns",
            lambda: make_dicom_bytes(rows=60_000, columns=60_000, stored_values=tiny),
            "decompression_bomb",
            "declares 60000x60000",
        ),
        IntakeCase(
            "dicom_many_frames",
            lambda: make_dicom_bytes(frames=2_000, pixel_data=bytes(2 * pixels)),
            "decompression_bomb",
            "declares 2000 frames of 256x256 (carries one)",
        ),
        IntakeCase(
            "dicom_rle",
            lambda: make_dicom_bytes(transfer_syntax=RLE_LOSSLESS),
            "unsupported_file_type",
            "RLE Lossless (unbounded decoder)",
        ),
        IntakeCase(
            "dicom_jpeg_lossless",
            lambda: make_dicom_bytes(transfer_syntax=JPEG_LOSSLESS_SV1),
            "unsupported_file_type",
            "JPEG Lossless SV1 (no decoder)",
        ),
        IntakeCase(
            "dicom_jpeg_frame_bomb",
            lambda: _dicom_with_frame(make_jpeg_claiming(30_000, 30_000)),
            "decompression_bomb",
            "JPEG baseline, 256x256 declared, frame claims 30000x30000",
        ),
        IntakeCase(
            "dicom_truncated",
            lambda: make_dicom_bytes(rows=128, columns=128)[:-5000],
            "corrupt_image",
            "native, cut short",
        ),
        IntakeCase(
            "dicom_garbage", lambda: b"\0" * 128 + b"DICM" + b"\xff" * 300, "corrupt_image", "garbage after DICM"
        ),
        IntakeCase(
            "dicom_element_flood",
            lambda: make_dicom_many_elements(flood),
            "corrupt_image",
            f"{flood:,} empty private elements (8 bytes each)",
        ),
        IntakeCase(
            "dicom_element_flood_nested",
            lambda: make_dicom_many_elements(flood, nested=True),
            "corrupt_image",
            f"{flood:,} empty elements inside one sequence item",
        ),
        IntakeCase(
            "dicom_nested_sequences",
            lambda: make_dicom_nested_sequences(5_000),
            "corrupt_image",
            "5,000 sequences nested in each other",
        ),
        IntakeCase(
            "dicom_window_center_flood",
            lambda: make_dicom_long_value((0x0028, 0x1050), 4 * flood),
            "corrupt_image",
            f"implicit VR WindowCenter of {4 * flood:,} values",
        ),
        IntakeCase(
            "dicom_offset_table_bomb",
            lambda: make_dicom_offset_table_bomb(flood * 2),
            "corrupt_image",
            f"JPEG, one frame, Basic Offset Table of {flood * 2:,} entries",
        ),
        IntakeCase(
            "dicom_fragment_flood",
            lambda: make_dicom_many_fragments(flood * 2 // 3),
            "corrupt_image",
            f"JPEG, 2 frames, {flood * 2 // 3:,} empty fragments",
        ),
        IntakeCase(
            "dicom_eot_hidden_frame",
            lambda: make_dicom_hidden_frame(
                make_flat_jpeg(13_000, 13_000) if full_scale else make_flat_jpeg(4000, 4000)
            ),
            None,
            "Extended Offset Table points at a 13000x13000 JPEG: the genuine 256x256 frame is decoded",
        ),
        IntakeCase(
            "dicom_j2k_rgba_as_grey",
            lambda: make_j2k_dicom(make_j2k_frame(5000, 5000, mode="RGBA"), rows=5000, columns=5000),
            "corrupt_image",
            "JPEG 2000 frame of 4 components under a greyscale 5000x5000 header",
        ),
        IntakeCase(
            "dicom_jpeg_segment_flood",
            lambda: make_jpeg_dicom(encapsulate_raw([make_jpeg_marker_flood(2 * flood)])),
            "corrupt_image",
            f"JPEG frame with {2 * flood:,} empty APP segments",
        ),
        IntakeCase(
            "jpeg_segment_flood",
            lambda: make_jpeg_marker_flood(2 * flood),
            "corrupt_image",
            f"JPEG with {2 * flood:,} empty APP segments",
        ),
        IntakeCase(
            "jpeg_many_scans",
            lambda: make_jpeg_many_scans(5000, 1000),
            "decompression_bomb",
            "progressive 5000x5000 JPEG, its last scan repeated 1,000 times",
        ),
        IntakeCase(
            "png_chunk_flood",
            lambda: make_png_chunk_flood(flood * 2 // 3),
            "corrupt_image",
            f"PNG with {flood * 2 // 3:,} empty ancillary chunks",
        ),
        IntakeCase(
            "png_text_flood",
            lambda: make_png_chunk_flood(flood // 3, kind=b"tEXt"),
            "corrupt_image",
            f"PNG with {flood // 3:,} tEXt chunks",
        ),
        IntakeCase(
            "jpeg_progressive_5000",
            lambda: make_jpeg_many_scans(5000, JPEG_MAX_SCANS - 6),
            None,
            f"legit: progressive 5000x5000 one-colour JPEG at the {JPEG_MAX_SCANS}-scan limit",
        ),
        IntakeCase(
            "png_16bit_7000",
            lambda: make_png_stream(7000, 7000, flat=True),
            "decompression_bomb",
            "7000x7000 16-bit flat PNG (~95 KB)",
        ),
        IntakeCase(
            "png_bomb_header",
            lambda: make_png_claiming(60_000, 60_000),
            "decompression_bomb",
            "PNG header claims 60000x60000",
        ),
        IntakeCase(
            "jpeg_bomb_header",
            lambda: make_jpeg_claiming(40_000, 40_000),
            "decompression_bomb",
            "JPEG header claims 40000x40000",
        ),
        IntakeCase("png_truncated", lambda: make_xray_like_png(256, seed=3)[:3000], "corrupt_image", "PNG cut short"),
        IntakeCase("jpeg_truncated", lambda: make_jpeg_bytes(512, 512)[:2000], "corrupt_image", "JPEG cut short"),
        IntakeCase(
            "dicom_4096_16bit",
            lambda: make_dicom_bytes(rows=4096, columns=4096, stored_values=make_large_xray_values(4096)),
            None,
            "legit: native 4096x4096, 12 of 16 bits",
        ),
        IntakeCase(
            "dicom_4096_16bit_deflated",
            lambda: make_dicom_bytes(
                rows=4096,
                columns=4096,
                stored_values=make_large_xray_values(4096),
                transfer_syntax=DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
            ),
            None,
            "legit: deflated 4096x4096, 16-bit",
        ),
        IntakeCase(
            "dicom_j2k_2048",
            lambda: make_dicom_bytes(
                rows=2048, columns=2048, stored_values=make_large_xray_values(2048), transfer_syntax=JPEG_2000_LOSSLESS
            ),
            None,
            "legit: JPEG 2000 lossless 2048x2048, 16-bit",
        ),
        IntakeCase(
            "dicom_j2k_noisy_largest",
            lambda: make_dicom_bytes(
                rows=j2k_side,
                columns=j2k_side,
                stored_values=make_noisy_xray_values(j2k_side),
                transfer_syntax=JPEG_2000_LOSSLESS,
            ),
            None,
            f"legit: JPEG 2000 lossless {j2k_side}x{j2k_side}, 12 of 16 bits with detector noise "
            "(decoded at half resolution)",
        ),
        IntakeCase("png_16bit_4000", lambda: make_png_stream(4000, 4000), None, "legit: 4000x4000 16-bit PNG"),
        IntakeCase(
            "png_8bit_3000", lambda: make_png_stream(3000, 3000, bit_depth=8), None, "legit: 3000x3000 8-bit PNG"
        ),
        IntakeCase("jpeg_5000", lambda: make_jpeg_bytes(5000, 5000), None, "legit: 5000x5000 JPEG (largest side)"),
    ]


def _dicom_with_frame(frame: bytes) -> bytes:
    """A 256x256 JPEG-baseline DICOM whose single encapsulated frame is ``frame``."""
    from pydicom.encaps import encapsulate

    return make_dicom_bytes(transfer_syntax=JPEG_BASELINE, pixel_data=encapsulate([frame]))


def make_tiny_package(
    directory: Path,
    *,
    classes: tuple[str, ...] = ("COVID-19", "NORMAL", "PNEUMONIA"),
    name: str = "cxr-tiny",
    version: str = "1",
    seed: int = 0,
    temperature: float = 1.0,
    with_ood: bool = False,
) -> Path:
    """Build a RANDOM-WEIGHT test package (cxr_tiny, 64 px) in ``directory``; ~1 s on CPU.

    Predictions from it are meaningless by design: it exists to exercise the serving
    contract (probabilities, heat-maps, OOD plumbing) without real weights.
    """
    import torch

    from ml_core.export import export_onnx
    from ml_core.models import (
        LogitsAndFeatures,
        ModelConfig,
        build_model,
        classifier_weights,
    )
    from ml_core.ood import fit_mahalanobis, pooled_features
    from ml_core.package import save_package
    from ml_core.preprocessing import PreprocessConfig, preprocess

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model_cfg = ModelConfig(architecture="cxr_tiny", num_classes=len(classes), drop_rate=0.0)
    model = build_model(model_cfg).eval()
    pre_cfg = PreprocessConfig(image_size=TINY_IMAGE_SIZE)
    onnx_path = export_onnx(model, pre_cfg, directory / "model.onnx")

    ood = None
    if with_ood:
        # Varied sizes: resizing changes texture statistics the random features react to.
        sizes = (96, 128, 192, 256, 384, 512)
        images = [make_xray_like_pixels(sizes[i % len(sizes)], seed=seed * 1000 + i) for i in range(180)]
        batch = np.concatenate([preprocess(img, pre_cfg) for img in images])
        with torch.no_grad():
            _, feats = LogitsAndFeatures(model)(torch.from_numpy(batch))
        pooled = pooled_features(feats.numpy())
        ood = fit_mahalanobis(pooled[:120], calibration=pooled[120:], percentile=99.0)

    return save_package(
        directory,
        onnx_path=onnx_path,
        name=name,
        version=version,
        classes=list(classes),
        architecture=model_cfg.architecture,
        preprocess=pre_cfg,
        cam_weights=classifier_weights(model),
        temperature=temperature,
        ood=ood,
        metrics={"note": "random-weight test fixture; predictions are meaningless"},
        extra={"test_fixture": True, "seed": seed},
    )


def make_tiny_imagefolder(
    root: Path,
    *,
    classes: tuple[str, ...] = ("COVID-19", "NORMAL", "PNEUMONIA"),
    per_split: dict[str, int] | None = None,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """A SYNTHETIC ``<split>/<CLASS>/*.png`` tree whose classes are learnable: each class adds
    a bright blob at its own position to an X-ray-like picture (tests only, not anatomy)."""
    root = Path(root)
    per_split = per_split or {"train": 16, "val": 6, "test": 6}
    offsets = {"train": 0, "val": 100_000, "test": 200_000}
    for split, n in per_split.items():
        for k, label in enumerate(classes):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = make_xray_like_pixels(size, seed=seed + offsets.get(split, 300_000) + 1000 * k + i).astype(
                    np.int16
                )
                cy, cx = size // 4 + (k * size) // (2 * max(1, len(classes) - 1)), size // 2
                r = max(2, size // 10)
                pixels[max(0, cy - r) : cy + r, cx - r : cx + r] += 80
                (folder / f"{split}_{k}_{i:03d}.png").write_bytes(encode_png(np.clip(pixels, 0, 255).astype(np.uint8)))
    return root


# PackageConfig settings that keep a test package build to a few seconds.
FAST_PACKAGE_SETTINGS = {
    "latency_runs": 3,
    "ood_fit_images": 48,
    "calibration_images": 12,
    "ae_epochs": 2,
    "ood_outliers_per_kind": 4,
}


def tiny_train_config(data: Path | str, out: Path | str, **overrides):
    """A TrainConfig for the 25 k-parameter cxr_tiny at 32 px: a few seconds on one CPU thread."""
    from ml_core.train import TrainConfig

    base = TrainConfig(
        data=str(data),
        out_dir=str(out),
        architecture="cxr_tiny",
        image_size=32,
        epochs=4,
        patience=10,
        augment="none",
        batch_size=8,
        lr=1e-2,
        weight_decay=0.0,
        warmup_epochs=0.5,
        drop_rate=0.0,
        num_threads=1,
        seed=3,
    )
    from dataclasses import replace

    return replace(base, **overrides)
