"""Deleting a study or a whole account: files gone from storage, audited, and the training
queue rule (excluded unless physician-labelled AND research consent was given)."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.accounts.models import User
from apps.accounts.services import decide_research_use, delete_account
from apps.audit.models import AuditEvent
from apps.review.models import LabeledSample, Review, SampleSource
from apps.studies.models import Prediction, Study
from apps.studies.services import delete_study


def _sample(study, *, source=SampleSource.PHYSICIAN_REVIEW, own_copy=True) -> LabeledSample:
    review = Review.objects.filter(study=study).first()
    name = default_storage.save(f"samples/{study.pk}.png", ContentFile(b"png")) if own_copy else study.image.name
    return LabeledSample.objects.create(
        image=name, sha256=study.sha256, label="NORMAL", source=source, study=study, review=review
    )


def _delete(study, django_capture_on_commit_callbacks, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        delete_study(study, actor=study.owner, ip_address="10.1.2.3", **kwargs)


def test_delete_removes_image_heatmap_and_derived_files_and_is_audited(
    predicted_study, stored_files, django_capture_on_commit_callbacks
):
    prediction = Prediction.objects.get(study=predicted_study)
    derived = default_storage.save(f"studies/{predicted_study.pk}/crops/lung-left.png", ContentFile(b"x"))
    other = default_storage.save("studies/someone-else/image-1.png", ContentFile(b"y"))
    names = {predicted_study.image.name, predicted_study.thumbnail.name, prediction.heatmap.name, derived}
    assert all(default_storage.exists(n) for n in names)

    _delete(predicted_study, django_capture_on_commit_callbacks)

    assert not Study.objects.filter(pk=predicted_study.pk).exists()
    assert not Prediction.objects.exists()
    assert not any(default_storage.exists(n) for n in names)
    assert [p.name for p in stored_files()] == [other.rsplit("/", 1)[1]]  # only the unrelated file stays
    event = AuditEvent.objects.get(action="study.delete", object_id=str(predicted_study.pk))
    assert event.actor_username == "alice" and event.ip_address == "10.1.2.3"
    assert event.detail["reason"] == "patient_request"


def test_delete_leaves_no_empty_study_folder_in_local_storage(
    predicted_study, _isolated_media, django_capture_on_commit_callbacks
):
    default_storage.save(f"studies/{predicted_study.pk}/crops/lung-left.png", ContentFile(b"x"))
    other = default_storage.save("studies/someone-else/image-1.png", ContentFile(b"y"))
    folder = _isolated_media / "studies" / str(predicted_study.pk)
    assert folder.is_dir()

    _delete(predicted_study, django_capture_on_commit_callbacks)

    assert not folder.exists()  # nor its empty sub-folder
    assert default_storage.exists(other) and (_isolated_media / "studies").is_dir()  # only its own folder goes


def test_a_folder_still_holding_a_kept_file_stays(reviewed_study, _isolated_media, django_capture_on_commit_callbacks):
    decide_research_use(reviewed_study.owner, granted=True)
    sample = _sample(reviewed_study, own_copy=False)  # the kept training sample is the study's own image file
    _delete(reviewed_study, django_capture_on_commit_callbacks)
    assert default_storage.exists(sample.image.name)
    assert (_isolated_media / sample.image.name).parent.is_dir()


def test_folder_removal_is_a_no_op_on_azure_blob_storage(predicted_study):
    """Azure Blob has no folders (a prefix is gone with its last blob) and no local path: nothing
    to remove, and nothing is contacted (this storage points nowhere)."""
    from storages.backends.azure_storage import AzureStorage

    from apps.studies.services import remove_empty_study_folder

    azure = AzureStorage(
        account_name="devstoreaccount1", account_key="a2V5", azure_container="deepmed", custom_domain="127.0.0.1:9"
    )
    assert remove_empty_study_folder(azure, predicted_study.pk) is False


def test_files_stay_when_the_database_delete_rolls_back(
    predicted_study, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("apps.studies.services.record_event", broken)
    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True):
        delete_study(predicted_study, actor=predicted_study.owner)
    assert Study.objects.filter(pk=predicted_study.pk).exists()
    assert default_storage.exists(predicted_study.image.name)


@pytest.mark.parametrize(
    "research,source,kept",
    [
        (False, SampleSource.PHYSICIAN_REVIEW, False),  # labelled, no research consent -> excluded
        (True, SampleSource.PHYSICIAN_REVIEW, True),  # labelled + consent -> kept for training
        (True, SampleSource.DATASET_IMPORT, False),  # consent but not physician-labelled -> excluded
    ],
)
def test_training_sample_rule(reviewed_study, django_capture_on_commit_callbacks, research, source, kept):
    if research:
        decide_research_use(reviewed_study.owner, granted=True)
    sample = _sample(reviewed_study, source=source)
    sample_file = sample.image.name
    _delete(reviewed_study, django_capture_on_commit_callbacks)
    sample.refresh_from_db()
    assert sample.study_id is None
    assert sample.excluded is (not kept)
    assert default_storage.exists(sample_file) is kept
    assert (sample.image.name == sample_file) if kept else (sample.image.name == "")


def test_withdrawn_research_consent_excludes(reviewed_study, django_capture_on_commit_callbacks):
    decide_research_use(reviewed_study.owner, granted=True)
    decide_research_use(reviewed_study.owner, granted=False)
    sample = _sample(reviewed_study)
    _delete(reviewed_study, django_capture_on_commit_callbacks)
    sample.refresh_from_db()
    assert sample.excluded


def test_kept_sample_pointing_at_the_study_image_keeps_that_file_only(
    reviewed_study, django_capture_on_commit_callbacks
):
    decide_research_use(reviewed_study.owner, granted=True)
    heatmap = Prediction.objects.get(study=reviewed_study).heatmap.name
    sample = _sample(reviewed_study, own_copy=False)
    _delete(reviewed_study, django_capture_on_commit_callbacks)
    sample.refresh_from_db()
    assert not sample.excluded and default_storage.exists(sample.image.name)
    assert not default_storage.exists(heatmap)


def test_delete_account_removes_everything_and_is_audited(
    consenting_patient, other_patient, predict, xray_png, stored_files, django_capture_on_commit_callbacks
):
    from apps.accounts.services import accept_disclaimer
    from apps.studies.services import create_study
    from ml_core.testing import make_xray_like_png

    accept_disclaimer(other_patient)
    with django_capture_on_commit_callbacks(execute=False):
        mine = [create_study(owner=consenting_patient, data=make_xray_like_png(128, seed=s)) for s in (1, 2)]
        theirs = create_study(owner=other_patient, data=xray_png)
    predict(mine[0])
    sample = _sample(mine[0], source=SampleSource.PHYSICIAN_REVIEW)

    with django_capture_on_commit_callbacks(execute=True):
        delete_account(consenting_patient, ip_address="10.9.9.9")

    assert not User.objects.filter(username="alice").exists()
    assert list(Study.objects.all()) == [theirs]
    assert sorted(p.name for p in stored_files()) == sorted(
        f.name.rsplit("/", 1)[1] for f in (theirs.image, theirs.thumbnail)
    )
    sample.refresh_from_db()
    assert sample.excluded  # no research consent was given
    events = AuditEvent.objects.filter(actor_username="alice")
    assert events.filter(action="account.delete", outcome="allowed").count() == 1
    assert events.filter(action="study.delete", detail__reason="account_deleted").count() == 2


def test_web_delete_is_owner_only(
    client, predicted_study, other_patient, physician, django_capture_on_commit_callbacks
):
    url = f"/studies/{predicted_study.pk}/delete/"
    for intruder in (other_patient, physician):
        client.force_login(intruder)
        assert client.post(url).status_code == 404
    assert Study.objects.filter(pk=predicted_study.pk).exists()
    denied = AuditEvent.objects.filter(
        action="study.delete_request", object_id=str(predicted_study.pk), outcome="denied"
    )
    assert denied.count() == 2
    client.force_login(predicted_study.owner)
    assert client.get(url).status_code == 405  # deleting needs a POST (CSRF-protected form)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == "/studies/"
    assert not Study.objects.exists() and not default_storage.exists(predicted_study.image.name)
    assert b"deleted" in response.content


def test_web_account_deletion_needs_password_and_confirmation(
    client, predicted_study, django_capture_on_commit_callbacks
):
    owner = predicted_study.owner
    client.force_login(owner)
    assert client.post("/accounts/me/delete/", {"password": "wrong-password", "confirm": "on"}).status_code == 400
    assert client.post("/accounts/me/delete/", {"password": "a-long-test-password"}).status_code == 400
    assert User.objects.filter(pk=owner.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/me/delete/", {"password": "a-long-test-password", "confirm": "on"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert not User.objects.filter(pk=owner.pk).exists() and not Study.objects.exists()
    assert client.get("/studies/").status_code == 302  # logged out


def test_a_study_deleted_during_inference_leaves_no_heatmap(
    queued_study, champion, stored_files, prediction_result, django_capture_on_commit_callbacks
):
    from apps.studies.services import record_prediction, start_prediction

    claimed = start_prediction(queued_study.pk)
    _delete(queued_study, django_capture_on_commit_callbacks)  # the patient deletes while the model runs
    assert record_prediction(claimed, model_version=champion, result=prediction_result()) is None
    assert not Prediction.objects.exists() and stored_files() == []
