"""The physician's web form for editing a patient explanation (review page)."""

from __future__ import annotations

from apps.audit.models import AuditEvent
from apps.explanations.models import ExplanationEdit


def test_the_review_page_offers_the_edit_form_to_physicians(client, template_explained_study, physician):
    client.force_login(physician)
    page = client.get(f"/review/{template_explained_study.pk}/").content.decode()
    assert 'id="explanation-edit"' in page and f"/review/{template_explained_study.pk}/explanation/" in page


def test_a_physician_edits_and_the_patient_sees_it(client, template_explained_study, physician):
    client.force_login(physician)
    text = "The image shows patchy shadows low in the right lung, which can fit an infection."
    response = client.post(f"/review/{template_explained_study.pk}/explanation/", {"text": text})
    assert response.status_code == 302 and response["Location"] == f"/review/{template_explained_study.pk}/"
    template_explained_study.explanation.refresh_from_db()
    assert template_explained_study.explanation.engine == "physician"
    assert template_explained_study.explanation.text.startswith(text)
    edit = ExplanationEdit.objects.get()
    assert edit.editor == physician and edit.original_engine == "template"
    assert AuditEvent.objects.filter(action="explanation.edit", actor=physician).exists()
    client.force_login(template_explained_study.owner)
    assert text in client.get(f"/studies/{template_explained_study.pk}/").content.decode()


def test_an_empty_edit_is_refused_and_changes_nothing(client, template_explained_study, physician):
    client.force_login(physician)
    before = template_explained_study.explanation.text
    response = client.post(f"/review/{template_explained_study.pk}/explanation/", {"text": "   "}, follow=True)
    assert "empty" in response.content.decode()
    template_explained_study.explanation.refresh_from_db()
    assert template_explained_study.explanation.text == before and not ExplanationEdit.objects.exists()


def test_patients_cannot_edit(client, template_explained_study):
    client.force_login(template_explained_study.owner)
    assert (
        client.post(f"/review/{template_explained_study.pk}/explanation/", {"text": "Nothing to see."}).status_code
        == 403
    )
    assert not ExplanationEdit.objects.exists()
