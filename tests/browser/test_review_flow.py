"""Physician review in real headless Chromium against `manage.py serve` (embedded): the worklist
updates live when a patient's study arrives, the physician claims it, corrects the label with a
note using the keyboard, and the patient's open result page shows the physician's label.
No page of the flow (patient, physician, and the admin's model-operations console) breaks the
Content-Security-Policy: nothing is blocked, nothing is reported."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from ml_core.testing import make_xray_like_png
from tests.browser.pages import PASSWORD, log_in, sign_up_patient

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STUDY_URL = re.compile(r"/studies/([0-9a-f-]{36})/$")


def _create_physician(portal, username: str, role: str = "physician") -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTEST")
        and k not in ("REDIS_URL", "DATABASE_URL", "MEDIA_ROOT", "AZURE_STORAGE_CONNECTION_STRING")
    }
    env.update(DEEPMED_DATA_DIR=str(portal.data_dir), DJANGO_SETTINGS_MODULE="deepmed_web.settings")
    done = subprocess.run(
        [sys.executable, "manage.py", "create_user", "--role", role, "--username", username, "--password", PASSWORD],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_physician_claims_corrects_and_patient_sees_the_label(
    embedded_portal, new_page, artifacts, status_log, settled_on, csp_violations, csp_console
):
    _create_physician(embedded_portal, "dr-review-e2e")
    doctor = new_page(embedded_portal.url)
    log_in(doctor, "dr-review-e2e")
    doctor.goto("/review/")
    doctor.wait_for_function("() => document.getElementById('worklist-live').dataset.live === 'websocket'")

    # A patient uploads while the worklist is open.
    patient = new_page(embedded_portal.url)
    sign_up_patient(patient, "pat-review")
    patient.click("#accept-disclaimer")
    patient.goto("/studies/upload/")
    patient.set_input_files(
        "#id_image",
        files=[{"name": "chest.png", "mimeType": "image/png", "buffer": make_xray_like_png(size=384, seed=11)}],
    )
    patient.fill("#id_patient_age", "71")
    patient.fill("#id_symptoms", "fever, short of breath")
    patient.click("#upload-submit")
    patient.wait_for_url(STUDY_URL)
    study_id = STUDY_URL.search(patient.url).group(1)

    # The study appears on the physician's worklist without a reload.
    row = f"#worklist tr[data-study-id='{study_id}']"
    doctor.wait_for_selector(row, timeout=90_000)
    assert doctor.evaluate("document.getElementById('worklist').dataset.refreshed") is not None
    doctor.screenshot(path=str(artifacts / "review-01-worklist.png"), full_page=True)
    settled_on(patient, "explained", status_log)
    assert patient.is_visible("#review-pending")

    # Claim it: the review page with the full-resolution image, age and symptoms.
    doctor.click(f"{row} .claim-button")
    doctor.wait_for_url(f"**/review/{study_id}/")
    doctor.wait_for_function("() => document.getElementById('viewer-image').naturalWidth === 384")
    assert "71" in doctor.text_content(".facts") and "short of breath" in doctor.text_content(".facts")
    model_label = doctor.text_content("#model-label").strip()

    # Viewer: zoom with the keyboard, heat-map on, window/level slider.
    scale = float(doctor.get_attribute("#viewer", "data-scale"))
    doctor.click("#viewer")
    doctor.keyboard.press("+")
    assert float(doctor.get_attribute("#viewer", "data-scale")) > scale
    if doctor.query_selector("#viewer-overlay"):
        doctor.keyboard.press("h")
        assert doctor.is_visible("#viewer-overlay")
    doctor.fill("#viewer-contrast", "180")
    assert "contrast(1.8)" in doctor.get_attribute("#viewer-image", "style")

    # Correct to another class with the number key, write a note, save with Ctrl+Enter.
    classes = ["COVID-19", "NORMAL", "PNEUMONIA"]
    target = next(c for c in classes if c != model_label)
    doctor.keyboard.press(str(classes.index(target) + 1))
    assert doctor.get_attribute("#review-form", "data-decision") == "correct"
    assert doctor.input_value("#final-label") == target
    doctor.fill("textarea[name=note]", "Physician reading differs from the model.")
    doctor.screenshot(path=str(artifacts / "review-02-review-page.png"), full_page=True)
    history = patient.context.new_page()  # the patient's "My studies" in a second tab
    history.goto("/studies/")
    history.wait_for_function("() => document.getElementById('study-history').dataset.live === 'websocket'")
    doctor.keyboard.press("Control+Enter")
    doctor.wait_for_url("**/review/")
    assert doctor.is_visible("text=Review saved (version 1)")
    assert doctor.query_selector(row) is None

    # The history row follows live; the patient's open page reloads itself with the label and note.
    history.wait_for_selector(f"tr[data-study-id='{study_id}'] .status-reviewed", timeout=30_000)
    patient.wait_for_selector("#review-final", timeout=30_000)
    assert patient.get_attribute("#review-final", "data-label") == target
    assert "differs from the model" in patient.text_content("#review-note")
    patient.screenshot(path=str(artifacts / "review-03-patient-sees-review.png"), full_page=True)

    # A second look: the physician corrects the saved review (version 2); the patient's open,
    # already reviewed page follows live.
    second = next(c for c in classes if c not in (model_label, target))
    doctor.goto(f"/review/{study_id}/")
    doctor.click("#viewer")
    doctor.keyboard.press(str(classes.index(second) + 1))
    doctor.fill("textarea[name=note]", "Second reading.")
    doctor.keyboard.press("Control+Enter")
    doctor.wait_for_url("**/review/")
    assert doctor.is_visible("text=Review saved (version 2)")
    patient.wait_for_function(
        f"() => (document.getElementById('review-final') || {{ dataset: {{}} }}).dataset.label === '{second}'",
        timeout=30_000,
    )
    assert "Second reading" in patient.text_content("#review-note")

    doctor.goto("/review/dashboard/")
    assert doctor.is_visible("text=Physician feedback")
    doctor.screenshot(path=str(artifacts / "review-04-dashboard.png"), full_page=True)

    # The admin's model-operations console, and the API documentation (its own, relaxed policy).
    _create_physician(embedded_portal, "ops-review-e2e", role="admin")
    admin = new_page(embedded_portal.url)
    log_in(admin, "ops-review-e2e")
    admin.goto("/modelops/")
    assert admin.is_visible("#champion-name")

    # Not one page asked for something the Content-Security-Policy forbids.
    for page in (patient, history, doctor, admin):
        assert csp_violations(page) == [], page.url
    assert csp_console == []

    # Swagger UI runs under the API docs' policy without a complaint; Redoc too, except the
    # "API docs by Redocly" logo it fetches from its CDN, which is blocked (nothing is loaded
    # from elsewhere) and which Redoc then leaves out.
    admin.goto("/api/docs/")
    admin.wait_for_selector(".swagger-ui .opblock", timeout=60_000)
    admin.goto("/api/redoc/")
    admin.wait_for_selector("text=DeepMed API", timeout=60_000)
    admin.wait_for_timeout(1000)
    redoc_logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [(v["page"], v["blocked"]) for v in csp_violations(admin)] in ([], [("/api/redoc/", redoc_logo)])
    assert all(redoc_logo in message for message in csp_console), csp_console
