"""Safety first, in real headless Chromium against `manage.py serve` (embedded), at a desktop
(1280×900) and a phone (390×844) size:

- the physician's heat-map overlay is hidden until asked for, and the checkbox and `H` really
  show and hide it (the overlay's computed style and box, not the checkbox, are checked);
- the patient's page says "Awaiting physician review" first, then leads with the physician's
  answer in plain words, the patient note (never the internal note) and the automated preview
  below it, marked as replaced, its explanation collapsed.

Screenshots: $DEEPMED_DATA_DIR/test-artifacts/browser/safety-*.png.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ml_core.testing import make_xray_like_png
from tests.browser.pages import PASSWORD, VIEWPORTS, log_in, sign_up_patient

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STUDY_URL = re.compile(r"/studies/([0-9a-f-]{36})/$")
PATIENT_NOTE = "Your X-ray shows a small pneumonia on the right. Please see your GP this week."
INTERNAL_NOTE = "Subtle RLL consolidation; query aspiration, correlate with CRP."
# What the page really shows of an element: its computed display/visibility and its box.
SHOWN = """(id) => {
  const el = document.getElementById(id);
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return { display: style.display, visibility: style.visibility, width: box.width, height: box.height,
           laidOut: el.offsetParent !== null };
}"""


def _shown(page, element_id: str) -> bool:
    s = page.evaluate(SHOWN, element_id)
    visible = s["display"] != "none" and s["visibility"] == "visible" and s["width"] > 0 and s["height"] > 0
    assert visible == s["laidOut"], s  # both views of the element agree
    return visible


def _box(page, selector: str) -> dict:
    return page.locator(selector).bounding_box()


def _create_user(process_tools, portal, username: str, role: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "create_user", "--role", role, "--username", username, "--password", PASSWORD],
        env=process_tools.embedded_env(portal.data_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _patient_uploads(page) -> str:
    sign_up_patient(page, "pat-safety")
    page.click("#accept-disclaimer")
    page.goto("/studies/upload/")
    page.set_input_files(
        "#id_image",
        files=[{"name": "chest.png", "mimeType": "image/png", "buffer": make_xray_like_png(size=448, seed=23)}],
    )
    page.fill("#id_symptoms", "cough and fever")
    page.click("#upload-submit")
    page.wait_for_url(STUDY_URL)
    return STUDY_URL.search(page.url).group(1)


def _images_loaded(page, *ids: str) -> None:
    for element_id in ids:
        page.wait_for_function(
            "(id) => { const i = document.getElementById(id); return i.complete && i.naturalWidth > 0; }",
            arg=element_id,
        )


def test_heatmap_overlay_is_off_by_default_and_the_patient_page_leads_with_the_review(
    embedded_portal, new_page, artifacts, status_log, settled_on, csp_violations, csp_console, process_tools
):
    patient = new_page(embedded_portal.url)
    study_id = _patient_uploads(patient)
    settled_on(patient, "explained", status_log)

    # Before the review: "Awaiting physician review", never "Done"; the preview with its heat-map.
    for name, viewport in VIEWPORTS.items():
        patient.set_viewport_size(viewport)
        patient.goto(f"/studies/{study_id}/")
        _images_loaded(patient, "xray-image", "heatmap-image")
        assert patient.text_content("#study-status").strip() == "Awaiting physician review"
        assert "Done" not in patient.text_content("#study-steps")
        assert patient.get_attribute("#study-steps [data-step=review]", "class") == "step step-current"
        assert patient.is_visible("#review-pending") and not patient.query_selector("#review-final")
        assert _shown(patient, "heatmap-image")
        patient.click("label[for=heatmap-toggle]")
        assert not _shown(patient, "heatmap-image")
        patient.click("label[for=heatmap-toggle]")
        assert _shown(patient, "heatmap-image")
        patient.screenshot(path=str(artifacts / f"safety-01-patient-awaiting-{name}.png"), full_page=True)

    # The physician's viewer: the overlay is hidden until asked for, with the checkbox or H.
    _create_user(process_tools, embedded_portal, "dr-safety", "physician")
    doctor = new_page(embedded_portal.url)
    log_in(doctor, "dr-safety")
    doctor.goto(f"/review/{study_id}/")
    doctor.click("text=Claim this study")
    doctor.wait_for_selector("#review-form")
    for name, viewport in VIEWPORTS.items():
        doctor.set_viewport_size(viewport)
        doctor.goto(f"/review/{study_id}/")
        _images_loaded(doctor, "viewer-image", "viewer-overlay")
        assert not _shown(doctor, "viewer-overlay"), "the heat-map must be off when the page opens"
        assert not doctor.is_checked("#viewer-heatmap")
        assert _shown(doctor, "heatmap-legend") and "low attention" in doctor.text_content("#heatmap-legend")
        doctor.check("#viewer-heatmap")
        assert _shown(doctor, "viewer-overlay")
        doctor.screenshot(path=str(artifacts / f"safety-02-review-overlay-on-{name}.png"), full_page=True)
        doctor.uncheck("#viewer-heatmap")
        assert not _shown(doctor, "viewer-overlay")
        doctor.click("#viewer")
        doctor.keyboard.press("h")
        assert _shown(doctor, "viewer-overlay") and doctor.is_checked("#viewer-heatmap")
        doctor.keyboard.press("h")
        assert not _shown(doctor, "viewer-overlay") and not doctor.is_checked("#viewer-heatmap")
        doctor.screenshot(path=str(artifacts / f"safety-03-review-overlay-off-{name}.png"), full_page=True)
        # Moving the opacity slider shows the overlay at that opacity (a deliberate act).
        doctor.eval_on_selector(
            "#viewer-heatmap-opacity", "el => { el.value = 30; el.dispatchEvent(new Event('input')); }"
        )
        assert _shown(doctor, "viewer-overlay") and doctor.is_checked("#viewer-heatmap")
        opacity = doctor.evaluate("getComputedStyle(document.getElementById('viewer-overlay')).opacity")
        assert float(opacity) == pytest.approx(0.3)
        doctor.uncheck("#viewer-heatmap")

    # The review form says which note the patient sees; the physician answers "pneumonia".
    assert "the patient will see this" in doctor.text_content("label[for=review-note-patient]")
    assert "clinicians only" in doctor.text_content("label[for=review-note-internal]")
    model_label = doctor.text_content("#model-label").strip()
    if model_label == "PNEUMONIA":
        doctor.check("input[name=decision][value=confirm]")
    else:
        doctor.check("input[name=decision][value=correct]")
        doctor.select_option("#final-label", "PNEUMONIA")
    doctor.fill("#review-note-patient", PATIENT_NOTE)
    doctor.fill("#review-note-internal", INTERNAL_NOTE)
    doctor.click("#save-review")
    doctor.wait_for_url("**/review/")

    # The patient's open page reloads itself: the physician's answer first, in plain words.
    patient.wait_for_selector("#review-final", timeout=30_000)
    for name, viewport in VIEWPORTS.items():
        patient.set_viewport_size(viewport)
        patient.goto(f"/studies/{study_id}/")
        _images_loaded(patient, "xray-image", "heatmap-image")
        assert patient.text_content("#study-status").strip() == "Reviewed"
        assert re.sub(r"\s+", " ", patient.text_content("#review-final")).strip() == (
            "Reviewed by a physician: pneumonia"
        )
        assert patient.text_content("#review-note").strip() == PATIENT_NOTE
        assert "RLL consolidation" not in patient.content()  # the internal note never reaches the patient
        lead, note, preview = _box(patient, "#review-final"), _box(patient, "#review-note"), _box(patient, "#result")
        assert lead["y"] < note["y"] < preview["y"]
        assert patient.is_visible("#result-replaced")
        # The preview's explanation is collapsed until opened.
        assert patient.is_hidden("#explanation-details .explanation-text")
        # The heat-map of the replaced preview is off; the toggle still works.
        assert not patient.is_checked("#heatmap-toggle") and not _shown(patient, "heatmap-image")
        patient.screenshot(path=str(artifacts / f"safety-04-patient-reviewed-{name}.png"), full_page=True)
        patient.click("label[for=heatmap-toggle]")
        assert _shown(patient, "heatmap-image")
        patient.click("#explanation-details summary")
        assert patient.is_visible("#explanation-details .explanation-text")
        assert patient.is_visible("#explanation-origin")
        # The image is large; the switch, the legend and the left/right note sit beside it on a
        # desktop and below it on a phone; nothing is wider than the screen.
        image, legend = _box(patient, "#xray-figure"), _box(patient, "#heatmap-legend")
        assert patient.is_visible("#sides-note")
        if name == "desktop":
            assert image["width"] >= 500 and legend["x"] >= image["x"] + image["width"]
        else:
            assert image["width"] >= 300 and legend["y"] >= image["y"] + image["height"]
        assert patient.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        patient.screenshot(path=str(artifacts / f"safety-05-patient-reviewed-open-{name}.png"), full_page=True)

    patient.goto("/studies/")
    assert patient.text_content(f"tr[data-study-id='{study_id}'] .status").strip() == "Reviewed"
    assert "Physician: pneumonia" in patient.text_content(f"tr[data-study-id='{study_id}']")

    for page in (patient, doctor):
        assert csp_violations(page) == [], page.url
    assert csp_console == []
