"""The outcome of an audited request is what happened, not the status class (issue 17 s.3)."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent, Outcome

pytestmark = pytest.mark.django_db


def _event(study, action: str) -> AuditEvent:
    return AuditEvent.objects.filter(object_id=str(study.pk), action=action).latest("id")


def test_anonymous_redirected_to_log_in_is_denied(client, queued_study):
    response = client.get(f"/studies/{queued_study.pk}/image.png")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    event = _event(queued_study, "study.image")
    assert event.outcome == Outcome.DENIED and event.actor is None
    assert event.detail["status"] == 302 and event.detail["reason"] == "login_required"


def test_a_wrong_method_is_invalid_not_allowed(client, queued_study):
    client.force_login(queued_study.owner)
    assert client.post(f"/studies/{queued_study.pk}/image.png").status_code == 405
    event = _event(queued_study, "study.image")
    assert event.outcome == Outcome.INVALID and event.detail["status"] == 405


def test_a_redirect_after_a_completed_action_is_allowed(client, queued_study):
    client.force_login(queued_study.owner)
    response = client.post(f"/studies/{queued_study.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/studies/"
    assert _event(queued_study, "study.delete_request").outcome == Outcome.ALLOWED


def test_not_modified_is_an_allowed_read(api_as, queued_study):
    api = api_as(queued_study.owner)
    etag = api.get(f"/api/v1/studies/{queued_study.pk}")["ETag"]
    assert api.get(f"/api/v1/studies/{queued_study.pk}", HTTP_IF_NONE_MATCH=etag).status_code == 304
    event = _event(queued_study, "study.access")
    assert event.outcome == Outcome.ALLOWED and event.detail["status"] == 304


@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("stranger", 404)])
def test_api_refusals_are_denied(api_as, queued_study, other_patient, who, status):
    api = api_as(None if who == "anonymous" else other_patient)
    assert api.get(f"/api/v1/studies/{queued_study.pk}/image").status_code == status
    assert _event(queued_study, "study.image").outcome == Outcome.DENIED


def test_a_review_page_shown_with_a_form_error_is_an_allowed_read(client, predicted_study, physician):
    """The page (with the patient's data) is rendered with status 400: what happened is a read."""
    client.force_login(physician)
    response = client.post(f"/review/{predicted_study.pk}/", {"decision": "correct", "final_label": "NO-SUCH"})
    assert response.status_code == 400 and b"Choose one of" in response.content
    assert _event(predicted_study, "review.read").outcome == Outcome.ALLOWED


def test_a_patient_on_the_review_page_is_denied(client, predicted_study):
    client.force_login(predicted_study.owner)
    assert client.get(f"/review/{predicted_study.pk}/").status_code == 403
    assert _event(predicted_study, "review.read").outcome == Outcome.DENIED


def test_events_name_the_patient_whose_data_it_is(client, queued_study, other_patient):
    client.force_login(other_patient)
    client.get(f"/studies/{queued_study.pk}/")  # a stranger's 404 is about alice's data too
    event = _event(queued_study, "study.read")
    assert event.patient == queued_study.owner and event.patient_username == "alice"
