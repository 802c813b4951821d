"""The review's two notes: the patient's note is shown to the patient; the internal note only
to clinicians (review page, physician API), never on a patient's page nor in the patient API."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from apps.review.models import Review

pytestmark = pytest.mark.django_db

PATIENT_NOTE = "Your lungs look clear; no treatment is needed."
INTERNAL_NOTE = "Borderline left base opacity, compare with prior CT-4471."


def _reviewed_through_the_form(client, study, physician) -> Review:
    client.force_login(physician)
    response = client.post(
        reverse("review-study", kwargs={"study_id": study.pk}),
        {"decision": "correct", "final_label": "NORMAL", "note": PATIENT_NOTE, "internal_note": INTERNAL_NOTE},
    )
    assert response.status_code == 302, response.content.decode()
    return Review.objects.get(study=study)


def test_the_review_form_says_which_note_the_patient_sees(client, pneumonia_study, physician):
    client.force_login(physician)
    page = client.get(reverse("review-study", kwargs={"study_id": pneumonia_study.pk})).content.decode()
    assert 'name="note"' in page and "Note for the patient" in page and "the patient will see this" in page
    assert 'name="internal_note"' in page and "Internal note" in page and "clinicians only" in page


def test_both_notes_are_stored_and_the_physician_sees_both(client, pneumonia_study, physician):
    review = _reviewed_through_the_form(client, pneumonia_study, physician)
    assert (review.note, review.internal_note) == (PATIENT_NOTE, INTERNAL_NOTE)
    page = client.get(reverse("review-study", kwargs={"study_id": pneumonia_study.pk})).content.decode()
    assert PATIENT_NOTE in page and INTERNAL_NOTE in page


def test_the_patient_sees_the_patient_note_and_never_the_internal_one(client, pneumonia_study, physician):
    _reviewed_through_the_form(client, pneumonia_study, physician)
    client.force_login(pneumonia_study.owner)
    pages = {
        "study page": client.get(reverse("study-detail", kwargs={"study_id": pneumonia_study.pk})),
        "my studies": client.get(reverse("study-list")),
        "status.json": client.get(reverse("study-status", kwargs={"study_id": pneumonia_study.pk})),
    }
    api = APIClient()
    api.force_authenticate(pneumonia_study.owner)
    pages["API detail"] = api.get(f"/api/v1/studies/{pneumonia_study.pk}")
    pages["API list"] = api.get("/api/v1/studies")
    for name, response in pages.items():
        assert response.status_code == 200, name
        assert "Borderline left base" not in response.content.decode(), name
        assert "internal_note" not in response.content.decode(), name
    assert "Your lungs look clear" in pages["study page"].content.decode()
    assert pages["API detail"].json()["review"]["note"] == PATIENT_NOTE


def test_the_review_api_takes_the_internal_note_for_clinicians(pneumonia_study, physician):
    client = APIClient()
    client.force_authenticate(physician)
    response = client.post(
        f"/api/v1/review/{pneumonia_study.pk}",
        {"decision": "confirm", "note": PATIENT_NOTE, "internal_note": INTERNAL_NOTE},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert (response.json()["note"], response.json()["internal_note"]) == (PATIENT_NOTE, INTERNAL_NOTE)
    assert Review.objects.get().internal_note == INTERNAL_NOTE
