"""The upload page: one file control that offers PNG, JPEG and DICOM, the preview's place, the
other fields tied to their help, and a message when the page sends the patient to the disclaimer."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_one_file_control_accepting_png_jpeg_and_dicom(client, consenting_patient):
    client.force_login(consenting_patient)
    html = client.get("/studies/upload/").content.decode()
    inputs = re.findall(r'<input[^>]*type="file"[^>]*>', html)
    assert len(inputs) == 1
    accept = re.search(r'accept="([^"]+)"', inputs[0]).group(1).split(",")
    assert {".png", ".jpg", ".jpeg", ".dcm", "image/png", "image/jpeg", "application/dicom"} <= set(accept)
    assert html.count('for="id_image"') == 1 and 'class="button file-button"' in html
    assert 'id="upload-preview" hidden' in html and 'id="upload-preview-image"' in html
    assert re.search(r'<textarea[^>]*aria-describedby="id_symptoms_helptext"', html)


def test_upload_errors_mark_the_file_field_invalid(client, consenting_patient):
    client.force_login(consenting_patient)
    response = client.post("/studies/upload/", {"patient_age": "500"})
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'<input[^>]*type="file"[^>]*aria-invalid="true"', html)
    age = re.search(r'<input[^>]*name="patient_age"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in age and "id_patient_age_error" in age


def test_upload_page_says_why_it_sent_the_patient_to_the_disclaimer(client, patient):
    client.force_login(patient)
    response = client.get("/studies/upload/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/disclaimer/?next=/studies/upload/")
    html = response.content.decode()
    assert "Before your first upload, please read and accept the disclaimer" in html


def test_the_study_status_is_a_live_region(client, queued_study):
    client.force_login(queued_study.owner)
    html = client.get(f"/studies/{queued_study.pk}/").content.decode()
    badge = re.search(r'<span id="study-status"[^>]*>', html).group(0)
    assert 'role="status"' in badge and 'aria-live="polite"' in badge


def test_history_table_scrolls_on_a_phone_and_every_column_is_named(client, queued_study):
    client.force_login(queued_study.owner)
    html = client.get("/studies/").content.decode()
    assert '<div class="table-scroll" role="region" aria-labelledby="history-caption" tabindex="0">' in html
    assert "<th></th>" not in html
