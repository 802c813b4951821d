"""Web account flow: sign-up, rate-limited log-in, log-out, disclaimer gate, research consent."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.accounts.models import Role, User
from apps.accounts.selectors import has_current_consent, has_research_consent
from apps.studies.models import Study

PASSWORD = "a-long-test-password"


def _signup(client, username="carol", password="correct-horse-battery", **extra):
    return client.post(
        "/accounts/signup/",
        {"username": username, "email": "c@example.org", "password1": password, "password2": password, **extra},
    )


def test_signup_makes_a_logged_in_patient_and_asks_for_the_disclaimer(client, db):
    response = _signup(client, role="admin", is_staff="on")  # extra fields are ignored
    assert response.status_code == 302 and response["Location"] == "/accounts/disclaimer/"
    user = User.objects.get(username="carol")
    assert user.role == Role.PATIENT and not user.is_staff and not user.is_superuser
    assert client.get("/studies/").status_code == 200  # logged in


@pytest.mark.parametrize(
    "kwargs,field_error",
    [
        ({"password": "1234"}, "too short"),
        ({"username": "alice"}, "username is taken"),
    ],
)
def test_signup_refusals(client, patient, kwargs, field_error):
    response = _signup(client, **kwargs)
    assert response.status_code == 400 and field_error in response.content.decode()
    assert User.objects.count() == 1


def test_signup_passwords_must_match(client, db):
    response = client.post(
        "/accounts/signup/",
        {"username": "dan", "password1": "correct-horse-battery", "password2": "correct-horse-batterz"},
    )
    assert response.status_code == 400 and not User.objects.filter(username="dan").exists()


def test_login_and_logout(client, patient):
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/studies/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/studies/").status_code == 302


def test_login_is_rate_limited_per_account_and_address(client, patient, other_patient, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).status_code == 200
    assert client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).status_code == 429
    locked = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429 and "temporarily locked" in locked.content.decode()
    assert client.get("/studies/").status_code == 302  # the right password did not log in
    other = client.post("/accounts/login/", {"username": "bob", "password": PASSWORD})
    assert other.status_code == 302  # another account from the same address is not locked


def test_disclaimer_gate_and_new_version_asks_again(client, patient, xray_png, new_disclaimer_version):
    client.force_login(patient)
    assert client.get("/studies/upload/")["Location"] == "/accounts/disclaimer/?next=/studies/upload/"
    refused = client.post("/studies/upload/", {"image": SimpleUploadedFile("a.png", xray_png)})
    assert refused.status_code == 302 and not Study.objects.exists()
    page = client.get("/accounts/disclaimer/").content.decode()
    assert "not a diagnosis" in page and "consult a physician" in page and "Version 1" in page
    accepted = client.post("/accounts/disclaimer/?next=/studies/upload/", {"accept": "yes"})
    assert accepted["Location"] == "/studies/upload/" and has_current_consent(patient)
    assert client.get("/studies/upload/").status_code == 200
    assert not has_research_consent(patient)  # the disclaimer never grants research use

    new_disclaimer_version()
    assert client.get("/studies/upload/").status_code == 302
    assert "Version 2" in client.get("/accounts/disclaimer/").content.decode()


def test_disclaimer_next_cannot_redirect_off_site(client, patient):
    client.force_login(patient)
    response = client.post("/accounts/disclaimer/?next=https://evil.example/", {"accept": "yes"})
    assert response["Location"] == "/studies/upload/"


def test_research_consent_is_an_explicit_separate_choice(client, consenting_patient, physician):
    client.force_login(consenting_patient)
    page = client.get("/accounts/me/").content.decode()
    assert "Current choice: <strong>not allowed</strong>" in page and 'id="research-grant"' in page
    client.post("/accounts/me/research-consent/", {"decision": "grant"})
    assert has_research_consent(consenting_patient)
    assert 'id="research-withdraw"' in client.get("/accounts/me/").content.decode()
    client.post("/accounts/me/research-consent/", {"decision": "withdraw"})
    assert not has_research_consent(consenting_patient)
    client.force_login(physician)
    assert client.post("/accounts/me/research-consent/", {"decision": "grant"}).status_code == 403


def test_web_sign_up_shares_the_api_rate_limit(client, db, settings):
    settings.DEEPMED_THROTTLE_RATES = {**settings.DEEPMED_THROTTLE_RATES, "auth_ip": "2/min"}
    codes = []
    for i in range(2):
        codes.append(
            client.post(
                "/accounts/signup/",
                {"username": f"web{i}", "password1": "correct-horse-battery", "password2": "correct-horse-battery"},
                REMOTE_ADDR="10.3.3.3",
            ).status_code
        )
        client.logout()  # a signed-in visitor is sent home before any sign-up
    refused = client.post(
        "/accounts/signup/",
        {"username": "web9", "password1": "correct-horse-battery", "password2": "correct-horse-battery"},
        REMOTE_ADDR="10.3.3.3",
    )
    assert codes == [302, 302] and refused.status_code == 429
    assert "Too many sign-ups" in refused.content.decode()
    from apps.accounts.models import User

    assert not User.objects.filter(username="web9").exists()
