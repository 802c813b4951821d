"""The patient's e-mail when a physician has reviewed their study: sent after the review commits,
through Django's e-mail backend (locmem here), with nothing medical in it."""

from __future__ import annotations

import pytest
from django.core import mail

from apps.audit.models import AuditEvent
from apps.review.services import save_review

pytestmark = pytest.mark.django_db

PATIENT_NOTE = "Small pneumonia in the right lower lobe; antibiotics advised."
INTERNAL_NOTE = "RLL consolidation, query aspiration."


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "DeepMed <no-reply@deepmed.test>"
    settings.DEEPMED_SITE_URL = "https://deepmed.example.org"


def _review(study, physician, capture, **kwargs):
    with capture(execute=True) as callbacks:
        review = save_review(
            study.pk,
            physician=physician,
            decision=kwargs.pop("decision", "correct"),
            final_label=kwargs.pop("final_label", "NORMAL"),
            note=PATIENT_NOTE,
            internal_note=INTERNAL_NOTE,
            **kwargs,
        )
    return review, callbacks


def test_a_review_e_mails_the_patient_after_commit_without_medical_details(
    explained_study, physician, django_capture_on_commit_callbacks
):
    owner = explained_study.owner
    owner.email = "alice@example.org"
    owner.save()
    with django_capture_on_commit_callbacks(execute=False):
        save_review(explained_study.pk, physician=physician, decision="correct", final_label="NORMAL", note="x")
    assert mail.outbox == []  # nothing before the transaction commits

    explained_study.reviews.all().delete()
    _review(explained_study, physician, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.org"]
    assert message.from_email == "DeepMed <no-reply@deepmed.test>"
    assert message.subject == "Your DeepMed study has been reviewed"
    assert "log in to see it" in message.body.lower()
    assert "https://deepmed.example.org/studies/" in message.body
    text = (message.subject + message.body).lower()
    for medical in ("normal", "pneumonia", "covid", "lobe", "antibiotic", "consolidation", str(explained_study.pk)):
        assert medical not in text, medical
    notice = AuditEvent.objects.get(action="study.review_notice")
    assert notice.outcome == "allowed" and notice.patient_id == owner.pk


def test_a_correction_e_mails_again_and_no_address_means_no_e_mail(
    explained_study, physician, django_capture_on_commit_callbacks
):
    _review(explained_study, physician, django_capture_on_commit_callbacks)
    assert mail.outbox == []  # the patient gave no address at sign-up

    owner = explained_study.owner
    owner.email = "alice@example.org"
    owner.save()
    _review(explained_study, physician, django_capture_on_commit_callbacks, final_label="COVID-19")
    assert [m.subject for m in mail.outbox] == ["A physician updated the review of your DeepMed study"]


def test_a_failing_mail_server_does_not_undo_the_review(
    explained_study, physician, django_capture_on_commit_callbacks, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    owner = explained_study.owner
    owner.email = "alice@example.org"
    owner.save()
    review, _ = _review(explained_study, physician, django_capture_on_commit_callbacks)
    explained_study.refresh_from_db()
    assert explained_study.status == "reviewed" and review.pk
    assert AuditEvent.objects.get(action="study.review_notice").outcome == "error"


def test_embedded_mode_prints_e_mails_to_the_console_by_default():
    from django.conf import settings

    if not settings.EMBEDDED_MODE:
        pytest.skip("embedded mode only")
    import subprocess
    import sys

    code = "import django; django.setup(); from django.conf import settings as s; print(s.EMAIL_BACKEND)"
    env = {"DJANGO_SETTINGS_MODULE": "deepmed_web.settings", "DEEPMED_DATA_DIR": str(settings.DATA_DIR)}
    import os

    env = {**{k: v for k, v in os.environ.items() if k not in ("EMAIL_URL", "REDIS_URL")}, **env}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("console.EmailBackend"), out.stderr
    env["EMAIL_URL"] = "smtp+tls://user:secret@mail.example.org:587"
    code = code.replace("print(s.EMAIL_BACKEND)", "print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_USE_TLS)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("smtp.EmailBackend mail.example.org 587 True"), out.stderr
