"""Issue 16, physicians and admins, in real headless Chromium against `manage.py serve`
(embedded), at a desktop (1280×900) and a phone (390×844) size:

- the viewer fits the image to itself and, on the desktop, the viewer and the decision panel
  (with "Save & next") are both on screen without scrolling; a window preset changes the
  image's computed filter; arrow keys pan;
- the worklist flags a minority (the calibrated probability of a severe finding over the
  threshold, not every non-normal label) and its label filter offers only the model's classes;
- "Save & next" saves, then claims and opens the next study in worklist order;
- an admin lands on the operations console after logging in; Compare is enabled only for two
  different versions; the comparison page has a difference column, the better value highlighted,
  pass/fail gate badges, the AUC in the ROC legend and the confusion matrices side by side.

The studies are seeded straight into the database (known probabilities, no pipeline), before
the server starts. Screenshots: $DEEPMED_DATA_DIR/test-artifacts/browser/ui16-*.png.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from tests.browser.pages import VIEWPORTS, log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

PASSWORD = "a-long-test-password-16"
REVIEW_URL = re.compile(r"/review/([0-9a-f-]{36})/$")
# (probabilities, hours waiting): worklist order is severity of the top label, uncertainty, age.
STUDIES = [
    ({"COVID-19": 0.90, "NORMAL": 0.05, "PNEUMONIA": 0.05}, 2),  # the only one over 0.7: flagged
    ({"COVID-19": 0.10, "NORMAL": 0.42, "PNEUMONIA": 0.48}, 5),  # PNEUMONIA on top, severe 0.58
    ({"COVID-19": 0.45, "NORMAL": 0.40, "PNEUMONIA": 0.15}, 4),  # COVID-19 on top, severe 0.60
    ({"COVID-19": 0.12, "NORMAL": 0.33, "PNEUMONIA": 0.55}, 3),  # PNEUMONIA on top, severe 0.67
    ({"COVID-19": 0.05, "NORMAL": 0.90, "PNEUMONIA": 0.05}, 6),
    ({"COVID-19": 0.20, "NORMAL": 0.60, "PNEUMONIA": 0.20}, 1),
    ({"COVID-19": 0.10, "NORMAL": 0.80, "PNEUMONIA": 0.10}, 7),
]
SEED = """
import hashlib, io
from django.core.files.base import ContentFile
from django.utils import timezone
from apps.accounts.services import create_user
from apps.modelops.services import register_model_version
from apps.studies.models import Prediction, Study
from ml_core.testing import make_xray_like_png
from PIL import Image

champion = register_model_version("{champion}", alias="champion")
register_model_version("{other}")
create_user(username="dr-ui16", password="{password}", role="physician", validate=False)
create_user(username="ops-ui16", password="{password}", role="admin", validate=False)
patient = create_user(username="pat-ui16", password="{password}", role="patient", validate=False)
for k, (probabilities, hours) in enumerate({studies!r}):
    data = make_xray_like_png(size=320 + 32 * k, seed=160 + k)
    width, height = Image.open(io.BytesIO(data)).size
    study = Study(owner=patient, sha256=hashlib.sha256(data).hexdigest(), original_format="png",
                  width=width, height=height, patient_age=30 + 7 * k, symptoms=f"cough for {{k + 1}} days",
                  status="predicted")
    study.image.save("x.png", ContentFile(data), save=False)
    study.save()
    Study.objects.filter(pk=study.pk).update(created_at=timezone.now() - timezone.timedelta(hours=hours))
    label = max(probabilities, key=probabilities.get)
    Prediction.objects.create(study=study, role="champion", model_version=champion, model_name=champion.registered_name,
                              model_version_label=champion.version, label=label, probabilities=probabilities,
                              confidence=probabilities[label], latency_ms=3.0)
"""


@pytest.fixture(scope="module")
def ui_portal(tmp_path_factory, process_tools):
    from apps.modelops.testing import write_tiny_dataset
    from ml_core.testing import make_tiny_package

    data_dir = tmp_path_factory.mktemp("ui16-embedded")
    champion = make_tiny_package(data_dir / "cxr-tiny")
    other = make_tiny_package(data_dir / "cxr-tiny-2" / "cxr-tiny", version="2", seed=7)
    server, base = process_tools.start_embedded_server(
        data_dir,
        # One process for everything after `migrate`: the models, the users and the studies.
        setup=[["shell", "-c", SEED.format(password=PASSWORD, studies=STUDIES, champion=champion, other=other)]],
        DEEPMED_BASE_DATASET_DIR=str(write_tiny_dataset(data_dir / "cxr")),
        DEEPMED_PACKAGE_FORMAT="fp32",
        DEEPMED_SEVERE_THRESHOLD="0.7",
    )
    yield SimpleNamespace(url=base, log=server.log, data_dir=data_dir)
    server.kill()


def _row_ids(page) -> list[str]:
    return page.eval_on_selector_all("#worklist tr[data-study-id]", "rows => rows.map(r => r.dataset.studyId)")


def _on_screen(page, selector: str) -> bool:
    """The element's whole box lies inside the viewport as the page is (no scrolling), and is
    not cut off by a scrolling box around it."""
    return page.evaluate(
        """(sel) => { const el = document.querySelector(sel); const r = el.getBoundingClientRect();
          let ok = r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0
            && r.bottom <= window.innerHeight && r.right <= window.innerWidth;
          for (let box = el.parentElement; box && ok; box = box.parentElement) {
            const style = getComputedStyle(box);
            if (!/(auto|scroll|hidden)/.test(style.overflowY + style.overflowX)) continue;
            const c = box.getBoundingClientRect();
            ok = r.top >= c.top - 1 && r.bottom <= c.bottom + 1 && r.left >= c.left - 1 && r.right <= c.right + 1;
          }
          return ok; }""",
        selector,
    )


def test_worklist_flags_a_minority_and_filters_by_the_models_classes(ui_portal, new_page, artifacts, csp_violations):
    page = new_page(ui_portal.url)
    log_in(page, "dr-ui16", PASSWORD)
    for name, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        page.goto("/review/")
        rows = page.locator("#worklist tr[data-study-id]")
        assert rows.count() == len(STUDIES)
        labels = page.eval_on_selector_all(
            "#worklist tr[data-study-id] td:nth-child(3)", "cells => cells.map(c => c.textContent)"
        )
        non_normal = [text for text in labels if "NORMAL" not in text]
        flagged = page.locator("#worklist tr[data-severe='1']")
        assert len(non_normal) == 4 and flagged.count() == 1, labels  # one flag among four non-normal labels
        assert "Severe?" in flagged.inner_text() and "COVID-19" in flagged.inner_text()
        assert rows.first.get_attribute("data-severe") == "1"  # the flagged study comes first
        assert page.locator("#worklist tr[data-severe='0'] .flag-severe").count() == 0
        options = page.eval_on_selector_all("select[name=label] option", "os => os.map(o => o.value)")
        assert options == ["", "COVID-19", "NORMAL", "PNEUMONIA"]
        first = rows.first
        page.wait_for_function(  # the thumbnail (loading="lazy") really loads
            "() => { const i = document.querySelector('#worklist tr[data-study-id] img.thumb');"
            " return i.complete && i.naturalWidth > 0; }"
        )
        assert "cough for" in first.inner_text() and "hours" in first.inner_text()  # symptoms, waiting time
        for action in ("a[data-focus=open]", "button.claim-button"):  # reachable without sideways scrolling
            box = first.locator(action).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], (name, action, box)
        page.screenshot(path=str(artifacts / f"ui16-01-worklist-{name}.png"), full_page=True)
    assert csp_violations(page) == []


def test_worklist_keeps_the_focus_when_rows_refresh_live(ui_portal, new_page, artifacts):
    doctor = new_page(ui_portal.url)
    log_in(doctor, "dr-ui16", PASSWORD)
    doctor.set_viewport_size(VIEWPORTS["desktop"])
    doctor.goto("/review/")
    doctor.wait_for_function("() => document.getElementById('worklist-live').dataset.live === 'websocket'")
    ids = _row_ids(doctor)
    doctor.focus(f"#worklist tr[data-study-id='{ids[0]}'] a[data-focus=open]")
    before = doctor.get_attribute("#worklist", "data-refreshed")
    # Someone else claims another study: every worklist refetches its rows.
    other = new_page(ui_portal.url)
    log_in(other, "ops-ui16", PASSWORD)
    other.goto("/review/")
    other.click(f"#worklist tr[data-study-id='{ids[2]}'] button.claim-button")
    other.wait_for_url(REVIEW_URL)
    doctor.wait_for_function(
        "(before) => { const r = document.getElementById('worklist').dataset.refreshed;"
        " return r !== undefined && r !== before; }",
        arg=before or "",
    )
    assert "claimed by ops-ui16" in doctor.inner_text(f"#worklist tr[data-study-id='{ids[2]}']")
    focused = doctor.evaluate(
        "() => { const el = document.activeElement; const row = el.closest('tr');"
        " return { focus: el.dataset.focus, study: row && row.dataset.studyId }; }"
    )
    assert focused == {"focus": "open", "study": ids[0]}
    doctor.screenshot(path=str(artifacts / "ui16-08-worklist-live-focus-desktop.png"))
    other.click("text=Release it")


def test_viewer_fits_the_image_presets_change_the_filter_and_arrows_pan(ui_portal, new_page, artifacts):
    page = new_page(ui_portal.url)
    log_in(page, "dr-ui16", PASSWORD)
    page.goto("/review/")
    study_id = _row_ids(page)[1]
    for name, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        page.goto(f"/review/{study_id}/")  # opening to look: no claim needed
        page.wait_for_function("() => document.getElementById('viewer').dataset.fitted === '1'")
        page.wait_for_timeout(200)
        assert page.locator("#review-form").count() == 1 and "You hold this study" not in page.inner_text("main")
        viewer = page.locator("#viewer").bounding_box()
        image = page.locator("#viewer-image").bounding_box()
        # Fitted: inside the viewer, as large as it allows in one direction, centred.
        assert image["x"] >= viewer["x"] - 1 and image["y"] >= viewer["y"] - 1
        assert image["x"] + image["width"] <= viewer["x"] + viewer["width"] + 1
        assert image["y"] + image["height"] <= viewer["y"] + viewer["height"] + 1
        assert abs(image["width"] - viewer["width"]) <= 2 or abs(image["height"] - viewer["height"]) <= 2
        if name == "desktop":
            assert viewer["width"] > 600, viewer  # the page's width, not a 960 px column
            assert page.evaluate("window.scrollY") == 0
            assert _on_screen(page, "#viewer") and _on_screen(page, "#save-next") and _on_screen(page, "#save-review")
        page.screenshot(path=str(artifacts / f"ui16-02-viewer-fit-{name}.png"))

        before = page.evaluate("getComputedStyle(document.getElementById('viewer-image')).filter")
        page.click("button[data-preset=lung]")
        lung = page.evaluate("getComputedStyle(document.getElementById('viewer-image')).filter")
        assert lung != before and "contrast(1.7)" in lung and "brightness(1.25)" in lung
        assert page.get_attribute("button[data-preset=lung]", "aria-pressed") == "true"
        page.click("button[data-preset=bone]")
        assert "contrast(2.2)" in page.evaluate("getComputedStyle(document.getElementById('viewer-image')).filter")
        page.screenshot(path=str(artifacts / f"ui16-03-viewer-bone-{name}.png"))

        transform = page.evaluate("document.getElementById('viewer-stage').style.transform")
        page.focus("#viewer")
        page.keyboard.press("ArrowLeft")
        moved = page.evaluate("document.getElementById('viewer-stage').style.transform")
        assert moved != transform
        x_before = float(re.search(r"translate\(([-\d.]+)px", transform).group(1))
        x_after = float(re.search(r"translate\(([-\d.]+)px", moved).group(1))
        assert x_after == pytest.approx(x_before + 40, abs=0.5)


def test_two_fingers_pinch_zoom_and_one_finger_drags_on_a_touch_screen(ui_portal, new_page, artifacts):
    """Real touch input (Chromium's CDP touch events with touch emulation, as a phone sends them):
    spreading two fingers zooms in about their middle, one finger pans."""
    page = new_page(ui_portal.url)
    log_in(page, "dr-ui16", PASSWORD)
    page.goto("/review/")
    study_id = _row_ids(page)[0]
    page.set_viewport_size(VIEWPORTS["phone"])
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    page.goto(f"/review/{study_id}/")
    page.wait_for_function("() => document.getElementById('viewer').dataset.fitted === '1'")
    box = page.locator("#viewer").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def touch(kind: str, points: list[tuple[float, float]]) -> None:
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": kind, "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]},
        )

    scale = float(page.get_attribute("#viewer", "data-scale"))
    touch("touchStart", [(cx - 20, cy), (cx + 20, cy)])
    for spread in (40, 60, 80):
        touch("touchMove", [(cx - spread, cy), (cx + spread, cy)])
    touch("touchEnd", [])
    zoomed = float(page.get_attribute("#viewer", "data-scale"))
    assert zoomed == pytest.approx(scale * 4, rel=0.05)  # fingers 40 px apart -> 160 px apart

    transform = page.evaluate("document.getElementById('viewer-stage').style.transform")
    touch("touchStart", [(cx, cy)])
    touch("touchMove", [(cx + 30, cy + 10)])
    touch("touchEnd", [])
    moved = page.evaluate("document.getElementById('viewer-stage').style.transform")
    x0, y0 = (float(v) for v in re.search(r"translate\(([-\d.]+)px, ([-\d.]+)px", transform).groups())
    x1, y1 = (float(v) for v in re.search(r"translate\(([-\d.]+)px, ([-\d.]+)px", moved).groups())
    assert (x1 - x0, y1 - y0) == (pytest.approx(30, abs=1), pytest.approx(10, abs=1))
    assert float(page.get_attribute("#viewer", "data-scale")) == pytest.approx(zoomed)
    page.screenshot(path=str(artifacts / "ui16-02b-viewer-pinch-phone.png"))


def test_save_and_next_opens_the_next_study_in_worklist_order(ui_portal, new_page, artifacts):
    page = new_page(ui_portal.url)
    log_in(page, "dr-ui16", PASSWORD)
    for name, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        page.goto("/review/")
        order = _row_ids(page)
        current, expected = order[-2], order[-1]  # the sure NORMAL ones at the bottom: the flag test keeps its rows
        page.goto(f"/review/{current}/")
        page.locator("#viewer").click()
        page.keyboard.press("c")  # confirm the model's label
        page.screenshot(path=str(artifacts / f"ui16-04-save-next-before-{name}.png"), full_page=True)
        page.click("#save-next")
        page.wait_for_url(REVIEW_URL)
        assert REVIEW_URL.search(page.url).group(1) == expected
        assert "Review saved" in page.inner_text("main") and "You hold this study" in page.inner_text("main")
        page.screenshot(path=str(artifacts / f"ui16-05-save-next-after-{name}.png"), full_page=True)
        page.goto("/review/")
        assert current not in _row_ids(page)  # reviewed
        page.click(f"#worklist tr[data-study-id='{expected}'] a[data-focus=open]")
        page.click("text=Release it")
        # The dashboard draws the agreement over time and the shaded confusion grid from these reviews.
        page.goto("/review/dashboard/")
        assert page.locator("#agreement-chart circle").count() >= 1
        assert page.locator(".confusion-grid td.diagonal").count() >= 1
        page.screenshot(path=str(artifacts / f"ui16-09-dashboard-{name}.png"), full_page=True)


def test_admin_lands_on_console_and_compares_two_different_versions(ui_portal, new_page, artifacts):
    page = new_page(ui_portal.url)
    log_in(page, "ops-ui16", PASSWORD)
    assert page.url.rstrip("/").endswith("/modelops"), page.url
    for name, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        page.goto("/modelops/")
        ids = page.eval_on_selector_all("#versions input[name=a]", "rs => rs.map(r => r.value)")
        assert len(ids) == 2
        page.check(f"#compare-a-{ids[0]}")
        page.check(f"#compare-b-{ids[0]}")
        assert page.is_disabled("#compare") and "same version" in page.inner_text("#compare-hint")
        disabled_bg = page.evaluate("getComputedStyle(document.getElementById('compare')).backgroundColor")
        page.screenshot(path=str(artifacts / f"ui16-06-console-compare-disabled-{name}.png"), full_page=True)
        page.check(f"#compare-b-{ids[1]}")
        assert not page.is_disabled("#compare")
        assert page.evaluate("getComputedStyle(document.getElementById('compare')).backgroundColor") != disabled_bg
        page.click("#compare")
        page.wait_for_selector("#metrics", timeout=120_000)
        header = page.inner_text("#metrics thead")
        assert "difference" in header
        rows = page.locator("#metrics tbody tr")
        assert rows.count() >= 5 and page.locator("#metrics tbody td.diff").count() == rows.count()
        assert re.search(r"[+-]?\d", page.inner_text("#metrics tbody tr:first-child td.diff"))
        assert page.locator("#gates .badge").count() == page.locator("#gates tbody tr").count() > 0
        gates = page.inner_text("#gates")
        assert "{" not in gates and "True" not in gates and "False" not in gates
        assert re.search(r"(pass|fail)", gates)
        assert page.locator("#confusions table").count() == 2
        # The better value is highlighted and said in words; the ROC legend carries each AUC.
        better = page.locator("#metrics td.better")
        assert better.count() >= 1 and "✓ better" in better.first.inner_text()
        plain = page.locator("#metrics tbody td.num:not(.better):not(.diff)").first
        background = "(el) => getComputedStyle(el).backgroundColor"
        assert better.first.evaluate(background) != plain.evaluate(background)
        legend = page.eval_on_selector_all("#roc-chart text", "ts => ts.map(t => t.textContent)")
        assert sum(bool(re.search(r"\(AUC \d\.\d{3}\)", t)) for t in legend) >= 2, legend
        if name == "desktop":  # the two confusion matrices side by side
            first, second = (page.locator("#confusions table").nth(i).bounding_box() for i in (0, 1))
            assert abs(first["y"] - second["y"]) <= 1 and second["x"] >= first["x"] + first["width"]
        page.screenshot(path=str(artifacts / f"ui16-07-compare-{name}.png"), full_page=True)
