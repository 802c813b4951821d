"""Intake safety: every class of bad upload is refused with its own stable code and a clear
message, through the service, the web form and the API, and leaves no row or file behind."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from apps.audit.models import AuditEvent
from apps.studies.models import Study
from apps.studies.services import (
    StudyIntakeError,
    create_study,
    create_study_from_upload,
    intake_decode_slots,
)
from ml_core.testing import (
    FAKE_PATIENT_TAGS,
    RLE_LOSSLESS,
    make_deflated_dicom_bomb,
    make_dicom_bytes,
    make_png_stream,
)


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width), 128, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims width x height (a decompression bomb's header)."""
    data = bytearray(_png(64, 64))
    ihdr = bytearray(data[16:29])  # the 13-byte IHDR payload after length + type
    ihdr[0:8] = struct.pack(">II", width, height)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


# name -> (bytes factory, expected stable code, finer ml_core reason or "", words in the message)
BAD_UPLOADS = {
    "pdf_named_png": (lambda: b"%PDF-1.7\n" + b"\0" * 500, "unsupported_file_type", "", "only PNG, JPEG and DICOM"),
    "gif": (lambda: b"GIF89a" + b"\0" * 500, "unsupported_file_type", "", "only PNG, JPEG and DICOM"),
    "text_named_dcm": (
        lambda: b"\0" * 128 + b"DICX" + b"hello",
        "unsupported_file_type",
        "",
        "only PNG, JPEG and DICOM",
    ),
    "decompression_bomb": (lambda: _png_claiming(40_000, 40_000), "image_too_large", "decompression_bomb", "pixels"),
    "truncated_png": (lambda: _png(256, 256)[:60], "corrupt_image", "", "corrupt or truncated"),
    "truncated_jpeg": (lambda: _jpeg()[:400], "corrupt_image", "", "corrupt or truncated"),
    "garbage_after_png_magic": (lambda: b"\x89PNG\r\n\x1a\n" + b"\x13" * 400, "corrupt_image", "", "corrupt"),
    "garbage_dicom": (lambda: b"\0" * 128 + b"DICM" + b"\xff" * 300, "corrupt_image", "", "DICOM"),
    "dicom_without_pixels": (
        lambda: make_dicom_bytes(with_pixel_data=False),
        "corrupt_image",
        "dicom_no_pixel_data",
        "no pixel data",
    ),
    "absurdly_wide": (lambda: _png(12_000, 64), "image_too_large", "", "largest side"),
    "deflated_dicom_bomb": (
        lambda: make_deflated_dicom_bomb(inflated_mb=16),
        "image_too_large",
        "decompression_bomb",
        "pixels",
    ),
    "dicom_pixels_longer_than_declared": (
        lambda: make_dicom_bytes(stored_values=np.zeros(256 * 257)),
        "corrupt_image",
        "",
        "pixel data",
    ),
    "dicom_rle": (lambda: make_dicom_bytes(transfer_syntax=RLE_LOSSLESS), "unsupported_file_type", "", "RLE Lossless"),
    "png_16bit_7000": (
        lambda: make_png_stream(7000, 7000, flat=True),
        "image_too_large",
        "decompression_bomb",
        "pixels",
    ),
    "absurdly_small": (lambda: _png(8, 8), "image_too_small", "", "at least"),
    "empty": (lambda: b"", "empty_file", "", "empty"),
}


def _assert_nothing_left(stored_files):
    assert not Study.objects.exists()
    assert not AuditEvent.objects.filter(action="study.create").exists()
    assert stored_files() == []


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_service_refuses_each_bad_upload_with_its_code_and_leaves_nothing(consenting_patient, stored_files, case):
    make, code, reason, words = BAD_UPLOADS[case]
    with pytest.raises(StudyIntakeError) as exc:
        create_study(owner=consenting_patient, data=make())
    assert exc.value.code == code
    assert exc.value.reason == (reason or exc.value.reason)
    assert words.lower() in exc.value.message.lower()
    _assert_nothing_left(stored_files)


@pytest.mark.parametrize("case", ["gif", "decompression_bomb", "truncated_png", "absurdly_wide"])
def test_api_answers_bad_uploads_with_the_error_envelope(api_client, consenting_patient, stored_files, case):
    make, code, reason, _ = BAD_UPLOADS[case]
    api_client.force_authenticate(consenting_patient)
    response = api_client.post("/api/v1/studies", {"image": SimpleUploadedFile("x.png", make())}, format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    if reason:
        assert error["details"]["reason"] == reason
    _assert_nothing_left(stored_files)


@pytest.mark.parametrize("case", ["pdf_named_png", "garbage_dicom", "absurdly_small"])
def test_web_form_shows_the_reason_and_leaves_nothing(client, consenting_patient, stored_files, case):
    make, _, _, words = BAD_UPLOADS[case]
    client.force_login(consenting_patient)
    response = client.post("/studies/upload/", {"image": SimpleUploadedFile("x.png", make())})
    assert response.status_code == 400
    assert words.lower() in response.content.decode().lower()
    _assert_nothing_left(stored_files)


def test_size_limit_is_configurable_and_checked_before_reading(consenting_patient, settings, stored_files, xray_png):
    settings.DEEPMED_MAX_UPLOAD_MB = 1
    settings.DEEPMED_MAX_UPLOAD_BYTES = len(xray_png) - 1

    class Unreadable:
        size = len(xray_png)

        def read(self):
            raise AssertionError("an oversized upload must not be read into memory")

    with pytest.raises(StudyIntakeError) as exc:
        create_study_from_upload(owner=consenting_patient, upload=Unreadable())
    assert exc.value.code == "file_too_large" and "1 MB" in exc.value.message
    with pytest.raises(StudyIntakeError):
        create_study(owner=consenting_patient, data=xray_png)
    _assert_nothing_left(stored_files)
    settings.DEEPMED_MAX_UPLOAD_BYTES = len(xray_png)  # exactly at the limit is fine
    assert create_study(owner=consenting_patient, data=xray_png).pk


def test_api_too_large_is_413(api_client, consenting_patient, settings, stored_files, xray_png):
    settings.DEEPMED_MAX_UPLOAD_BYTES = 1000
    api_client.force_authenticate(consenting_patient)
    response = api_client.post("/api/v1/studies", {"image": SimpleUploadedFile("x.png", xray_png)}, format="multipart")
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
    _assert_nothing_left(stored_files)


def test_pixel_budget_is_configurable(consenting_patient, settings, stored_files, xray_png):
    settings.DEEPMED_MAX_IMAGE_PIXELS = 256 * 256 - 1
    with pytest.raises(StudyIntakeError) as exc:
        create_study(owner=consenting_patient, data=xray_png)
    assert (exc.value.code, exc.value.reason) == ("image_too_large", "decompression_bomb")
    _assert_nothing_left(stored_files)


def test_side_limit_is_configurable(consenting_patient, settings, stored_files, xray_png):
    settings.DEEPMED_MAX_IMAGE_SIDE = 255
    with pytest.raises(StudyIntakeError) as exc:
        create_study(owner=consenting_patient, data=xray_png)
    assert exc.value.code == "image_too_large" and "255" in exc.value.message
    _assert_nothing_left(stored_files)


@pytest.fixture
def busy_decoder(settings):
    """Every decode slot taken (one slot, waited for 10 ms)."""
    settings.DEEPMED_MAX_CONCURRENT_DECODES = 1
    settings.DEEPMED_DECODE_WAIT_SECONDS = 0.01
    with intake_decode_slots().hold():
        yield


def test_api_answers_busy_decoder_with_503_and_retry_after(
    api_client, consenting_patient, stored_files, xray_png, busy_decoder
):
    api_client.force_authenticate(consenting_patient)
    response = api_client.post("/api/v1/studies", {"image": SimpleUploadedFile("x.png", xray_png)}, format="multipart")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    error = response.json()["error"]
    assert error["code"] == "server_busy" and "try again" in error["message"].lower()
    _assert_nothing_left(stored_files)


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_web_form_answers_busy_decoder_with_503_and_retry_after(
    client, consenting_patient, stored_files, xray_png, busy_decoder, accept
):
    client.force_login(consenting_patient)
    response = client.post("/studies/upload/", {"image": SimpleUploadedFile("x.png", xray_png)}, HTTP_ACCEPT=accept)
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "try again" in response.content.decode().lower()
    _assert_nothing_left(stored_files)


def test_busy_decoder_refusal_is_not_remembered(
    consenting_patient, settings, xray_png, django_capture_on_commit_callbacks
):
    settings.DEEPMED_MAX_CONCURRENT_DECODES = 1
    settings.DEEPMED_DECODE_WAIT_SECONDS = 0.01
    with intake_decode_slots().hold(), pytest.raises(StudyIntakeError) as exc:
        create_study(owner=consenting_patient, data=xray_png)
    assert exc.value.code == "server_busy"
    with django_capture_on_commit_callbacks(execute=False):
        assert not create_study(owner=consenting_patient, data=xray_png).is_duplicate_upload  # the slot is back


def test_stored_image_is_bounded_to_the_viewer_size(consenting_patient, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        study = create_study(owner=consenting_patient, data=make_png_stream(3000, 2400, bit_depth=8))
    assert (study.width, study.height) == (2048, 1638)
    with study.image.open("rb") as fh:
        assert Image.open(fh).size == (2048, 1638)


def test_type_is_judged_by_content_not_by_name(consenting_patient, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        study = create_study_from_upload(owner=consenting_patient, upload=SimpleUploadedFile("report.pdf", _jpeg()))
    assert study.original_format == "jpeg"


def test_dicom_identity_is_neither_stored_nor_shown(
    client, api_client, consenting_patient, django_capture_on_commit_callbacks
):
    data = make_dicom_bytes(with_patient_tags=True)
    secrets = [v for v in FAKE_PATIENT_TAGS.values() if len(v) > 3]
    assert all(v.encode() in data for v in secrets)  # the upload really carries identity
    with django_capture_on_commit_callbacks(execute=False):
        study = create_study_from_upload(owner=consenting_patient, upload=SimpleUploadedFile("scan.dcm", data))
    study.refresh_from_db()
    with study.image.open("rb") as fh:
        stored = fh.read()
    client.force_login(consenting_patient)
    api_client.force_authenticate(consenting_patient)
    shown = [
        stored,
        repr(study.__dict__).encode(),
        client.get(f"/studies/{study.pk}/").content,
        b"".join(client.get(f"/studies/{study.pk}/image.png").streaming_content),
        api_client.get(f"/api/v1/studies/{study.pk}").content,
        repr(list(AuditEvent.objects.values())).encode(),
    ]
    for blob in shown:
        for value in secrets:
            assert value.encode() not in blob, value
    assert study.technical_tags["Modality"] == "DX"  # technical tags needed for display are kept


def test_web_uploads_share_the_api_rate_limit(client, consenting_patient, settings, monkeypatch):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.studies.models import Study
    from ml_core.testing import make_xray_like_png

    monkeypatch.setattr("apps.studies.services.enqueue_inference", lambda study_id: None)
    settings.DEEPMED_THROTTLE_RATES = {**settings.DEEPMED_THROTTLE_RATES, "upload_account": "1/hour"}
    client.force_login(consenting_patient)
    first = client.post(
        "/studies/upload/", {"image": SimpleUploadedFile("a.png", make_xray_like_png(size=96, seed=41))}
    )
    second = client.post(
        "/studies/upload/",
        {"image": SimpleUploadedFile("b.png", make_xray_like_png(size=96, seed=42))},
        HTTP_ACCEPT="application/json",
    )
    assert first.status_code == 302
    assert second.status_code == 429 and second.json()["error"]["code"] == "throttled"
    assert Study.objects.count() == 1
