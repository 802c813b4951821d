"""/api/v1 auth, consent and account endpoints (JWT), in the shared error envelope."""

from __future__ import annotations

from apps.accounts.models import Role, User
from apps.accounts.selectors import has_current_consent, has_research_consent

PASSWORD = "a-long-test-password"


def _token(api_client, username="alice", password=PASSWORD):
    return api_client.post("/api/v1/auth/token", {"username": username, "password": password}, format="json")


def test_register_then_token_then_refresh(api_client, db):
    created = api_client.post(
        "/api/v1/auth/register",
        {"username": "erin", "password": "correct-horse-battery", "email": "e@example.org"},
        format="json",
    )
    assert created.status_code == 201
    assert created.json() == {
        "id": User.objects.get(username="erin").pk,
        "username": "erin",
        "email": "e@example.org",
        "role": "patient",
    }
    tokens = _token(api_client, "erin", "correct-horse-battery").json()
    assert set(tokens) == {"access", "refresh"}
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api_client.get("/api/v1/account").json()["username"] == "erin"
    refreshed = api_client.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200 and "access" in refreshed.json()


def test_register_refusals_use_the_envelope(api_client, patient):
    weak = api_client.post("/api/v1/auth/register", {"username": "x1", "password": "123"}, format="json")
    assert weak.status_code == 400
    assert weak.json()["error"]["code"] == "invalid_request" and "password" in weak.json()["error"]["details"]["fields"]
    taken = api_client.post(
        "/api/v1/auth/register", {"username": "alice", "password": "correct-horse-battery"}, format="json"
    )
    assert taken.status_code == 400 and "username" in taken.json()["error"]["details"]["fields"]
    assert User.objects.count() == 1


def test_register_cannot_choose_a_role(api_client, db):
    api_client.post(
        "/api/v1/auth/register",
        {"username": "mallory", "password": "correct-horse-battery", "role": "admin"},
        format="json",
    )
    assert User.objects.get(username="mallory").role == Role.PATIENT


def test_wrong_password_then_lockout(api_client, patient, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _token(api_client, password="wrong")
        assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    for password in ("wrong", PASSWORD):  # the limit-th failure locks; then even the right password is refused
        locked = _token(api_client, password=password)
        assert locked.status_code == 429 and locked.json()["error"]["code"] == "account_locked"
        assert "access" not in locked.json()


def test_an_api_log_in_clears_the_failures_like_a_web_log_in(api_client, patient, settings):
    """django-axes counts failures per username+address; a successful web log-in resets them
    (user_logged_in), and so must a successful token request, or an app user who sometimes
    mistypes is locked out after AXES_FAILURE_LIMIT failures spread over weeks."""
    from axes.models import AccessAttempt

    settings.AXES_FAILURE_LIMIT = 5
    for _ in range(4):
        assert _token(api_client, password="wrong").status_code == 401
    assert _token(api_client).status_code == 200
    assert not AccessAttempt.objects.filter(username="alice").exists()
    for _ in range(4):
        response = _token(api_client, password="wrong")
        assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    assert _token(api_client).status_code == 200  # 4 failures since the last success: not locked


def test_an_api_log_in_clears_only_its_own_username_and_address(api_client, patient, other_patient):
    from axes.models import AccessAttempt

    _token(api_client, password="wrong", username="bob")
    api_client.post(
        "/api/v1/auth/token", {"username": "alice", "password": "wrong"}, format="json", REMOTE_ADDR="10.9.9.9"
    )
    _token(api_client, password="wrong")
    assert _token(api_client).status_code == 200
    left = set(AccessAttempt.objects.values_list("username", "ip_address"))
    assert left == {("bob", "127.0.0.1"), ("alice", "10.9.9.9")}


def test_consent_get_post(api_client, patient, new_disclaimer_version):
    api_client.force_authenticate(patient)
    state = api_client.get("/api/v1/consent").json()
    assert state["version"] == "1" and state["accepted"] is False and "not a diagnosis" in state["text"]
    posted = api_client.post("/api/v1/consent", {"version": "1"}, format="json")
    assert posted.status_code == 201 and posted.json()["accepted"] is True
    assert has_current_consent(patient)
    new_disclaimer_version()
    assert api_client.get("/api/v1/consent").json() | {"text": ""} == {
        "version": "2",
        "text": "",
        "accepted": False,
        "accepted_at": None,
    }
    stale = api_client.post("/api/v1/consent", {"version": "1"}, format="json")
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "consent_version_mismatch"
    assert not has_current_consent(patient)


def test_research_consent_api(api_client, patient):
    api_client.force_authenticate(patient)
    assert api_client.get("/api/v1/consent/research").json()["granted"] is False
    granted = api_client.post("/api/v1/consent/research", {"version": "1", "granted": True}, format="json")
    assert granted.status_code == 201 and granted.json()["granted"] is True and has_research_consent(patient)
    api_client.post("/api/v1/consent/research", {"version": "1", "granted": False}, format="json")
    assert not has_research_consent(patient)


def test_delete_account_needs_the_password(api_client, patient):
    api_client.force_authenticate(patient)
    wrong = api_client.delete("/api/v1/account", {"password": "nope"}, format="json")
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_password"
    assert api_client.delete("/api/v1/account", {"password": PASSWORD}, format="json").status_code == 204
    assert not User.objects.filter(username="alice").exists()
