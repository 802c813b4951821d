"""Response security headers (deepmed_web/security.py): a Content-Security-Policy on every HTML
page (a relaxed one only on the API documentation pages), and `Cache-Control: private, no-store`
on everything an authenticated user or an API client receives (patient data must not be kept by
a browser or a shared cache)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

STRICT = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)


def _directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d}


# --- Content-Security-Policy -----------------------------------------------------------------


def test_the_default_policy_is_the_strict_one(settings):
    assert settings.DEEPMED_CSP == STRICT


@pytest.mark.django_db
def test_anonymous_html_pages_carry_the_policy(client):
    for path in ("/accounts/login/", "/accounts/signup/"):
        response = client.get(path)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
        assert response["Content-Security-Policy"] == STRICT, path


def test_patient_physician_and_admin_pages_carry_the_policy(client, predicted_study, physician, admin_user):
    pages = [
        (predicted_study.owner, [f"/studies/{predicted_study.pk}/", "/studies/", "/studies/upload/", "/accounts/me/"]),
        (physician, ["/review/", f"/review/{predicted_study.pk}/", "/review/dashboard/"]),
        (admin_user, ["/modelops/"]),
    ]
    for user, paths in pages:
        client.force_login(user)
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, path
            assert response["Content-Security-Policy"] == STRICT, path


def test_json_and_images_need_no_page_policy(client, predicted_study):
    client.force_login(predicted_study.owner)
    for path in ("status.json", "image.png"):
        assert "Content-Security-Policy" not in client.get(f"/studies/{predicted_study.pk}/{path}"), path


def test_the_policy_follows_the_setting(client, db, settings):
    settings.DEEPMED_CSP = "default-src 'none'"
    assert client.get("/accounts/login/")["Content-Security-Policy"] == "default-src 'none'"
    settings.DEEPMED_CSP = ""  # empty: no header at all (e.g. a proxy sets its own)
    assert "Content-Security-Policy" not in client.get("/accounts/login/")


def test_deepmed_csp_is_read_from_the_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DEEPMED_CSP="default-src 'self'; img-src 'self' https://tiles.example.org",
        DEEPMED_DATA_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="deepmed_web.settings",
    )
    done = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.DEEPMED_CSP)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "default-src 'self'; img-src 'self' https://tiles.example.org"


TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("apps/*/templates")]
INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE), "inline <script>"),
    (re.compile(r"<style\b", re.IGNORECASE), "<style> element"),
    (re.compile(r"\sstyle\s*=", re.IGNORECASE), "style= attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.IGNORECASE), "inline event handler"),
    (re.compile(r"javascript:", re.IGNORECASE), "javascript: URL"),
]


def test_templates_need_no_inline_script_or_style():
    """What the strict policy blocks must not be in our own templates (json_script's
    <script type="application/json"> is data, never executed: allowed)."""
    found = []
    for folder in TEMPLATE_DIRS:
        for path in folder.rglob("*.html"):
            text = path.read_text()
            found += [f"{path.relative_to(ROOT)}: {what}" for pattern, what in INLINE if pattern.search(text)]
    assert not found, found


def test_static_scripts_do_not_write_style_attributes_or_markup_with_them():
    """element.style.x = … (CSSOM) is allowed by CSP; a style="…" in markup is not."""
    for path in (ROOT / "static" / "js").glob("*.js"):
        text = path.read_text()
        assert not re.search(r"setAttribute\(\s*[\"']style|style=|cssText|eval\(|new Function", text), path.name


@pytest.mark.django_db
def test_api_docs_have_their_own_relaxed_policy_and_no_inline_script(client):
    """Swagger UI's page is served split (its init script is a same-origin file); Redoc injects
    its own <style> elements and starts a blob: worker: only these two pages allow that."""
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    policy = _directives(docs["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"] and "'unsafe-inline'" in policy["style-src"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    body = docs.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), "the Swagger page still has an inline script"
    script = re.search(r"<script src=\"([^\"]+\?script=[^\"]*)\"", body).group(1).replace("&amp;", "&")
    init = client.get(script)
    assert init.status_code == 200 and "SwaggerUIBundle" in init.content.decode()

    redoc = client.get("/api/redoc/")
    assert redoc.status_code == 200
    policy = _directives(redoc["Content-Security-Policy"])
    assert "'unsafe-inline'" in policy["style-src"] and "blob:" in policy["worker-src"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "fonts.googleapis.com" not in redoc.content.decode()  # served locally: nothing from a CDN


# --- Cache-Control: private, no-store ---------------------------------------------------------


def _no_store(response) -> bool:
    directives = {d.strip() for d in response.get("Cache-Control", "").split(",")}
    return {"private", "no-store"} <= directives


@pytest.mark.parametrize("path", ["{id}/", "", "{id}/status.json", "{id}/image.png", "{id}/heatmap.png"])
def test_patient_pages_json_and_images_are_never_stored(client, predicted_study, path):
    client.force_login(predicted_study.owner)
    response = client.get(f"/studies/{path.format(id=predicted_study.pk)}")
    assert response.status_code == 200 and _no_store(response), response.get("Cache-Control")


@pytest.mark.parametrize("path", ["/review/{id}/", "/review/", "/review/rows/", "/review/dashboard/"])
def test_review_pages_are_never_stored(client, predicted_study, physician, path):
    client.force_login(physician)
    response = client.get(path.format(id=predicted_study.pk))
    assert response.status_code == 200 and _no_store(response), response.get("Cache-Control")


@pytest.mark.parametrize(
    "path", ["studies", "studies/{id}", "studies/{id}/image", "studies/{id}/heatmap", "me", "account", "consent"]
)
def test_api_patient_data_is_never_stored(api_as, predicted_study, path):
    response = api_as(predicted_study.owner).get(f"/api/v1/{path.format(id=predicted_study.pk)}")
    assert response.status_code == 200 and _no_store(response), response.get("Cache-Control")


def test_a_not_modified_answer_is_not_stored_either(api_as, predicted_study):
    api = api_as(predicted_study.owner)
    etag = api.get(f"/api/v1/studies/{predicted_study.pk}")["ETag"]
    response = api.get(f"/api/v1/studies/{predicted_study.pk}", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304 and _no_store(response)


def test_api_token_answers_are_never_stored(api_client, patient):
    response = api_client.post(
        "/api/v1/auth/token", {"username": "alice", "password": "a-long-test-password"}, format="json"
    )
    assert response.status_code == 200 and _no_store(response)


def test_static_files_stay_cacheable(client, patient):
    client.force_login(patient)
    response = client.get("/static/css/deepmed.css")
    assert response.status_code == 200 and "no-store" not in response.get("Cache-Control", "")
