"""The API's exception handler maps every ApplicationError once, to the error envelope."""

from __future__ import annotations

import pytest
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from apps.core.errors import ApplicationError


class Conflict(ApplicationError):
    code = "test_conflict"
    http_status = 409


class RaisingApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    error: ApplicationError | None = None

    def post(self, request):
        raise self.error


def _answer(error: ApplicationError):
    view = RaisingApi.as_view(error=error)
    return view(APIRequestFactory().post("/api/v1/anything", {}, format="json"))


def test_a_subclass_is_answered_with_its_status_code_and_details():
    response = _answer(Conflict("It changed meanwhile.", details={"current": 3}))
    assert response.status_code == 409
    assert response.data == {
        "error": {"code": "test_conflict", "message": "It changed meanwhile.", "details": {"current": 3}}
    }
    assert "Retry-After" not in response


def test_an_instance_override_wins_and_a_503_says_when_to_retry():
    response = _answer(ApplicationError("Busy.", code="server_busy", http_status=503))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.data["error"] == {"code": "server_busy", "message": "Busy.", "details": {}}


@pytest.mark.django_db
def test_domain_refusals_keep_their_status_and_code_through_the_real_api(api_client, consenting_patient):
    """Former styles (accounts' own 409/403 mapping) answered by the one handler."""
    api_client.force_authenticate(consenting_patient)
    stale = api_client.post("/api/v1/consent/research", {"version": "0-old", "granted": True}, format="json")
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "consent_version_mismatch"
    wrong = api_client.delete("/api/v1/account", {"password": "not-it"}, format="json")
    assert wrong.status_code == 403
    assert wrong.json()["error"] == {"code": "wrong_password", "message": "The password is not correct.", "details": {}}
