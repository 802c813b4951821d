"""axe-core (npm `axe-core`, injected by Playwright) on every page of every role, in real headless
Chromium against `manage.py serve` (embedded), at 1280×900 and 390×844: zero violations on the
app's own pages.

Pages are listed per role below (a study page appears before and after the physician's review).
Not checked: the Django admin (/admin/, Django's own pages) and the API pages (/api/docs/,
/api/redoc/, /api/schema/: drf-spectacular's Swagger UI and Redoc); nor pages needing objects an
empty embedded portal lacks (a training run's page, the comparison of two evaluated versions).

axe's source is evaluated through the DevTools protocol (page.evaluate), so the pages keep their
real Content-Security-Policy: no inline script is added to them. Every violation found is written
to $DEEPMED_DATA_DIR/test-artifacts/browser/axe-<role>-<size>.json.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ml_core.testing import make_xray_like_png
from tests.browser.pages import AXE, PASSWORD, VIEWPORTS, axe_violations, log_in, sign_up_patient

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STUDY_URL = re.compile(r"/studies/([0-9a-f-]{36})/$")

# Every page of each role ({study}: a study of the patient's). The error pages are the app's too.
PAGES = {
    "visitor": ["/", "/accounts/login/", "/accounts/signup/", "/no-such-page/"],
    "patient": [
        "/studies/",
        "/studies/upload/",
        "/studies/{study}/",
        "/accounts/me/",
        "/accounts/me/password/",
        "/accounts/disclaimer/",
        "/review/",  # 403 page
        "/no-such-page/",
    ],
    "physician": ["/review/", "/review/{study}/", "/review/dashboard/", "/accounts/me/", "/studies/upload/"],
    "admin": ["/modelops/", "/audit/", "/review/", "/review/{study}/", "/review/dashboard/"],
    "patient-reviewed": ["/studies/", "/studies/{study}/"],
    "physician-reviewed": ["/review/dashboard/", "/review/{study}/"],  # with a review: the matrices filled in
}
# Violations known and left to a page's owner: page path pattern -> axe rule ids. Empty: every
# page of every role passes; a rule listed here must name the page and why.
KNOWN_ELSEWHERE: dict[str, set[str]] = {}


def _manage(process_tools, portal, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=process_tools.embedded_env(portal.data_dir),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _has_a_result(page, status_log, timeout_s: float = 300.0) -> None:
    """Until the study page has been rendered with the model's result (explained or not yet:
    on a busy machine the explanation may take minutes; the page is checked as it is)."""
    for _ in range(int(timeout_s * 2)):
        rendered = [e["status"] for e in status_log(page) if e["via"] == "render"]
        if rendered and rendered[-1] in ("predicted", "explaining", "explained"):
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"the study page never showed a result: {status_log(page)}")


def _check(page, role: str, paths: list[str], study_id: str, artifacts) -> dict[str, list[dict]]:
    """Run axe on each page at both sizes; the violations not known elsewhere, by page and size."""
    unexpected: dict[str, list[dict]] = {}
    for size, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        found = {}
        for template in paths:
            path = template.format(study=study_id)
            page.goto(path)
            page.wait_for_load_state()
            page.wait_for_timeout(300)  # live rows and images settle
            violations = axe_violations(page)
            found[path] = violations
            known = next((rules for pattern, rules in KNOWN_ELSEWHERE.items() if re.fullmatch(pattern, path)), set())
            new = [v for v in violations if v["id"] not in known]
            if new:
                unexpected[f"{size} {path}"] = new
        (artifacts / f"axe-{role}-{size}.json").write_text(json.dumps(found, indent=1))
    return unexpected


def test_axe_finds_no_violation_on_any_page_of_any_role(
    embedded_portal, new_page, artifacts, status_log, process_tools
):
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (npm install axe-core; deploy/test.sh does)")
    unexpected: dict[str, dict] = {}

    visitor = new_page(embedded_portal.url)
    unexpected["visitor"] = _check(visitor, "visitor", PAGES["visitor"], "", artifacts)

    patient = new_page(embedded_portal.url)
    sign_up_patient(patient, "pat-axe")
    patient.click("#accept-disclaimer")
    patient.wait_for_url("**/studies/upload/")
    patient.set_input_files(
        "#id_image",
        files=[{"name": "chest.png", "mimeType": "image/png", "buffer": make_xray_like_png(size=384, seed=57)}],
    )
    patient.click("#upload-submit")
    patient.wait_for_url(STUDY_URL)
    study_id = STUDY_URL.search(patient.url).group(1)
    _has_a_result(patient, status_log)
    unexpected["patient"] = _check(patient, "patient", PAGES["patient"], study_id, artifacts)

    _manage(
        process_tools,
        embedded_portal,
        "create_user",
        "--role",
        "physician",
        "--username",
        "dr-axe",
        "--password",
        PASSWORD,
    )
    _manage(
        process_tools,
        embedded_portal,
        "create_user",
        "--role",
        "admin",
        "--username",
        "admin-axe",
        "--password",
        PASSWORD,
    )
    physician = new_page(embedded_portal.url)
    log_in(physician, "dr-axe")
    unexpected["physician"] = _check(physician, "physician", PAGES["physician"], study_id, artifacts)
    admin = new_page(embedded_portal.url)
    log_in(admin, "admin-axe")
    unexpected["admin"] = _check(admin, "admin", PAGES["admin"], study_id, artifacts)

    # The physician's review, then the patient's reviewed pages.
    _manage(
        process_tools,
        embedded_portal,
        "shell",
        "-c",
        "from apps.accounts.models import User; from apps.review.services import save_review; "
        f"save_review('{study_id}', physician=User.objects.get(username='dr-axe'), decision='confirm', "
        "note='Seen and confirmed; see your GP if the cough lasts.')",
    )
    unexpected["patient-reviewed"] = _check(patient, "patient-reviewed", PAGES["patient-reviewed"], study_id, artifacts)
    unexpected["physician-reviewed"] = _check(
        physician, "physician-reviewed", PAGES["physician-reviewed"], study_id, artifacts
    )

    unexpected = {role: pages for role, pages in unexpected.items() if pages}
    (artifacts / "axe-unexpected.json").write_text(json.dumps(unexpected, indent=1))
    assert not unexpected, json.dumps(unexpected, indent=1)[:6000]
