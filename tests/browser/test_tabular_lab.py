"""The tabular lab in real headless Chromium against `manage.py serve` (embedded: Daphne +
in-process Celery worker, SQLite): an admin uploads a small generated CSV, sees its profile,
starts a reduced experiment (quick grid, two algorithms), watches it finish (live over the
WebSocket, ws/modelops/tabular/<id>/), compares the algorithms; then a physician fills the risk form generated from the
model's schema and sees the preliminary result. axe-core finds nothing on any of these pages at
either size; screenshots of each at 1280x900 and 390x844 go to the artefact folder."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from tests.browser.pages import AXE, PASSWORD, VIEWPORTS, axe_violations, log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EXPERIMENT_URL = re.compile(r"/tabular/experiments/(\d+)/$")
# Records what the experiment page's badge and progress sentence show, across its reload.
PROGRESS_RECORDER = """
(() => {
  document.addEventListener("DOMContentLoaded", () => {
    const badge = document.getElementById("experiment-status");
    if (!badge) return;
    const text = document.getElementById("experiment-progress-text");
    const push = (via) => {
      const log = JSON.parse(sessionStorage.getItem("experiment-log") || "[]");
      log.push({ status: badge.dataset.status, via, channel: badge.dataset.live || "", text: text.textContent.trim() });
      sessionStorage.setItem("experiment-log", JSON.stringify(log));
    };
    push("render");
    new MutationObserver(() => push("live")).observe(badge, { attributes: true, attributeFilter: ["data-status", "data-live"] });
    new MutationObserver(() => push("live")).observe(text, { childList: true, characterData: true, subtree: true });
  });
})();
"""


# Elements (outside a scrolling table box) that stick out past the right edge of the viewport.
WIDER_THAN_VIEWPORT = """() => [...document.querySelectorAll("main *")]
  .filter((el) => !el.closest(".table-scroll") && el.getBoundingClientRect().right > window.innerWidth + 1)
  .map((el) => el.tagName + (el.id ? "#" + el.id : "") + "." + el.className).slice(0, 10)"""


@pytest.fixture(scope="module")
def tabular_portal(tmp_path_factory, process_tools):
    data_dir = tmp_path_factory.mktemp("tabular-embedded")
    server, base = process_tools.start_embedded_server(
        data_dir,
        setup=[
            ["create_user", "--role", "admin", "--username", "lab-admin", "--password", PASSWORD],
            ["create_user", "--role", "physician", "--username", "lab-physician", "--password", PASSWORD],
        ],
    )
    yield SimpleNamespace(url=base, log=server.log)
    server.kill()


def check_page(page, artifacts, name: str, csp_violations) -> None:
    """Screenshots at both sizes, axe-core with zero violations at both, no CSP violation."""
    found = {}
    for size, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        page.screenshot(path=str(artifacts / f"tabular-{name}-{size}.png"), full_page=True)
        wide = page.evaluate(WIDER_THAN_VIEWPORT)
        assert not wide, (name, size, wide)  # tables scroll inside their own box; the page never does
        if AXE.exists():  # tests/browser/test_accessibility.py says why it is skipped otherwise
            found[size] = axe_violations(page)
    page.set_viewport_size(VIEWPORTS["desktop"])
    assert not any(found.values()), (name, found)
    assert csp_violations(page) == [], (name, csp_violations(page))


def images_loaded(page, selector: str) -> bool:
    return page.evaluate(
        """(sel) => [...document.querySelectorAll(sel)].every((img) => img.complete && img.naturalWidth > 0)""",
        selector,
    )


def test_admin_trains_and_physician_predicts(tabular_portal, new_page, artifacts, session_json, csp_violations):
    from ml_core.tabular.testing import make_frame

    admin = new_page(tabular_portal.url)
    admin.context.add_init_script(PROGRESS_RECORDER)
    log_in(admin, "lab-admin")
    admin.goto("/tabular/")
    assert admin.is_visible("#no-datasets")
    check_page(admin, artifacts, "01-lab", csp_violations)

    # Upload: a refused file first (shown on the field, nothing stored), then a real table.
    admin.fill("#id_name", "generated risk table")
    admin.set_input_files("#id_file", {"name": "bad.csv", "mimeType": "text/csv", "buffer": b"only\n1\n"})
    admin.click("#upload-submit")
    admin.wait_for_load_state()
    assert admin.is_visible("#id_file_error") and admin.get_attribute("#id_file", "aria-invalid") == "true"
    assert admin.is_visible("#no-datasets")
    csv = make_frame(160, seed=3).to_csv(index=False).encode()
    admin.fill("#id_name", "generated risk table")
    admin.fill("#id_target", "target")
    admin.set_input_files("#id_file", {"name": "risk.csv", "mimeType": "text/csv", "buffer": csv})
    admin.click("#upload-submit")
    admin.wait_for_url(re.compile(r"/tabular/datasets/\d+/$"))
    assert "160" in admin.inner_text("#profile-summary")
    assert admin.inner_text("#columns tr[data-column=bmi] .zeros").strip() == "6"  # zeros standing for missing
    assert admin.is_visible("#class-balance") and "patient_id" in admin.inner_text("#dropped-columns")
    admin.wait_for_function("() => [...document.querySelectorAll('#profile-plots img')].every((i) => i.complete)")
    assert images_loaded(admin, "#profile-plots img") and admin.locator("#profile-plots img").count() == 3
    check_page(admin, artifacts, "02-dataset", csp_violations)

    # A reduced run: two algorithms, the quick grid, 3 folds.
    for box in admin.locator("#id_algorithms input[type=checkbox]").all():
        box.set_checked(box.get_attribute("value") in ("logistic_regression", "naive_bayes"))
    admin.select_option("#id_grid", "quick")
    admin.select_option("#id_folds", "3")
    admin.select_option("#id_scoring", "roc_auc")
    admin.click("#start-experiment")
    admin.wait_for_url(EXPERIMENT_URL)
    for _ in range(480):  # the page follows the run and reloads itself once it has finished
        log = session_json(admin, "experiment-log")
        rendered = [e["status"] for e in log if e["via"] == "render"]
        if rendered and rendered[-1] in ("succeeded", "failed", "cancelled"):
            break
        admin.wait_for_timeout(500)
    (artifacts / "tabular-experiment-progress.json").write_text(json.dumps(log, indent=1))
    assert rendered[-1] == "succeeded", admin.inner_text("main") + tabular_portal.log()[-3000:]
    assert rendered[0] in ("queued", "running")  # the first render was before the end ...
    live = [e for e in log if e["via"] == "live"]
    assert live and any(e["channel"] == "websocket" for e in live), log  # ... followed live over the WebSocket
    assert any(re.search(r"\(algorithm [12] of 2\)", e["text"]) for e in live), log  # which algorithm, live
    assert admin.evaluate("document.getElementById('experiment-progress-bar').value") == 1
    assert admin.inner_text("#experiment-progress-text") == "Done"
    assert admin.inner_text("#chosen") in ("Logistic regression", "Naive Bayes")
    admin.wait_for_function("() => [...document.querySelectorAll('#experiment-result img')].every((i) => i.complete)")
    assert images_loaded(admin, "#experiment-result img")
    check_page(admin, artifacts, "03-experiment", csp_violations)

    admin.click("#compare-link")
    admin.wait_for_url(re.compile(r"/compare/$"))
    assert admin.locator("#metrics tbody tr").count() == 2
    assert admin.locator("#metrics td.better").count() >= 11
    admin.wait_for_function("() => document.getElementById('comparison-chart').complete")
    assert images_loaded(admin, "#comparison-chart")
    check_page(admin, artifacts, "04-compare", csp_violations)
    experiment_id = re.search(r"/experiments/(\d+)/", admin.url).group(1)

    # A physician: the risk form generated from the model's schema, and the preliminary result.
    doctor = new_page(tabular_portal.url)
    log_in(doctor, "lab-physician")
    doctor.goto("/tabular/risk/")
    check_page(doctor, artifacts, "05-risk-models", csp_violations)
    doctor.click(f"#models tr[data-experiment='{experiment_id}'] a")
    doctor.wait_for_url(re.compile(rf"/tabular/risk/{experiment_id}/$"))
    assert doctor.get_attribute("#id_glucose", "type") == "number" and doctor.get_attribute("#id_glucose", "max")
    assert "mg/dl" in doctor.inner_text("label[for=id_glucose]")
    check_page(doctor, artifacts, "06-risk-form", csp_violations)
    for name, value in {"glucose": "190", "bmi": "35", "blood_pressure": "80", "noise": "0"}.items():
        doctor.fill(f"#id_{name}", value)
    doctor.select_option("#id_smoker", "yes")
    doctor.select_option("#id_site", "north")
    doctor.click("#risk-submit")
    doctor.wait_for_selector("#risk-result")
    assert doctor.inner_text("#predicted-label") == "1"
    assert re.fullmatch(r"\d+ %", doctor.inner_text("#predicted-probability"))
    assert "Preliminary, not a diagnosis" in doctor.inner_text("#risk-result")
    assert "glucose" in doctor.inner_text("#top-features")
    assert re.search(r"sha256 [0-9a-f]{12}", doctor.inner_text("#model-version"))
    check_page(doctor, artifacts, "07-risk-result", csp_violations)
