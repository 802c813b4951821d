"""/api/v1/studies/<id>/explanation."""


def url(study):
    return f"/api/v1/studies/{study.pk}/explanation"


def test_owner_sees_text_and_engine_but_not_the_internals(client, template_explained_study):
    client.force_login(template_explained_study.owner)
    body = client.get(url(template_explained_study)).json()
    assert body["engine"] == "template" and "template" in body["engine_display"]
    assert body["text"] == template_explained_study.explanation.text
    assert "technical_summary" not in body and "validation" not in body


def test_physician_sees_provenance(client, template_explained_study, physician):
    client.force_login(physician)
    body = client.get(url(template_explained_study)).json()
    assert body["technical_summary"].startswith("cxr-tiny")
    assert body["validation"]["outcome"] == "template_no_engine"
    assert body["prompt_hash"] == template_explained_study.explanation.prompt_hash


def test_other_patients_get_404_and_it_is_audited(client, template_explained_study, other_patient):
    from apps.audit.models import AuditEvent

    client.force_login(other_patient)
    response = client.get(url(template_explained_study))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert AuditEvent.objects.filter(action="study.explanation", outcome="denied").exists()


def test_not_ready_yet_has_its_own_code(client, sample_facts_study):
    client.force_login(sample_facts_study.owner)
    response = client.get(url(sample_facts_study))
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "explanation_not_ready",
        "message": "The explanation is not ready yet.",
        "details": {"status": "predicted"},
    }


def test_physician_edits_through_the_api(client, template_explained_study, physician):
    client.force_login(physician)
    response = client.put(
        url(template_explained_study), {"text": "Signs that can fit pneumonia."}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["engine"] == "physician" and response.json()["edits"] == 1


def test_patient_cannot_edit_and_empty_text_is_invalid(client, template_explained_study, physician):
    client.force_login(template_explained_study.owner)
    assert client.put(url(template_explained_study), {"text": "x"}, content_type="application/json").status_code == 403
    client.force_login(physician)
    response = client.put(url(template_explained_study), {"text": ""}, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


def test_editing_a_study_without_explanation_is_404_no_explanation(client, sample_facts_study, physician):
    client.force_login(physician)
    response = client.put(url(sample_facts_study), {"text": "Clear lungs."}, content_type="application/json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "no_explanation"


def test_an_edit_too_long_with_the_disclaimer_is_400_text_too_long(client, template_explained_study, physician):
    from apps.explanations.services import MAX_EDIT_CHARS

    client.force_login(physician)
    # Within the field's limit, but over it once the disclaimer is appended.
    response = client.put(
        url(template_explained_study), {"text": "a" * MAX_EDIT_CHARS}, content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "text_too_long"
