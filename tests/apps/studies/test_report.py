"""The patient's PDF report: who may download it, that it is audited like every read of patient
data, and what it says (the review first, the preview, never the internal note, not a diagnosis)."""

from __future__ import annotations

import base64
import re
import zlib

import pytest

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def pdf_text(data: bytes) -> str:
    """The text drawing operators of every stream of a reportlab PDF (ASCII85, then Flate)."""
    text = []
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", data, flags=re.S):
        stream = stream.strip()
        try:
            if stream.endswith(b"~>"):
                stream = base64.a85decode(stream[:-2])
            text.append(zlib.decompress(stream).decode("latin-1"))
        except (ValueError, zlib.error):
            continue
    return "\n".join(text)


def _get(client, user, study):
    client.force_login(user)
    return client.get(f"/studies/{study.pk}/report.pdf")


def test_the_owner_downloads_a_pdf_with_the_review_first_and_the_disclaimer(client, reviewed_study):
    review = reviewed_study.reviews.get()
    review.internal_note = "Internal: query aspiration."
    review.save()
    response = _get(client, reviewed_study.owner, reviewed_study)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith('attachment; filename="deepmed-study-')
    assert "no-store" in response["Cache-Control"]
    body = response.content
    assert body.startswith(b"%PDF")
    text = pdf_text(body)
    assert "Reviewed by a physician: normal chest X-ray" in text
    assert "No consolidation on my reading." in text  # the note for the patient
    assert "query aspiration" not in text  # never the clinicians' internal note
    assert "replaced by the physician's review" in text
    assert "not a diagnosis" in text
    assert text.index("Reviewed by a physician") < text.index("Automated preview")
    assert "80%" in text  # the same rounded percentage as the page
    event = AuditEvent.objects.filter(action="study.report").latest("pk")
    assert event.outcome == "allowed" and event.object_id == str(reviewed_study.pk)
    assert event.patient_id == reviewed_study.owner_id


def test_awaiting_review_and_failed_studies_say_so(client, predicted_study, queued_study):
    text = pdf_text(_get(client, predicted_study.owner, predicted_study).content)
    assert "Awaiting physician review" in text and "Reviewed by a physician" not in text


def test_another_patient_gets_404_and_it_is_audited_as_denied(client, reviewed_study, other_patient):
    response = _get(client, other_patient, reviewed_study)
    assert response.status_code == 404
    assert not response.content.startswith(b"%PDF")
    event = AuditEvent.objects.filter(action="study.report").latest("pk")
    assert event.outcome == "denied" and event.actor_id == other_patient.pk


def test_clinical_staff_may_download_and_anonymous_visitors_are_sent_to_log_in(client, reviewed_study, physician):
    assert _get(client, physician, reviewed_study).status_code == 200
    client.logout()
    response = client.get(f"/studies/{reviewed_study.pk}/report.pdf")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_study_page_links_to_the_report(client, reviewed_study):
    client.force_login(reviewed_study.owner)
    html = client.get(f"/studies/{reviewed_study.pk}/").content.decode()
    assert f'href="/studies/{reviewed_study.pk}/report.pdf" id="download-report"' in html
