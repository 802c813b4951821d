"""The patient's pages and what every page has, in real headless Chromium against `manage.py
serve` (embedded), at a desktop (1280×900) and a phone (390×844) size: the landing page, the
skip link, the compact menu, sign-up's password rules, the upload page's single file control
(accept=, a preview of the chosen image, DICOM by name), the disclaimer message, the PDF report
(and that another patient cannot get it), styled error pages.

Screenshots: $DEEPMED_DATA_DIR/test-artifacts/browser/patient-*.png.
"""

from __future__ import annotations

import re

import pytest

from ml_core.testing import make_xray_like_png
from tests.browser.pages import VIEWPORTS, sign_up_patient

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STUDY_URL = re.compile(r"/studies/([0-9a-f-]{36})/$")
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"
# What sticks out on the right when the page scrolls sideways (for the failure message).
STICKING_OUT = """() => [...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > window.innerWidth)
  .map((el) => el.tagName + '#' + el.id + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))"""
IN_VIEW_HORIZONTALLY = """(selector) => [...document.querySelectorAll(selector)].map((el) => {
  const box = el.getBoundingClientRect();
  return box.width > 0 && box.left >= 0 && box.right <= window.innerWidth;
})"""


def _shot(page, artifacts, name: str) -> None:
    page.screenshot(path=str(artifacts / f"patient-{name}.png"), full_page=True)


def _skip_link_works(page) -> None:
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "skip-link"
    box = page.locator("#skip-link").bounding_box()
    assert box and box["y"] >= 0  # shown when focused
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"


def test_visitor_pages_skip_link_and_error_pages_at_both_sizes(embedded_portal, new_page, artifacts, csp_violations):
    page = new_page(embedded_portal.url)
    for name, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        assert page.goto("/").status == 200
        assert page.is_visible("#landing") and page.is_visible("text=What DeepMed is not")
        assert page.is_visible("#landing-signup") and page.is_visible("#landing-login")
        assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate(STICKING_OUT)
        assert page.get_attribute("link[rel=icon]", "href") == "/static/favicon.svg"
        _skip_link_works(page)
        _shot(page, artifacts, f"01-landing-{name}")

        page.click("#landing-signup")
        page.wait_for_url("**/accounts/signup/")
        assert page.is_visible("#id_password1_helptext")  # the rules, before any submission
        assert "at least 8 characters" in page.text_content("#id_password1_helptext")
        assert page.get_attribute("#id_password1", "autocomplete") == "new-password"
        assert page.get_attribute("#id_username", "autocomplete") == "username"
        _shot(page, artifacts, f"02-signup-{name}")

        response = page.goto("/no-such-page/")
        assert response.status == 404
        assert page.is_visible("#error-page") and page.is_visible("#main-menu")
        assert page.evaluate("() => getComputedStyle(document.querySelector('.card')).backgroundColor") == (
            "rgb(255, 255, 255)"
        )  # the site's stylesheet, not a bare page
        _shot(page, artifacts, f"03-404-{name}")
    assert csp_violations(page) == []


def test_upload_preview_pdf_report_and_phone_menu(embedded_portal, new_page, artifacts, csp_violations):
    page = new_page(embedded_portal.url)
    sign_up_patient(page, "pat-pages")
    assert page.is_visible("#accept-disclaimer")
    page.goto("/studies/upload/")  # not accepted yet: back to the disclaimer, with a reason
    assert "/accounts/disclaimer/" in page.url
    assert page.is_visible("text=Before your first upload, please read and accept the disclaimer")
    page.click("#accept-disclaimer")
    page.wait_for_url("**/studies/upload/")

    xray = make_xray_like_png(size=320, seed=41)
    for name, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        page.goto("/studies/upload/")
        file_inputs = page.query_selector_all("input[type=file]")
        assert len(file_inputs) == 1
        accept = set(file_inputs[0].get_attribute("accept").split(","))
        assert {".png", ".jpg", ".jpeg", ".dcm", "application/dicom"} <= accept
        assert page.is_visible("#choose-file") and page.is_hidden("#upload-preview")
        # The DICOM: named, not drawn.
        page.set_input_files(
            "#id_image", files=[{"name": "scan.dcm", "mimeType": "application/dicom", "buffer": b"DICM" * 40}]
        )
        assert page.is_visible("#upload-preview") and page.is_hidden("#upload-preview-image")
        assert "scan.dcm" in page.text_content("#upload-preview-caption")
        # The PNG: drawn from a local object URL.
        page.set_input_files("#id_image", files=[{"name": "chest.png", "mimeType": "image/png", "buffer": xray}])
        page.wait_for_function(
            "() => { const i = document.getElementById('upload-preview-image'); return i.complete && i.naturalWidth === 320; }"
        )
        assert page.get_attribute("#upload-preview-image", "src").startswith("blob:")
        assert page.is_visible("#upload-preview-image")
        assert page.text_content("#chosen-file") == "Selected: chest.png"
        assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate(STICKING_OUT)
        _shot(page, artifacts, f"04-upload-preview-{name}")

    page.click("#upload-submit")
    page.wait_for_url(STUDY_URL)
    study_id = STUDY_URL.search(page.url).group(1)
    assert page.get_attribute("#study-status", "aria-live") == "polite"

    # The PDF report: a download for the owner (the page's link, fetched with the owner's cookies)…
    assert page.get_attribute("#download-report", "href") == f"/studies/{study_id}/report.pdf"
    assert page.get_attribute("#download-report", "download") is not None
    report = page.request.get(f"/studies/{study_id}/report.pdf")
    assert report.status == 200 and report.headers["content-type"] == "application/pdf"
    assert report.headers["content-disposition"].startswith("attachment;")
    assert report.body().startswith(b"%PDF")
    # …and nothing for another patient.
    intruder = new_page(embedded_portal.url)
    sign_up_patient(intruder, "pat-pages-two")
    denied = intruder.request.get(f"/studies/{study_id}/report.pdf")
    assert denied.status == 404 and not denied.body().startswith(b"%PDF")

    # On a phone: every menu link and every action of the history is on screen, nothing scrolls sideways.
    for name, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        page.goto("/studies/")
        assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate(STICKING_OUT)
        assert all(page.evaluate(IN_VIEW_HORIZONTALLY, "#main-menu a, #main-menu button"))
        for action in (f"tr[data-study-id='{study_id}'] a", f"tr[data-study-id='{study_id}'] button"):
            page.locator(action).first.scroll_into_view_if_needed()
            assert page.locator(action).first.is_visible()
        _shot(page, artifacts, f"05-history-{name}")
        page.goto(f"/studies/{study_id}/")
        assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate(STICKING_OUT)
        _shot(page, artifacts, f"06-study-{name}")
    assert csp_violations(page) == []
