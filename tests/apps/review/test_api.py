import uuid

import pytest
from rest_framework.test import APIClient

from apps.review.models import LabeledSample, Review
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

WORKLIST = "/api/v1/review/worklist"


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_patients_get_403_on_every_review_endpoint(pneumonia_study, consenting_patient):
    client = _client(consenting_patient)
    for method, url in [
        ("get", WORKLIST),
        ("post", f"/api/v1/review/{pneumonia_study.pk}/claim"),
        ("post", f"/api/v1/review/{pneumonia_study.pk}/release"),
        ("post", f"/api/v1/review/{pneumonia_study.pk}"),
    ]:
        response = getattr(client, method)(url, {"decision": "confirm"}, format="json")
        assert response.status_code == 403, url
        assert response.json()["error"]["code"] == "permission_denied"
    assert not Review.objects.exists()


def test_anonymous_gets_401(pneumonia_study):
    assert APIClient().get(WORKLIST).status_code == 401


def test_worklist_is_ordered_with_filters_and_counts(model_version, physician):
    normal = StudyFactory(predicted=True, probabilities={"COVID-19": 0.02, "NORMAL": 0.96, "PNEUMONIA": 0.02})
    covid = StudyFactory(predicted=True, probabilities={"COVID-19": 0.90, "NORMAL": 0.05, "PNEUMONIA": 0.05})
    body = _client(physician).get(WORKLIST).json()
    assert [r["study_id"] for r in body["results"]] == [str(covid.pk), str(normal.pk)]
    first = body["results"][0]
    assert first["label"] == "COVID-19" and first["suspected_severe"] is True and first["claim"] is None
    assert body["counts"]["total"] == 2 and body["counts"]["by_label"] == {"COVID-19": 1, "NORMAL": 1}
    filtered = _client(physician).get(WORKLIST, {"label": "NORMAL", "confidence": "high"}).json()
    assert [r["study_id"] for r in filtered["results"]] == [str(normal.pk)]
    bad = _client(physician).get(WORKLIST, {"confidence": "vague"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"


def test_two_physicians_claim_the_same_study(pneumonia_study, physician, second_physician):
    house, cuddy = _client(physician), _client(second_physician)
    claim_url = f"/api/v1/review/{pneumonia_study.pk}/claim"
    first = house.post(claim_url)
    assert first.status_code == 200 and first.json()["physician"] == physician.username
    second = cuddy.post(claim_url)
    assert second.status_code == 409 and second.json()["error"]["code"] == "study_claimed"
    listed = cuddy.get(WORKLIST).json()["results"][0]
    assert listed["claim"]["physician"] == physician.username
    assert cuddy.post(f"/api/v1/review/{pneumonia_study.pk}", {"decision": "confirm"}, format="json").status_code == 409
    assert house.post(f"/api/v1/review/{pneumonia_study.pk}/release").status_code == 204
    assert cuddy.post(claim_url).status_code == 200


def test_review_is_created_and_the_patient_sees_it(pneumonia_study, physician, consenting_patient):
    client = _client(physician)
    client.post(f"/api/v1/review/{pneumonia_study.pk}/claim")
    response = client.post(
        f"/api/v1/review/{pneumonia_study.pk}",
        {"decision": "correct", "final_label": "NORMAL", "note": "Clear lungs.", "fit_for_training": True},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["final_label"], body["version"], body["physician"]) == ("NORMAL", 1, physician.username)
    assert LabeledSample.objects.get().label == "NORMAL"
    seen = _client(consenting_patient).get(f"/api/v1/studies/{pneumonia_study.pk}").json()
    assert seen["status"] == "reviewed"
    assert seen["review"]["final_label"] == "NORMAL" and seen["review"]["note"] == "Clear lungs."


def test_review_errors_use_the_envelope(pneumonia_study, physician, second_physician):
    client = _client(physician)
    bad = client.post(
        f"/api/v1/review/{pneumonia_study.pk}", {"decision": "correct", "final_label": "CANCER"}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_final_label"
    assert (
        client.post(f"/api/v1/review/{pneumonia_study.pk}", {"decision": "maybe"}, format="json").json()["error"][
            "code"
        ]
        == "invalid_request"
    )
    assert (
        client.post(f"/api/v1/review/{pneumonia_study.pk}", {"decision": "confirm"}, format="json").status_code == 201
    )
    other = _client(second_physician).post(
        f"/api/v1/review/{pneumonia_study.pk}", {"decision": "correct", "final_label": "NORMAL"}, format="json"
    )
    assert other.status_code == 403 and other.json()["error"]["code"] == "review_owned_by_other"
    missing = client.post("/api/v1/review/00000000-0000-0000-0000-000000000000/claim")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_the_identifying_text_flag_through_the_api(pneumonia_study, physician, consenting_patient):
    from apps.audit.models import AuditEvent
    from apps.modelops.selectors import training_samples

    url = f"/api/v1/review/{pneumonia_study.pk}/identifying-text"
    client = _client(physician)
    client.post(f"/api/v1/review/{pneumonia_study.pk}", {"decision": "confirm"}, format="json")
    assert training_samples().count() == 1
    response = client.post(url, {"flagged": True}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "study_id": str(pneumonia_study.pk),
        "flagged": True,
        "identifying_text": "physician",
        "samples_excluded": 1,
    }
    assert not training_samples().exists()
    assert AuditEvent.objects.filter(action="study.identifying_text", actor=physician).count() == 1
    assert _client(consenting_patient).post(url, {"flagged": False}, format="json").status_code == 403
    assert client.post(url, {}, format="json").status_code == 400  # `flagged` is required
    assert (
        client.post(f"/api/v1/review/{uuid.uuid4()}/identifying-text", {"flagged": True}, format="json").status_code
        == 404
    )
