"""Patient data in the Django admin: read-only, and every page of it audited (issue 17 s.3)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

from apps.audit.models import AuditEvent, Outcome
from apps.explanations.models import Explanation
from apps.review.models import LabeledSample, Review, ReviewClaim
from apps.studies.models import Prediction, Study

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_web(client, admin_user):
    client.force_login(admin_user)
    return client


def _patient_data_models():
    from apps.accounts.models import Consent, ResearchConsent
    from apps.explanations.models import ExplanationEdit

    return [
        Study,
        Prediction,
        Explanation,
        Review,
        LabeledSample,
        ReviewClaim,
        ExplanationEdit,
        Consent,
        ResearchConsent,
    ]


def test_every_patient_data_admin_is_read_only(admin_user):
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    for model in _patient_data_models():
        model_admin = admin.site._registry[model]
        assert model_admin.has_view_permission(request), model
        assert not model_admin.has_add_permission(request), model
        assert not model_admin.has_change_permission(request), model
        assert not model_admin.has_delete_permission(request), model


def test_the_study_change_form_is_audited_and_a_post_changes_nothing(admin_web, admin_user, queued_study):
    url = f"/admin/studies/study/{queued_study.pk}/change/"
    page = admin_web.get(url)
    assert page.status_code == 200
    assert f"/studies/{queued_study.pk}/image.png" in page.content.decode()  # the audited image view, no media URL
    viewed = AuditEvent.objects.get(action="admin.view", object_id=str(queued_study.pk))
    assert viewed.actor == admin_user and viewed.outcome == Outcome.ALLOWED
    assert viewed.object_type == "studies.study" and viewed.patient_username == "alice"

    response = admin_web.post(
        url, {"owner": admin_user.pk, "symptoms": "changed by admin", "patient_age": 99, "status": "failed"}
    )
    assert response.status_code == 403
    queued_study.refresh_from_db()
    assert (queued_study.symptoms, queued_study.patient_age, queued_study.status) == ("", None, "queued")
    assert queued_study.owner.username == "alice"
    refused = AuditEvent.objects.filter(action="admin.view", object_id=str(queued_study.pk)).latest("id")
    assert refused.outcome == Outcome.DENIED and refused.detail["method"] == "POST"


def test_add_and_delete_are_refused_and_audited(admin_web, queued_study):
    assert admin_web.get("/admin/studies/study/add/").status_code == 403
    delete = f"/admin/studies/study/{queued_study.pk}/delete/"
    assert admin_web.post(delete, {"post": "yes"}).status_code == 403
    assert Study.objects.filter(pk=queued_study.pk).exists()
    assert AuditEvent.objects.filter(
        action="admin.delete", object_id=str(queued_study.pk), outcome=Outcome.DENIED
    ).exists()
    assert AuditEvent.objects.filter(action="admin.add", object_type="studies.study", outcome=Outcome.DENIED).exists()


def test_a_list_page_records_the_ids_it_shows(admin_web, admin_user, queued_study, other_patient, xray_png):
    from apps.accounts.services import accept_disclaimer
    from apps.studies.services import create_study

    accept_disclaimer(other_patient)
    other = create_study(owner=other_patient, data=xray_png)
    assert admin_web.get("/admin/studies/study/").status_code == 200
    listed = AuditEvent.objects.get(action="admin.list", object_type="studies.study")
    assert listed.actor == admin_user and listed.outcome == Outcome.ALLOWED
    assert sorted(listed.detail["ids"]) == sorted([str(queued_study.pk), str(other.pk)])
    assert listed.detail["count"] == 2


@pytest.mark.parametrize(
    "path",
    [
        "/admin/studies/prediction/",
        "/admin/explanations/explanation/",
        "/admin/review/review/",
        "/admin/review/labeledsample/",
        "/admin/review/reviewclaim/",
        "/admin/explanations/explanationedit/",
        "/admin/accounts/consent/",
        "/admin/accounts/researchconsent/",
        "/admin/accounts/user/",
        "/admin/audit/auditevent/",
    ],
)
def test_every_admin_list_of_patient_data_is_audited(admin_web, explained_study, path):
    assert admin_web.get(path).status_code == 200
    app_label, model = path.strip("/").split("/")[1:3]
    assert AuditEvent.objects.filter(action="admin.list", object_type=f"{app_label}.{model}").exists()


def test_each_patient_data_object_page_renders_and_is_audited(admin_web, explained_study, physician):
    from apps.review.services import save_review

    review = save_review(explained_study.pk, physician=physician, decision="confirm")
    prediction, sample = explained_study.predictions.get(), LabeledSample.objects.get()
    consent = explained_study.owner.consents.get()
    for path, obj in [
        (f"/admin/studies/prediction/{prediction.pk}/change/", prediction),
        (f"/admin/explanations/explanation/{explained_study.explanation.pk}/change/", explained_study.explanation),
        (f"/admin/review/review/{review.pk}/change/", review),
        (f"/admin/review/labeledsample/{sample.pk}/change/", sample),
        (f"/admin/accounts/consent/{consent.pk}/change/", consent),
    ]:
        assert admin_web.get(path).status_code == 200, path
        event = AuditEvent.objects.get(action="admin.view", object_type=obj._meta.label_lower, object_id=str(obj.pk))
        assert event.patient_username == "alice"


def test_an_unknown_object_is_a_denied_view(admin_web):
    import uuid

    missing = uuid.uuid4()
    assert admin_web.get(f"/admin/studies/study/{missing}/change/").status_code == 302  # the admin's own answer
    assert AuditEvent.objects.get(action="admin.view", object_id=str(missing)).outcome == Outcome.DENIED
