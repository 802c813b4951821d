"""The API's exception handler maps every ApplicationError once, to the error envelope."""

from __future__ import annotations

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
