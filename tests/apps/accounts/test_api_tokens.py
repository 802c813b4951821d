"""JWT life cycle for apps: /me, expiry, refresh rotation, revocation on logout and on
password change, and rate limits on the authentication doors."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent

PASSWORD = "a-long-test-password"


def _pair(api_client, username="alice", password=PASSWORD) -> dict:
    response = api_client.post("/api/v1/auth/token", {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def _me(api_client, access: str):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    try:
        return api_client.get("/api/v1/me")
    finally:
        api_client.credentials()


def _refresh(api_client, refresh: str):
    return api_client.post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json")


def test_me_says_who_and_what_is_still_to_accept(api_client, consenting_patient):
    body = _me(api_client, _pair(api_client)["access"]).json()
    assert body["username"] == "alice" and body["role"] == "patient"
    assert body["consent"]["accepted"] is True and body["consent"]["version"] == "1"
    assert body["research_consent"]["granted"] is False
    assert _me(api_client, "not-a-token").status_code == 401


def test_an_expired_access_token_is_refused_with_a_stable_code(api_client, patient, access_token):
    response = _me(api_client, access_token(patient, expired=True))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"
    assert isinstance(response.json()["error"]["message"], str)


def test_refresh_rotates_and_the_old_refresh_token_is_dead(api_client, patient):
    first = _pair(api_client)
    rotated = _refresh(api_client, first["refresh"])
    assert rotated.status_code == 200 and set(rotated.json()) == {"access", "refresh"}
    assert _me(api_client, rotated.json()["access"]).status_code == 200
    replay = _refresh(api_client, first["refresh"])
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "token_not_valid"


def test_logout_revokes_the_refresh_token(api_client, patient):
    pair = _pair(api_client)
    out = api_client.post("/api/v1/auth/logout", {"refresh": pair["refresh"]}, format="json")
    assert out.status_code == 204
    assert _refresh(api_client, pair["refresh"]).status_code == 401
    assert AuditEvent.objects.filter(action="auth.logout", actor=patient).count() == 1
    garbage = api_client.post("/api/v1/auth/logout", {"refresh": "garbage"}, format="json")
    assert garbage.status_code == 401 and garbage.json()["error"]["code"] == "token_not_valid"


def test_password_change_revokes_every_token_and_hands_out_a_new_pair(api_client, patient):
    phone, tablet = _pair(api_client), _pair(api_client)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {phone['access']}")
    wrong = api_client.post(
        "/api/v1/auth/password", {"old_password": "nope", "new_password": "another-long-pass-1"}, format="json"
    )
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_password"
    weak = api_client.post("/api/v1/auth/password", {"old_password": PASSWORD, "new_password": "123"}, format="json")
    assert weak.status_code == 400 and "new_password" in weak.json()["error"]["details"]["fields"]
    changed = api_client.post(
        "/api/v1/auth/password", {"old_password": PASSWORD, "new_password": "another-long-pass-1"}, format="json"
    )
    api_client.credentials()
    assert changed.status_code == 200 and set(changed.json()) == {"access", "refresh"}
    for device in (phone, tablet):  # access tokens die at once (password hash claim), refresh tokens are blacklisted
        assert _me(api_client, device["access"]).status_code == 401
        assert _refresh(api_client, device["refresh"]).status_code == 401
    assert _me(api_client, changed.json()["access"]).status_code == 200
    assert _pair(api_client, password="another-long-pass-1")["access"]
    assert AuditEvent.objects.filter(action="auth.password_change", actor=patient).count() == 1


def test_a_refresh_token_of_a_deleted_account_is_refused_cleanly(api_client, patient):
    pair = _pair(api_client)
    patient.delete()
    response = _refresh(api_client, pair["refresh"])
    assert response.status_code == 401 and response.json()["error"]["code"] in (
        "token_not_valid",
        "authentication_failed",
    )


def test_web_password_change_also_revokes_app_tokens(client, patient, api_client):
    pair = _pair(api_client)
    client.force_login(patient)
    response = client.post(
        "/accounts/me/password/",
        {"old_password": PASSWORD, "new_password1": "another-long-pass-1", "new_password2": "another-long-pass-1"},
    )
    assert response.status_code == 302
    assert _refresh(api_client, pair["refresh"]).status_code == 401
    assert _me(api_client, pair["access"]).status_code == 401
    assert client.get("/accounts/me/").status_code == 200  # the browser session that changed it stays signed in


@pytest.fixture
def tight_auth_rates(settings):
    settings.DEEPMED_THROTTLE_RATES = {**settings.DEEPMED_THROTTLE_RATES, "auth_ip": "5/min", "auth_account": "3/min"}


def test_token_requests_are_limited_per_account(api_client, patient, tight_auth_rates):
    codes = [
        api_client.post(
            "/api/v1/auth/token", {"username": "alice", "password": PASSWORD}, format="json", REMOTE_ADDR=f"10.0.0.{i}"
        ).status_code
        for i in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    other = api_client.post(
        "/api/v1/auth/token", {"username": "bob", "password": "x"}, format="json", REMOTE_ADDR="10.0.0.9"
    )
    assert other.status_code == 401  # another account from another address is not held back


def test_auth_requests_are_limited_per_address(api_client, db, tight_auth_rates):
    responses = [
        api_client.post(
            "/api/v1/auth/register",
            {"username": f"user{i}", "password": "correct-horse-battery"},
            format="json",
            REMOTE_ADDR="10.1.1.1",
        )
        for i in range(6)
    ]
    assert [r.status_code for r in responses] == [201] * 5 + [429]
    refused = responses[-1]
    assert refused.json()["error"]["code"] == "throttled" and int(refused["Retry-After"]) > 0
    elsewhere = api_client.post(
        "/api/v1/auth/register",
        {"username": "user9", "password": "correct-horse-battery"},
        format="json",
        REMOTE_ADDR="10.1.1.2",
    )
    assert elsewhere.status_code == 201
