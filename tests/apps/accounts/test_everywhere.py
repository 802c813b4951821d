"""Pages every visitor meets: the landing page, styled error pages (403/404/500) with the menu,
the favicon and skip link of every page, and form fields tied to their help and errors."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_visitors_get_a_landing_page_with_sign_up_and_log_in(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="landing"' in html
    assert (
        'href="/accounts/signup/" id="landing-signup"' in html and 'href="/accounts/login/" id="landing-login"' in html
    )
    assert "What DeepMed is not" in html and "Not a diagnosis" in html


def test_signed_in_people_go_on_to_their_home_page(client, patient):
    client.force_login(patient)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/studies/"


def test_every_page_has_a_skip_link_favicon_and_labelled_menu(client, patient):
    client.force_login(patient)
    html = client.get("/studies/").content.decode()
    assert re.search(r'<a class="skip-link" href="#main"', html)
    assert '<main id="main" tabindex="-1">' in html
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
    assert '<nav class="menu" aria-label="Main menu"' in html
    assert client.get("/static/favicon.svg").status_code == 200
    assert client.get("/favicon.ico")["Location"] == "/static/favicon.svg"


def test_404_is_styled_with_the_menu(client, patient):
    client.force_login(patient)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert 'id="error-page" data-status="404"' in html and "/static/css/deepmed.css" in html
    assert 'aria-label="Main menu"' in html and "My studies" in html  # the menu of the signed-in user


def test_403_is_styled_with_the_menu(client, physician):
    client.force_login(physician)
    response = client.get("/studies/upload/")  # only patients upload
    assert response.status_code == 403
    html = response.content.decode()
    assert 'id="error-page" data-status="403"' in html and "Worklist" in html
    assert "Only patients upload studies." in html


def test_500_renders_without_a_request_context(monkeypatch, patient):
    from apps.studies import selectors

    def broken(user):
        raise RuntimeError("boom")

    monkeypatch.setattr(selectors, "patient_history", broken)
    client = Client(raise_request_exception=False)
    client.force_login(patient)
    response = client.get("/studies/")
    assert response.status_code == 500
    html = response.content.decode()
    assert 'id="error-page" data-status="500"' in html and "/static/css/deepmed.css" in html
    assert 'aria-label="Main menu"' in html and "boom" not in html


def test_sign_up_shows_the_password_rules_before_submitting_with_autocomplete(client):
    html = client.get("/accounts/signup/").content.decode()
    assert 'id="id_password1_helptext"' in html and "at least 8 characters" in html
    fields = {
        name: re.search(rf'<input[^>]*name="{name}"[^>]*>', html).group(0)
        for name in ("username", "email", "password1", "password2")
    }
    assert 'aria-describedby="id_password1_helptext"' in fields["password1"]
    tokens = {"username": "username", "email": "email", "password1": "new-password", "password2": "new-password"}
    for name, token in tokens.items():
        assert f'autocomplete="{token}"' in fields[name], fields[name]


def test_field_errors_are_tied_to_their_fields(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "carol", "email": "x", "password1": "correct-horse-battery", "password2": "another"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    for name in ("email", "password2"):
        field = re.search(rf'<input[^>]*name="{name}"[^>]*>', html).group(0)
        assert 'aria-invalid="true"' in field, field
        assert f"id_{name}_error" in re.search(r'aria-describedby="([^"]+)"', field).group(1)
        assert f'<ul class="errorlist" id="id_{name}_error">' in html
    username = re.search(r'<input[^>]*name="username"[^>]*>', html).group(0)
    assert "aria-invalid" not in username


def test_log_in_errors_are_tied_to_the_fields(client, patient):
    html = client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).content.decode()
    assert 'id="login-error"' in html
    assert re.search(r'name="password"[^>]*aria-invalid="true" aria-describedby="login-error"', html)


def test_a_failed_csrf_check_gets_the_styled_page(patient):
    client = Client(enforce_csrf_checks=True)
    client.force_login(patient)
    response = client.post("/accounts/me/research-consent/", {"decision": "grant"})
    assert response.status_code == 403
    html = response.content.decode()
    assert 'id="error-page"' in html and "reload the page" in html
