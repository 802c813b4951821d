"""The patient's whole path in real headless Chromium against `manage.py serve` (embedded)."""

from __future__ import annotations

import base64
import json
import re

import pytest

from ml_core.testing import make_xray_like_png
from tests.browser.pages import PASSWORD, sign_up_patient

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STUDY_URL = re.compile(r"/studies/([0-9a-f-]{36})/$")


def _shot(page, artifacts, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def _drop_file(page, name: str, data: bytes) -> None:
    """Drop a file on the drop zone the way a desktop drag would deliver it."""
    page.evaluate(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/png" }));
            const zone = document.getElementById("dropzone");
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        [name, base64.b64encode(data).decode()],
    )


def test_register_consent_upload_live_result_delete_and_isolation(
    embedded_portal, new_page, artifacts, status_log, settled_on
):
    page = new_page(embedded_portal.url)
    page.goto("/accounts/signup/")
    _shot(page, artifacts, "01-signup")
    sign_up_patient(page, "pat-one")

    # No upload before the disclaimer is accepted: the upload page sends the patient back to it.
    page.goto("/studies/upload/")
    assert "/accounts/disclaimer/" in page.url
    assert page.is_visible("text=not a diagnosis")
    _shot(page, artifacts, "02-disclaimer")
    page.click("#accept-disclaimer")
    page.wait_for_url("**/studies/upload/")

    # A file that is not an image: refused over the XHR path, with the reason, and no study.
    _drop_file(page, "notes.png", b"GIF89a" + b"\0" * 64)
    page.click("#upload-submit")
    page.wait_for_selector("#upload-errors .error")
    assert "only PNG, JPEG and DICOM" in page.text_content("#upload-errors")
    assert page.url.endswith("/studies/upload/")

    # Drag and drop the X-ray; the XHR shows its progress bar, then opens the study.
    _drop_file(page, "chest.png", make_xray_like_png(size=512, seed=3))
    assert page.text_content("#chosen-file") == "Selected: chest.png"
    page.fill("#id_patient_age", "47")
    page.fill("#id_symptoms", "dry cough for a week")
    _shot(page, artifacts, "03-upload")
    page.click("#upload-submit")
    page.wait_for_url(STUDY_URL)
    study_id = STUDY_URL.search(page.url).group(1)
    _shot(page, artifacts, "04-study-live")

    # The page follows the study by itself (no reload by the test): the result, then the
    # explanation (the template engine here: the language model is off in this server).
    log = settled_on(page, "explained", status_log)
    (artifacts / "status-log.json").write_text(json.dumps(log, indent=1))
    assert log[0]["via"] == "render"
    assert page.is_visible("#result") and page.is_visible("#explanation .explanation-text")
    assert all(e["channel"] in ("websocket", "polling") for e in log if e["via"] == "live")
    page.wait_for_function("() => document.getElementById('heatmap-image').naturalWidth > 0")
    page.wait_for_function("() => document.getElementById('xray-image').naturalWidth > 0")
    assert page.is_visible("#result-disclaimer") and "not a diagnosis" in page.text_content("#result-disclaimer")
    bars = page.query_selector_all("#probabilities tr[data-class]")
    assert sorted(b.get_attribute("data-class") for b in bars) == ["COVID-19", "NORMAL", "PNEUMONIA"]
    assert page.is_visible("#review-pending")
    _shot(page, artifacts, "05-result-with-heatmap")
    page.click("label[for=heatmap-toggle]")
    assert page.is_hidden("#heatmap-image")
    _shot(page, artifacts, "06-result-heatmap-off")
    page.click("label[for=heatmap-toggle]")
    assert page.is_visible("#heatmap-image")

    # History, newest first, with the status.
    page.goto("/studies/")
    assert page.get_attribute("#study-history tbody tr", "data-study-id") == study_id
    _shot(page, artifacts, "07-history")

    # A second patient can open neither the study page nor its image or heat-map.
    intruder = new_page(embedded_portal.url)
    sign_up_patient(intruder, "pat-two")
    for path in ("", "image.png", "heatmap.png", "status.json"):
        assert intruder.goto(f"/studies/{study_id}/{path}").status == 404, path
    assert intruder.goto(f"/api/v1/studies/{study_id}").status == 404
    intruder.goto(f"/studies/{study_id}/")
    _shot(intruder, artifacts, "08-other-patient-denied")

    # The owner deletes the study: gone from the history, its image no longer served.
    page.goto(f"/studies/{study_id}/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-study")
    page.wait_for_url("**/studies/")
    assert page.query_selector(f"tr[data-study-id='{study_id}']") is None
    assert page.is_visible("text=were deleted")
    _shot(page, artifacts, "09-after-delete")
    assert page.goto(f"/studies/{study_id}/image.png").status == 404

    # Research use is a separate, explicit opt-in; then "delete my account and data".
    page.goto("/accounts/me/")
    assert "not allowed" in page.text_content("#research-state")
    page.click("#research-grant")
    assert "allowed" in page.text_content("#research-state") and "not allowed" not in page.text_content(
        "#research-state"
    )
    _shot(page, artifacts, "10-account")
    page.fill("#id_password", PASSWORD)
    page.check("#id_confirm")
    page.click("#delete-account")
    page.wait_for_url("**/accounts/login/")
    assert page.is_visible("text=Your account and all your data were deleted.")
    page.fill("input[name=username]", "pat-one")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    assert page.is_visible("text=did not match")  # the account is gone
