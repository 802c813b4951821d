import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.explanations.models import Explanation
from apps.review.models import Review
from apps.review.services import claim_study, save_review
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def doctor(client, physician):
    client.force_login(physician)
    return client


@pytest.mark.parametrize("name", ["review-worklist", "review-worklist-rows", "review-dashboard"])
def test_patients_get_403_on_physician_pages(client, consenting_patient, name):
    client.force_login(consenting_patient)
    assert client.get(reverse(name)).status_code == 403


def test_patients_get_403_on_the_review_page(client, consenting_patient, pneumonia_study):
    client.force_login(consenting_patient)
    url = reverse("review-study", kwargs={"study_id": pneumonia_study.pk})
    assert client.get(url).status_code == 403
    assert client.post(url, {"decision": "confirm"}).status_code == 403
    assert not Review.objects.exists()


def test_worklist_page_lists_studies_with_claim_buttons(doctor, model_version, second_physician):
    covid = StudyFactory(predicted=True, probabilities={"COVID-19": 0.9, "NORMAL": 0.05, "PNEUMONIA": 0.05})
    normal = StudyFactory(predicted=True, probabilities={"COVID-19": 0.05, "NORMAL": 0.9, "PNEUMONIA": 0.05})
    claim_study(normal.pk, physician=second_physician)
    page = doctor.get(reverse("review-worklist")).content.decode()
    assert page.index(str(covid.pk)) < page.index(str(normal.pk))
    assert reverse("review-claim", kwargs={"study_id": covid.pk}) in page
    assert f"claimed by {second_physician.username}" in page
    assert "review-worklist.js" in page
    rows = doctor.get(reverse("review-worklist-rows"), {"label": "NORMAL"}).content.decode()
    assert str(normal.pk) in rows and str(covid.pk) not in rows


def test_claim_then_review_page_shows_everything_the_physician_needs(doctor, model_version, physician):
    study = StudyFactory(predicted=True, probabilities={"COVID-19": 0.1, "NORMAL": 0.2, "PNEUMONIA": 0.7})
    study.patient_age, study.symptoms = 67, "fever and cough for 5 days"
    study.save()
    Explanation.objects.create(
        study=study,
        text="Patchy shadows in the right lower zone.",
        engine="template",
        technical_summary="Grad-CAM peak right lower zone.",
    )
    response = doctor.post(reverse("review-claim", kwargs={"study_id": study.pk}))
    assert response.status_code == 302 and response["Location"] == reverse(
        "review-study", kwargs={"study_id": study.pk}
    )
    page = doctor.get(response["Location"]).content.decode()
    for expected in [
        reverse("study-image", kwargs={"study_id": study.pk}),
        "67",
        "fever and cough for 5 days",
        "Patchy shadows in the right lower zone.",
        "Grad-CAM peak right lower zone.",
        "0.700",
        "review-viewer.js",
        'id="review-form"',
        "You hold this study",
    ]:
        assert expected in page, expected
    assert study.owner.username not in page  # no identity beyond what the review needs
    assert AuditEvent.objects.filter(action="review.read", object_id=str(study.pk), actor=physician).exists()


def test_posting_the_form_saves_the_review(doctor, pneumonia_study, physician):
    url = reverse("review-study", kwargs={"study_id": pneumonia_study.pk})
    response = doctor.post(
        url, {"decision": "correct", "final_label": "NORMAL", "note": "No consolidation.", "fit_for_training": "on"}
    )
    assert response.status_code == 302
    review = Review.objects.get()
    assert (review.final_label, review.note, review.fit_for_training, review.physician) == (
        "NORMAL",
        "No consolidation.",
        True,
        physician,
    )
    refused = doctor.post(url, {"decision": "correct", "final_label": "PNEUMONIA_X"})
    assert refused.status_code == 400 and Review.objects.count() == 1


def test_another_physicians_review_is_read_only(client, pneumonia_study, physician, second_physician):
    save_review(pneumonia_study.pk, physician=physician, decision="confirm")
    client.force_login(second_physician)
    page = client.get(reverse("review-study", kwargs={"study_id": pneumonia_study.pk})).content.decode()
    assert 'id="review-form"' not in page and "only they can correct it" in page


def test_dashboard_shows_agreement_confusion_and_waiting_samples(doctor, physician, model_version):
    agreed = StudyFactory(predicted=True, probabilities={"COVID-19": 0.1, "NORMAL": 0.2, "PNEUMONIA": 0.7})
    corrected = StudyFactory(predicted=True, probabilities={"COVID-19": 0.1, "NORMAL": 0.2, "PNEUMONIA": 0.7})
    save_review(agreed.pk, physician=physician, decision="confirm")
    save_review(corrected.pk, physician=physician, decision="correct", final_label="NORMAL")
    page = doctor.get(reverse("review-dashboard")).content.decode()
    assert str(model_version) in page
    assert "50%" in page and "1 of 2 reviewed" in page
    assert '<strong class="waiting">2</strong>' in page


# --- identifying text visible (issue 17 s.2) --------------------------------------------------


def test_the_review_page_flags_identifying_text_and_excludes_the_sample(doctor, pneumonia_study, physician):
    from apps.modelops.selectors import training_samples

    save_review(pneumonia_study.pk, physician=physician, decision="confirm", fit_for_training=True)
    page_url = reverse("review-study", kwargs={"study_id": pneumonia_study.pk})
    flag_url = reverse("review-identifying-text", kwargs={"study_id": pneumonia_study.pk})
    page = doctor.get(page_url).content.decode()
    assert f'action="{flag_url}"' in page and "csrfmiddlewaretoken" in page
    response = doctor.post(flag_url, {"flagged": "on"})
    assert response.status_code == 302 and response["Location"] == page_url
    pneumonia_study.refresh_from_db()
    assert pneumonia_study.identifying_text == "physician"
    assert not training_samples().exists()
    assert AuditEvent.objects.filter(action="study.identifying_text", actor=physician).exists()
    assert "never used for training" in doctor.get(page_url).content.decode()
    doctor.post(flag_url, {})  # the same form's other button clears it
    pneumonia_study.refresh_from_db()
    assert pneumonia_study.identifying_text == ""


def test_only_clinical_staff_may_flag_identifying_text(client, consenting_patient, pneumonia_study):
    flag_url = reverse("review-identifying-text", kwargs={"study_id": pneumonia_study.pk})
    client.force_login(consenting_patient)
    assert client.post(flag_url, {"flagged": "on"}).status_code == 403
    client.logout()
    assert client.post(flag_url, {"flagged": "on"}).status_code == 302  # to the log-in page
    pneumonia_study.refresh_from_db()
    assert pneumonia_study.identifying_text == ""


def test_flagging_needs_a_post_with_csrf(physician, pneumonia_study):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(physician)
    flag_url = reverse("review-identifying-text", kwargs={"study_id": pneumonia_study.pk})
    assert strict.get(flag_url).status_code == 405
    assert strict.post(flag_url, {"flagged": "on"}).status_code == 403
    pneumonia_study.refresh_from_db()
    assert pneumonia_study.identifying_text == ""


def test_a_refused_claim_or_save_is_shown_on_the_page(doctor, pneumonia_study, second_physician):
    claim_study(pneumonia_study.pk, physician=second_physician)
    refused = doctor.post(reverse("review-claim", kwargs={"study_id": pneumonia_study.pk}), follow=True)
    assert refused.redirect_chain == [(reverse("review-worklist"), 302)]
    assert "Another physician is reviewing this study." in refused.content.decode()
    url = reverse("review-study", kwargs={"study_id": pneumonia_study.pk})
    conflict = doctor.post(url, {"decision": "confirm"})
    assert conflict.status_code == 409  # the page again, answered with the refusal's own status
    assert not Review.objects.exists()
