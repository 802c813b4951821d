"""/api/v1/studies for apps: cheap polling with ETag / If-None-Match, list filters and
pagination, and the upload rate limits."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.studies.models import Study, StudyStatus
from apps.studies.services import transition_study
from ml_core.testing import make_xray_like_png


def _image(i: int) -> SimpleUploadedFile:
    return SimpleUploadedFile("x.png", make_xray_like_png(size=96, seed=100 + i))


def test_study_detail_etag_makes_polling_cheap(api_as, predicted_study):
    api = api_as(predicted_study.owner)
    url = f"/api/v1/studies/{predicted_study.pk}"
    first = api.get(url)
    etag = first["ETag"]
    assert first.status_code == 200 and etag.startswith('"') and etag.endswith('"')
    unchanged = api.get(url, HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged["ETag"] == etag
    assert api.get(url, HTTP_IF_NONE_MATCH=f'"other", {etag}').status_code == 304  # a list of tags
    assert api.get(url, HTTP_IF_NONE_MATCH='"stale"').status_code == 200

    transition_study(predicted_study, StudyStatus.EXPLAINING)  # the study moves on: the tag changes
    moved = api.get(url, HTTP_IF_NONE_MATCH=etag)
    assert moved.status_code == 200 and moved["ETag"] != etag and moved.json()["status"] == "explaining"


def test_a_304_still_needs_the_right_to_see_the_study(api_as, predicted_study, other_patient):
    etag = api_as(predicted_study.owner).get(f"/api/v1/studies/{predicted_study.pk}")["ETag"]
    stranger = api_as(other_patient).get(f"/api/v1/studies/{predicted_study.pk}", HTTP_IF_NONE_MATCH=etag)
    assert stranger.status_code == 404


def test_list_filters_by_status_and_date_and_paginates(api_as, consenting_patient, django_capture_on_commit_callbacks):
    from apps.studies.services import create_study

    with django_capture_on_commit_callbacks(execute=False):
        studies = [
            create_study(owner=consenting_patient, data=make_xray_like_png(size=96, seed=100 + i)) for i in range(3)
        ]
    Study.objects.filter(pk=studies[0].pk).update(status=StudyStatus.FAILED, created_at="2026-01-05T10:00:00Z")
    api = api_as(consenting_patient)
    failed = api.get("/api/v1/studies", {"status": "failed"}).json()
    assert failed["count"] == 1 and failed["results"][0]["id"] == str(studies[0].pk)
    recent = api.get("/api/v1/studies", {"created_after": "2026-02-01"}).json()
    assert {r["id"] for r in recent["results"]} == {str(s.pk) for s in studies[1:]}
    early = api.get("/api/v1/studies", {"created_before": "2026-02-01"}).json()
    assert [r["id"] for r in early["results"]] == [str(studies[0].pk)]
    paged = api.get("/api/v1/studies", {"page_size": 2}).json()
    assert paged["count"] == 3 and len(paged["results"]) == 2 and paged["next"]
    bad = api.get("/api/v1/studies", {"status": "bogus"})
    assert bad.status_code == 400 and "status" in bad.json()["error"]["details"]["fields"]


def test_uploads_are_rate_limited_per_account(api_as, consenting_patient, settings, monkeypatch):
    monkeypatch.setattr("apps.studies.services.enqueue_inference", lambda study_id: None)
    settings.DEEPMED_THROTTLE_RATES = {**settings.DEEPMED_THROTTLE_RATES, "upload_account": "2/hour"}
    api = api_as(consenting_patient)
    codes = [api.post("/api/v1/studies", {"image": _image(i)}, format="multipart").status_code for i in range(3)]
    assert codes == [201, 201, 429]
    assert Study.objects.count() == 2
    assert api.get("/api/v1/studies").status_code == 200  # reading is not limited by the upload quota


def test_uploads_are_rate_limited_per_address(api_as, consenting_patient, other_patient, settings, monkeypatch):
    from apps.accounts.services import accept_disclaimer

    accept_disclaimer(other_patient)
    monkeypatch.setattr("apps.studies.services.enqueue_inference", lambda study_id: None)
    settings.DEEPMED_THROTTLE_RATES = {**settings.DEEPMED_THROTTLE_RATES, "upload_ip": "2/hour"}
    codes = []
    for i, user in enumerate([consenting_patient, other_patient, other_patient]):
        api = api_as(user)
        codes.append(
            api.post("/api/v1/studies", {"image": _image(i)}, format="multipart", REMOTE_ADDR="10.2.2.2").status_code
        )
    assert codes == [201, 201, 429]
