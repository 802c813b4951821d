"""Decoding is bounded (issue 17, section 1): hostile uploads are refused from their headers
with stable codes and bounded memory; the largest legitimate ones decode to a bounded size.

Memory is measured with tracemalloc, which sees numpy arrays and Python buffers (not Pillow's
own image memory; the RSS view is in ``python -m ml_core.bench_intake``). No timing here."""

from __future__ import annotations

import io
import struct
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from ml_core.imaging import DecodeSlots, ImageIntakeError, decode_image
from ml_core.testing import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    JPEG_2000_LOSSLESS,
    JPEG_BASELINE,
    JPEG_LOSSLESS_SV1,
    RLE_LOSSLESS,
    encapsulate_raw,
    intake_cases,
    make_deflated_dicom_bomb,
    make_dicom_bytes,
    make_dicom_hidden_frame,
    make_dicom_long_value,
    make_dicom_many_elements,
    make_dicom_many_fragments,
    make_dicom_nested_sequences,
    make_dicom_offset_table_bomb,
    make_flat_jpeg,
    make_j2k_dicom,
    make_j2k_frame,
    make_jpeg_bytes,
    make_jpeg_claiming,
    make_jpeg_dicom,
    make_jpeg_many_scans,
    make_jpeg_marker_flood,
    make_large_xray_values,
    make_png_chunk_flood,
    make_png_claiming,
    make_png_stream,
    make_xray_like_pixels,
    make_xray_like_png,
)

MB = 1024 * 1024
DECLARED_PIXELS = 256 * 256  # make_dicom_bytes' default 256x256 image


def _refusal(data: bytes, **kwargs) -> ImageIntakeError:
    with pytest.raises(ImageIntakeError) as info:
        decode_image(data, **kwargs)
    return info.value


def _traced(fn):
    """(fn's result or the ImageIntakeError it raised, peak MB traced while it ran)."""
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        try:
            result = fn()
        except ImageIntakeError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1] / MB
    finally:
        if not already:
            tracemalloc.stop()


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def _expected_picture(side: int, seed: int = 0) -> np.ndarray:
    """make_large_xray_values' / make_png_stream's 512 px picture at the decoder's output size."""
    return np.asarray(Image.fromarray(make_xray_like_pixels(512, seed)).resize((side, side), Image.Resampling.BOX))


# --- deflated DICOM: capped inflation -----------------------------------------------------


def test_deflated_dicom_bomb_is_refused_without_inflating_it():
    bomb = make_deflated_dicom_bomb(inflated_mb=64)  # 256x256 declared, 64 MB of PixelData
    assert len(bomb) < MB
    error, peak_mb = _traced(lambda: decode_image(bomb))
    assert isinstance(error, ImageIntakeError) and error.code == "decompression_bomb"
    assert peak_mb < 24  # the header budget (8 MB) and its buffer, never the 64 MB


def test_deflated_bomb_hidden_after_the_pixel_data_is_refused():
    # PixelData has the declared length; 64 MB of "padding" follow it.
    bomb = make_deflated_dicom_bomb(inflated_mb=64, hidden_after_pixels=True)
    error, peak_mb = _traced(lambda: decode_image(bomb))
    assert isinstance(error, ImageIntakeError) and error.code == "decompression_bomb"
    assert peak_mb < 24


def test_legitimate_deflated_dicom_decodes_like_the_uncompressed_one():
    deflated = make_dicom_bytes(seed=5, transfer_syntax=DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    plain = make_dicom_bytes(seed=5)
    assert len(deflated) < len(plain)
    decoded = decode_image(deflated)
    np.testing.assert_array_equal(decoded.pixels, decode_image(plain).pixels)
    assert decoded.technical["TransferSyntax"] == "Deflated Explicit VR Little Endian"


def test_truncated_deflate_stream_is_corrupt():
    deflated = make_dicom_bytes(rows=128, columns=128, transfer_syntax=DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    assert _refusal(deflated[: len(deflated) * 2 // 3]).code == "corrupt_image"


# --- native DICOM: PixelData length must match the header --------------------------------


@pytest.mark.parametrize(
    ("stored_pixels", "code"),
    [
        (DECLARED_PIXELS + 2048, "corrupt_image"),  # a little longer than declared
        (DECLARED_PIXELS * 8, "decompression_bomb"),  # far longer
        (DECLARED_PIXELS // 2, "corrupt_image"),  # shorter
    ],
    ids=["longer", "far-longer", "shorter"],
)
def test_native_pixel_data_length_must_match_the_header(stored_pixels, code):
    data = make_dicom_bytes(stored_values=np.zeros(stored_pixels))
    error = _refusal(data)
    assert error.code == code
    assert "256x256" in error.message


def test_huge_dimensions_and_frame_counts_are_refused_from_the_header():
    one_frame = bytes(2 * DECLARED_PIXELS)
    assert _refusal(make_dicom_bytes(rows=60_000, columns=60_000, pixel_data=one_frame)).code == "decompression_bomb"
    many_frames = _refusal(make_dicom_bytes(frames=2_000, pixel_data=one_frame))
    assert many_frames.code == "decompression_bomb" and "2000x256x256" in many_frames.message


def test_multi_frame_dicom_within_limits_shows_its_first_frame():
    first = make_xray_like_pixels(256, seed=1).astype(np.uint16) * 16
    others = np.zeros((3, 256, 256), np.uint16)
    data = make_dicom_bytes(frames=4, pixel_data=np.concatenate([first[None], others]).tobytes())
    assert _correlation(decode_image(data).pixels, first) > 0.999


# --- DICOM structure: bounded before pydicom builds objects from it ---------------------------


@pytest.mark.parametrize("nested", [False, True], ids=["top-level", "in-a-sequence-item"])
def test_a_flood_of_tiny_elements_is_refused_before_it_is_parsed(nested):
    # 1,000,000 empty elements in 7.6 MB cost 283 MB and 4.3 s to parse (one Python object each).
    data = make_dicom_many_elements(200_000, nested=nested)
    error, peak_mb = _traced(lambda: decode_image(data))
    assert isinstance(error, ImageIntakeError) and error.code == "corrupt_image"
    assert "elements" in error.message
    assert peak_mb < 40


def test_a_header_with_many_elements_within_the_budget_still_decodes():
    assert decode_image(make_dicom_many_elements(5_000)).pixels.shape == (64, 64)


def test_deeply_nested_sequences_are_a_clean_refusal():
    # pydicom parses sequences recursively: the RecursionError must not escape.
    error, peak_mb = _traced(lambda: decode_image(make_dicom_nested_sequences(5_000)))
    assert isinstance(error, ImageIntakeError) and error.code == "corrupt_image"
    assert peak_mb < 10
    assert decode_image(make_dicom_nested_sequences(20)).pixels.shape == (64, 64)


@pytest.mark.parametrize(
    ("tag", "item"),
    [((0x0028, 0x1050), b"1"), ((0x0008, 0x0008), b"A"), ((0x0028, 0x0030), b"1"), ((0x0028, 0x0010), b"1")],
    ids=["WindowCenter", "ImageType", "PixelSpacing", "Rows"],
)
def test_a_read_attribute_with_a_huge_value_is_refused_before_conversion(tag, item):
    # 1,000,000 values in 1.9 MB became 451 MB and 4.2 s of Python floats (19 MB: 3.9 GB, 26 s).
    data = make_dicom_long_value(tag, 1_000_000, item)
    error, peak_mb = _traced(lambda: decode_image(data))
    assert isinstance(error, ImageIntakeError) and error.code == "corrupt_image"
    assert "implausibly long" in error.message
    assert peak_mb < 10


def test_trailing_elements_after_the_pixel_data_are_not_parsed():
    data = make_dicom_many_elements(0) + b"".join(
        struct.pack("<HH2sH", 0xFFFB - 2 * (k >> 16), k & 0xFFFF, b"SH", 0) for k in range(200_000)
    )
    decoded, peak_mb = _traced(lambda: decode_image(data))
    assert not isinstance(decoded, ImageIntakeError), decoded
    assert peak_mb < 10


# --- transfer syntaxes: an allow-list -------------------------------------------------------


@pytest.mark.parametrize(
    ("syntax", "name"),
    [(RLE_LOSSLESS, "RLE Lossless"), (JPEG_LOSSLESS_SV1, "JPEG Lossless"), ("1.2.3.4.5.6", "1.2.3.4.5.6")],
    ids=["rle", "jpeg-lossless", "unknown-private"],
)
def test_unsupported_dicom_compression_is_refused_by_name(syntax, name):
    error = _refusal(make_dicom_bytes(transfer_syntax=syntax))
    assert error.code == "unsupported_file_type"
    assert name in error.message and "uncompressed" in error.message


@pytest.mark.parametrize("syntax", [JPEG_BASELINE, JPEG_2000_LOSSLESS], ids=["jpeg-baseline", "jpeg-2000"])
def test_accepted_dicom_compressions_decode(syntax):
    decoded = decode_image(make_dicom_bytes(seed=3, transfer_syntax=syntax))
    assert (decoded.width, decoded.height) == (256, 256)
    assert _correlation(decoded.pixels, decode_image(make_dicom_bytes(seed=3)).pixels) > 0.99


def test_compressed_frame_must_have_the_declared_size():
    from pydicom.encaps import encapsulate

    def with_frame(frame: bytes) -> bytes:
        return make_dicom_bytes(transfer_syntax=JPEG_BASELINE, pixel_data=encapsulate([frame]))

    # The DICOM header says 256x256; the JPEG inside says otherwise (its header only is read).
    assert _refusal(with_frame(make_jpeg_claiming(30_000, 30_000))).code == "decompression_bomb"
    assert _refusal(with_frame(make_jpeg_bytes(128, 96))).code == "corrupt_image"


# --- encapsulated pixel data: the frame checked is the frame decoded ---------------------------


def test_a_huge_basic_offset_table_is_refused_without_parsing_it():
    # 7,000,000 entries (27 MB) became ~350 MB of Python ints in pydicom's get_frame.
    data = make_dicom_offset_table_bomb(1_000_000)
    error, peak_mb = _traced(lambda: decode_image(data))
    assert isinstance(error, ImageIntakeError) and error.code == "corrupt_image"
    assert "1,000,000 entries for 1 frame" in error.message
    assert peak_mb < 2 * len(data) / MB + 2  # the file and its pixel data, no list of offsets


def test_a_flood_of_fragments_is_refused():
    # 2,500,000 empty fragments (24 MB) took 4.3 s: pydicom walks them all, twice.
    error = _refusal(make_dicom_many_fragments(20_000))  # (far more stop at the read budget)
    assert error.code == "corrupt_image" and "fragments" in error.message


def test_multi_frame_and_multi_fragment_jpeg_dicoms_decode_their_first_frame():
    from pydicom.encaps import encapsulate

    jpeg = make_jpeg_bytes(256, 256)
    expected = decode_image(make_jpeg_dicom(encapsulate([jpeg]))).pixels
    for data in (
        make_jpeg_dicom(encapsulate([jpeg], fragments_per_frame=3)),
        make_jpeg_dicom(encapsulate([jpeg] * 3, has_bot=False), frames=3),
        make_jpeg_dicom(encapsulate([jpeg] * 2, fragments_per_frame=3, has_bot=False), frames=2),
        make_jpeg_dicom(encapsulate([jpeg] * 2, fragments_per_frame=3), frames=2),
        make_dicom_many_fragments(100),
    ):
        np.testing.assert_array_equal(decode_image(data).pixels, expected)


def test_an_extended_offset_table_cannot_point_the_decoder_at_another_frame():
    # The EOT named a 13000x13000 JPEG (1.9 MB) that pydicom decoded (~490 MB) after the
    # genuine 256x256 frame had passed the check.
    data = make_dicom_hidden_frame(make_flat_jpeg(4000, 4000))
    decoded, peak_mb = _traced(lambda: decode_image(data))
    assert not isinstance(decoded, ImageIntakeError), decoded
    genuine = make_jpeg_dicom(encapsulate_raw([make_jpeg_bytes(256, 256)]))
    np.testing.assert_array_equal(decoded.pixels, decode_image(genuine).pixels)
    assert peak_mb < 10


def test_a_compressed_frame_with_other_components_than_declared_is_refused():
    # A 4-component J2K under a greyscale header: 600 bytes decoded to ~580 MB before failing.
    data = make_j2k_dicom(make_j2k_frame(2000, 2000, mode="RGBA"), rows=2000, columns=2000)
    error, peak_mb = _traced(lambda: decode_image(data))
    assert isinstance(error, ImageIntakeError) and error.code == "corrupt_image"
    assert "RGBA" in error.message and peak_mb < 5
    assert decode_image(make_j2k_dicom(make_j2k_frame(256, 256, mode="I;16"), rows=256, columns=256, bits=16))


# --- PNG chunks, JPEG segments and scans -------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_png_chunk_flood(20_000),
        lambda: make_png_chunk_flood(20_000, kind=b"tEXt"),
        lambda: make_jpeg_marker_flood(20_000),
        lambda: make_jpeg_dicom(encapsulate_raw([make_jpeg_marker_flood(20_000)])),
        lambda: (lambda jpeg, end: jpeg[:end] + bytes(100_000) + jpeg[end:])(
            make_jpeg_bytes(256, 256), 20
        ),  # after APP0
    ],
    ids=["png-chunks", "png-text", "jpeg-segments", "jpeg-segments-in-dicom", "jpeg-junk"],
)
def test_floods_of_chunks_or_segments_are_refused_before_pillow_parses_them(make):
    # Pillow parses each in Python: 1,000,000 empty APP segments (3.8 MB) cost 112 MB / 1.2 s,
    # 1,000,000 empty PNG chunks (11.5 MB) 2.7 s.
    assert _refusal(make()).code == "corrupt_image"


def test_a_progressive_jpeg_with_too_many_scans_is_refused():
    # Each repeated scan is a pass over the whole image: 200 of them (100 KB, 5000x5000) took 3 s.
    assert _refusal(make_jpeg_many_scans(512, 100)).code == "decompression_bomb"
    assert decode_image(make_flat_jpeg(512, 512, progressive=True)).pixels.shape == (512, 512)
    assert decode_image(make_jpeg_many_scans(512, 20)).pixels.shape == (512, 512)


# --- pixel limits sized for chest radiographs ------------------------------------------------


def test_16bit_png_beyond_the_chest_xray_limit_is_refused():
    png = make_png_stream(7000, 7000, flat=True)  # 49 MP, ~95 KB
    assert len(png) < 200 * 1024
    error = _refusal(png)
    assert error.code == "decompression_bomb" and "25,000,000" in error.message


def test_default_limits_fit_the_largest_chest_detectors():
    # 5000 x 5000 passes the limits (then fails as the tiny fake it is); one pixel more does not.
    assert _refusal(make_png_claiming(5000, 5000)).code == "corrupt_image"
    assert _refusal(make_png_claiming(5001, 5000)).code == "decompression_bomb"
    assert _refusal(make_png_claiming(5200, 1000)).code == "image_too_large"


# --- bounded working copies --------------------------------------------------------------------


def test_large_16bit_png_decodes_in_bounded_memory():
    png = make_png_stream(4000, 4000)  # 12 of 16 bits used
    decoded, peak_mb = _traced(lambda: decode_image(png))
    assert not isinstance(decoded, ImageIntakeError), decoded
    assert peak_mb < 100  # no 64-bit float full-size copies (those alone were 128 MB each)
    assert decoded.pixels.shape == (2048, 2048) and decoded.pixels.dtype == np.uint8
    assert _correlation(decoded.pixels, _expected_picture(2048)) > 0.98


def test_large_16bit_dicom_decodes_in_bounded_memory():
    data = make_dicom_bytes(rows=4096, columns=4096, stored_values=make_large_xray_values(4096), window=(2048, 4096))
    decoded, peak_mb = _traced(lambda: decode_image(data))
    assert not isinstance(decoded, ImageIntakeError), decoded
    assert peak_mb < 150  # the pixel data and one 16-bit frame (32 MB each), then small copies
    assert decoded.pixels.shape == (2048, 2048)
    assert _correlation(decoded.pixels, _expected_picture(2048)) > 0.98


def test_decoded_pixels_are_shrunk_to_the_working_size():
    png = make_png_stream(3000, 2000, bit_depth=8)
    decoded = decode_image(png)
    assert decoded.pixels.shape == (1365, 2048) and (decoded.width, decoded.height) == (2048, 1365)
    assert decode_image(png, max_output_side=512).pixels.shape == (341, 512)
    small = make_xray_like_pixels(96, seed=1)  # at or below the working size: untouched
    np.testing.assert_array_equal(decode_image(_png(small), max_output_side=96).pixels, small)


def test_signed_dicom_is_shrunk_like_unsigned():
    import pydicom

    unsigned = make_dicom_bytes(seed=4)
    ds = pydicom.dcmread(io.BytesIO(unsigned))
    ds.PixelRepresentation = 1
    ds.PixelData = (ds.pixel_array.astype(np.int32) - 2048).astype(np.int16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf)
    expected = decode_image(unsigned, max_output_side=100).pixels
    np.testing.assert_array_equal(decode_image(buf.getvalue(), max_output_side=100).pixels, expected)


def test_large_jpeg_is_decoded_at_reduced_scale():
    jpeg = make_jpeg_bytes(5000, 5000)
    decoded, peak_mb = _traced(lambda: decode_image(jpeg))
    assert peak_mb < 40  # grey at 1/2 scale (draft), not the full-size picture
    assert decoded.pixels.shape == (2048, 2048)
    assert _correlation(decoded.pixels, _expected_picture(2048)) > 0.98


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


# --- concurrency -----------------------------------------------------------------------------


def test_decode_waits_for_a_free_slot_then_reports_server_busy():
    slots = DecodeSlots(1, wait_s=0.01)
    png = make_xray_like_png(96)
    with slots.hold():
        error = _refusal(png, slots=slots)
    assert error.code == "server_busy" and "try again" in error.message
    assert decode_image(png, slots=slots).width == 96  # the slot is free again


def test_a_failed_decode_gives_its_slot_back():
    slots = DecodeSlots(1, wait_s=0.01)
    assert _refusal(make_png_claiming(60_000, 60_000), slots=slots).code == "decompression_bomb"
    assert decode_image(make_xray_like_png(96), slots=slots).width == 96


# --- JPEG 2000 at reduced resolution ----------------------------------------------------------
# A JPEG 2000 frame larger than the working size is decoded with OpenJPEG skipping wavelet levels
# (the largest power-of-two reduction keeping >= max_output_side): a 5000 x 5000 16-bit frame
# 4.0 s / 318 MB -> 1.0 s / 153 MB (bench_intake, dicom_j2k_noisy_largest). Tolerance against the
# full-resolution decode, 8-bit output: the pictures correlate >= 0.98 (an inverted, sign-flipped or
# mis-shifted picture does not) and differ by at most 5 grey levels on average once the contrast
# stretch is matched by a linear fit (the wavelet's low band keeps more pixel noise than an area
# average, so a min-max stretch over noisy extremes can differ by ~15%); with a VOI window (no
# stretch over noise) they differ by at most 4 grey levels on average without any fit.


def _reduced_and_full(data: bytes, monkeypatch, **kwargs) -> tuple[np.ndarray, np.ndarray, list[int]]:
    from ml_core import dicom_j2k, imaging

    reductions: list[int] = []
    decode_frame = dicom_j2k._decode_frame

    def spy(src, runner):
        reductions.append(runner.get_option("j2k_reduce"))
        return decode_frame(src, runner)

    monkeypatch.setattr(dicom_j2k, "_decode_frame", spy)
    from pydicom.pixels import get_decoder

    monkeypatch.setitem(get_decoder(JPEG_2000_LOSSLESS)._available, dicom_j2k.LABEL, spy)
    reduced = decode_image(data, **kwargs).pixels
    with monkeypatch.context() as full:
        full.setattr(imaging, "_j2k_reduction", lambda *args: 0)
        whole = decode_image(data, **kwargs).pixels
    return reduced, whole, reductions


def _assert_same_picture(reduced: np.ndarray, whole: np.ndarray, *, fit: bool = True) -> None:
    height, width = min(reduced.shape[0], whole.shape[0]), min(reduced.shape[1], whole.shape[1])
    assert abs(reduced.shape[0] - whole.shape[0]) <= 1 and abs(reduced.shape[1] - whole.shape[1]) <= 1
    a, b = reduced[:height, :width].astype(np.float64).ravel(), whole[:height, :width].astype(np.float64).ravel()
    assert np.corrcoef(a, b)[0, 1] >= 0.98
    if fit:
        slope, intercept = np.polyfit(b, a, 1)
        assert np.abs(a - (slope * b + intercept)).mean() <= 5
    else:
        assert np.abs(a - b).mean() <= 4


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"monochrome1": True},
        {"bits_stored": 16},
        {"bits_stored": 8},
        {"rescale_slope": 2.0, "rescale_intercept": -1024.0},
        {"header": {"PixelRepresentation": 1}},
        {"rows": 1001, "columns": 777},
    ],
    ids=["plain", "monochrome1", "16-bit", "8-bit", "rescale", "signed", "odd-size"],
)
def test_large_j2k_is_decoded_at_reduced_resolution_as_the_full_picture(options, monkeypatch):
    args = {"rows": 1024, "columns": 1024, **options}
    data = make_dicom_bytes(transfer_syntax=JPEG_2000_LOSSLESS, **args)
    reduced, whole, reductions = _reduced_and_full(data, monkeypatch, max_output_side=400)
    assert reductions == [1]  # 1024 -> 512 (>= 400); 256 would be too small
    assert max(reduced.shape) == max(whole.shape) == 400
    _assert_same_picture(reduced, whole)


def test_reduced_j2k_keeps_the_voi_window(monkeypatch):
    data = make_dicom_bytes(transfer_syntax=JPEG_2000_LOSSLESS, rows=1024, columns=1024, window=(2000, 1500))
    reduced, whole, reductions = _reduced_and_full(data, monkeypatch, max_output_side=400)
    assert reductions == [1]
    _assert_same_picture(reduced, whole, fit=False)


def test_j2k_reduction_is_the_largest_keeping_the_working_size(monkeypatch):
    data = make_dicom_bytes(transfer_syntax=JPEG_2000_LOSSLESS, rows=1024, columns=1024)
    for output_side, expected in ((1024, []), (1000, []), (512, [1]), (300, [1]), (256, [2]), (200, [2])):
        reduced, _, reductions = _reduced_and_full(data, monkeypatch, max_output_side=output_side)
        assert (reductions, max(reduced.shape)) == (expected, min(output_side, 1024)), output_side


def test_j2k_reduction_stays_within_the_wavelet_levels(monkeypatch):
    values = make_large_xray_values(512)
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, format="JPEG2000", irreversible=False, no_jp2=True, num_resolutions=2)
    data = make_j2k_dicom(buf.getvalue(), rows=512, columns=512, bits=16)
    reduced, whole, reductions = _reduced_and_full(data, monkeypatch, max_output_side=64)
    assert reductions == [1]  # one decomposition level: 512 -> 256 at most, then area-averaged
    assert reduced.shape == whole.shape == (64, 64)


# --- the benchmark's catalogue -------------------------------------------------------------


@pytest.mark.parametrize("case", intake_cases(), ids=lambda case: case.name)
def test_every_intake_case_has_its_expected_outcome(case):
    try:
        outcome = decode_image(case.make()).source_format and None
    except ImageIntakeError as exc:
        outcome = exc.code
    assert outcome == case.expected, case.about
