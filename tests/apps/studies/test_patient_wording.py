"""What the patient reads: the status in plain words (page, history, live payload, API), the
physician's answer first once reviewed, one rounded percentage everywhere, no internal terms."""

from __future__ import annotations

import html
import re

import pytest

from apps.explanations.models import Explanation

STATUS_BADGE = re.compile(r'id="study-status"[^>]*>([^<]*)</span>')
STEP = re.compile(r'<li data-step="(\w+)" class="step step-(\w+)"[^>]*>(.*?)</li>', flags=re.S)
JARGON = ("calibrated", "engine", "litgpt", "language model", "cxr-test")


def _page(client, study, path: str = "") -> str:
    client.force_login(study.owner)
    response = client.get(f"/studies/{study.pk}/{path}")
    assert response.status_code == 200
    return response.content.decode()


def _steps(html_text: str) -> dict[str, str]:
    return {key: state for key, state, _ in STEP.findall(html_text)}


@pytest.fixture
def not_a_cxr_study(queued_study, predict):
    return predict(queued_study, ood=True)


@pytest.fixture
def template_explained(queued_study, predict, settings):
    """predict + the real explanation pipeline with the language model off (the template)."""
    from apps.explanations.services import generate_explanation

    settings.DEEPMED_LLM_ENABLED = False

    def make(probabilities=None):
        study = predict(queued_study, probabilities)
        generate_explanation(study.pk)
        study.refresh_from_db()
        assert study.status == "explained"
        return study

    return make


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("queued_study", "Waiting to be analysed"),
        ("predicted_study", "Awaiting physician review"),
        ("explained_study", "Awaiting physician review"),
        ("reviewed_study", "Reviewed"),
        ("not_a_cxr_study", "Could not be analysed: this does not look like a chest X-ray"),
    ],
)
def test_one_status_wording_on_the_page_history_live_payload_and_api(client, api_as, request, fixture, words):
    study = request.getfixturevalue(fixture)
    page = _page(client, study)
    assert html.unescape(STATUS_BADGE.search(page).group(1)) == words
    history = client.get("/studies/").content.decode()
    row = re.search(rf'<tr data-study-id="{study.pk}"[^>]*>.*?class="status status-\w+"[^>]*>([^<]*)<', history, re.S)
    assert html.unescape(row.group(1)) == words
    live = client.get(f"/studies/{study.pk}/status.json").json()
    assert live["status_text"] == words and live["status"] == study.status  # the machine field is unchanged
    api = api_as(study.owner).get(f"/api/v1/studies/{study.pk}").json()
    assert api["status_text"] == words and api["status"] == study.status


@pytest.mark.parametrize("fixture", ["predicted_study", "explained_study"])
def test_never_done_while_the_review_is_pending(client, request, fixture):
    page = _page(client, request.getfixturevalue(fixture))
    assert "Done" not in page
    steps = _steps(page)
    assert steps["review"] in ("current", "todo")
    assert 'id="review-pending"' in page and "Awaiting physician review" in page
    assert "Reviewed by a physician" not in page


def test_the_review_step_is_done_once_reviewed(client, reviewed_study):
    assert _steps(_page(client, reviewed_study)) == {
        "queued": "done",
        "analysing": "done",
        "explaining": "done",
        "review": "done",
    }


def test_a_failed_analysis_marks_its_step_and_offers_the_next_step(client, not_a_cxr_study):
    page = _page(client, not_a_cxr_study)
    steps = {key: (state, text) for key, state, text in STEP.findall(page)}
    assert steps["analysing"][0] == "failed" and "failed" in steps["analysing"][1]
    assert [steps[k][0] for k in ("queued", "explaining", "review")] == ["done", "todo", "todo"]
    failure = re.search(r'id="study-failure".*?</div>', page, re.S).group(0)
    assert "Could not be analysed: this does not look like a chest X-ray" in failure
    assert re.search(r'<a href="/studies/upload/" id="upload-another">Upload another image</a>', failure)
    history = client.get("/studies/").content.decode()
    assert re.search(rf'<tr data-study-id="{not_a_cxr_study.pk}"[^>]*>.*?href="/studies/upload/"', history, re.S)


def test_a_staff_side_failure_reason_is_not_shown_to_the_patient(client, queued_study):
    from apps.studies.services import fail_study, start_prediction

    start_prediction(queued_study.pk)
    fail_study(queued_study, code="image_unreadable", reason="The stored image could not be read: OSError errno 5")
    shown = re.sub(r"<script.*?</script>", "", _page(client, queued_study), flags=re.S)  # what the page displays
    assert "Could not be analysed: the image could not be read" in shown and "OSError" not in shown


def test_the_reviewed_page_leads_with_the_physicians_answer(client, reviewed_study):
    page = _page(client, reviewed_study)
    lead = re.search(r'<h2 id="review-final" data-label="NORMAL">(.*?)</h2>', page, re.S)
    assert re.sub(r"<[^>]+>", "", lead.group(1)) == "Reviewed by a physician: normal chest X-ray"
    # The answer and the patient note come first; the model's preview follows, marked as replaced.
    assert page.index('id="review-final"') < page.index('id="review-note"') < page.index('id="result"')
    assert "No consolidation on my reading." in page
    assert 'class="result result-replaced"' in page and "Replaced by the physician's review" in page
    # Its explanation is collapsed: inside a closed <details>.
    details = re.search(r"<details([^>]*)>(.*?)</details>", page, re.S)
    assert 'id="explanation-details"' in details.group(1) and "open" not in details.group(1)
    assert "patchy shadows in the lower right lung" in details.group(2)
    # The heat-map belongs to the replaced preview: off until the patient turns it on.
    assert re.search(r'<input type="checkbox" id="heatmap-toggle" autocomplete="off">', page)


def test_a_not_assessable_review_says_so_and_offers_another_upload(client, explained_study, physician):
    from apps.review.services import save_review

    save_review(explained_study.pk, physician=physician, decision="not_assessable")
    page = _page(client, explained_study)
    lead = re.search(r'<h2 id="review-final"[^>]*>(.*?)</h2>', page, re.S).group(1)
    assert re.sub(r"<[^>]+>", "", lead) == "Reviewed by a physician: the image could not be assessed"
    assert 'id="upload-another"' in page


def test_before_review_the_preview_leads_with_the_heatmap_on(client, explained_study):
    page = _page(client, explained_study)
    assert page.index('id="review-pending"') < page.index('id="result"')
    assert 'id="result-replaced"' not in page and "<details" not in page
    assert re.search(r'<input type="checkbox" id="heatmap-toggle" autocomplete="off" checked>', page)
    assert 'id="heatmap-legend"' in page
    assert "Left and right are the patient's sides (as if facing you)" in page


def test_the_bars_the_numbers_and_the_explanation_show_the_same_percentage(client, template_explained):
    # 0.7996 is 80 when rounded to the nearest and 79 when rounded down: they must agree anyway.
    study = template_explained({"COVID-19": 0.0505, "NORMAL": 0.1495, "PNEUMONIA": 0.7996})
    page = _page(client, study)
    rows = re.findall(
        r'<tr data-class="([^"]+)">.*?<rect width="(\d+)".*?<td class="num">(\d+)%</td>', page, flags=re.S
    )
    assert [label for label, _, _ in rows] == ["PNEUMONIA", "NORMAL", "COVID-19"]
    assert all(width == number for _, width, number in rows), rows
    explanation = re.search(r'<div class="explanation-text">(.*?)</div>', page, re.S).group(1)
    stated = re.findall(r"(\d+)%", explanation)
    assert stated and set(stated) == {rows[0][2]}, (stated, rows)


def test_the_low_confidence_warning_uses_the_same_percentage(client, queued_study, predict, settings):
    settings.DEEPMED_LOW_CONFIDENCE = 0.6
    study = predict(queued_study, {"COVID-19": 0.3001, "NORMAL": 0.3599, "PNEUMONIA": 0.34})
    page = _page(client, study)
    warned = re.search(r'id="low-confidence".*?only (\d+)% probability', page, re.S).group(1)
    bar = re.search(r'<tr data-class="NORMAL">.*?<td class="num">(\d+)%</td>', page, re.S).group(1)
    assert warned == bar


def test_no_internal_terms_in_the_patients_wording(client, template_explained, physician):
    study = template_explained()
    stored = study.explanation.text
    assert "calibrated" in stored and "language model" in stored  # the stored template text has them
    page = _page(client, study).lower()
    for word in JARGON:
        assert word not in page, word
    assert "written by an automated assistant and checked for safety" in page
    # Generated text: the engine's name is not shown either.
    Explanation.objects.filter(study=study).update(engine="litgpt")
    page = _page(client, study).lower()
    assert not [word for word in JARGON if word in page]
    # The physician's review page keeps the technical terms.
    client.force_login(physician)
    review_page = client.get(f"/review/{study.pk}/").content.decode()
    assert "Engine" in review_page and "litgpt" in review_page and "calibrated" in review_page


def test_the_explanation_reads_in_short_paragraphs(client, template_explained):
    study = template_explained()
    page = _page(client, study)
    explanation = re.search(r'<div class="explanation-text">(.*?)</div>', page, re.S).group(1)
    paragraphs = re.findall(r"<p>(.*?)</p>", explanation, re.S)
    assert len(paragraphs) >= 3
    for paragraph in paragraphs:
        if not paragraph.rstrip().endswith("?"):  # a list of questions is kept together
            assert len(re.findall(r"[.!?](?=\s|$)", paragraph)) <= 2, paragraph
