"""E-mails to patients about their studies.

Only one today: "a physician has reviewed your study", sent once the review is committed. For
privacy it says nothing medical (no finding, no note, no date of the image, no study id): the
patient logs in to read the review. Sent through Django's e-mail backend (settings: EMAIL_URL,
DEFAULT_FROM_EMAIL); a failure to send is logged and audited, never raised into the review.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from apps.audit.models import Outcome
from apps.audit.services import record_event

logger = logging.getLogger(__name__)

REVIEWED_SUBJECT = "Your DeepMed study has been reviewed"
UPDATED_SUBJECT = "A physician updated the review of your DeepMed study"


def review_email(*, username: str, corrected: bool) -> tuple[str, str]:
    """(subject, body) of the notice: no medical detail, only "log in to see it"."""
    what = "updated their review of one of your studies" if corrected else "reviewed one of your studies"
    where = f"{settings.DEEPMED_SITE_URL}{reverse('study-list')}" if settings.DEEPMED_SITE_URL else "DeepMed"
    body = (
        f"Hello {username},\n\n"
        f"A physician has {what} on DeepMed.\n\n"
        f"Please log in to see it: {where}\n\n"
        "For your privacy this e-mail contains no medical information.\n"
        "If you did not expect this message, you can ignore it.\n\n"
        "DeepMed\n"
    )
    return (UPDATED_SUBJECT if corrected else REVIEWED_SUBJECT), body


def send_review_notice(review) -> bool:
    """E-mail the study's owner that `review` was saved (if they gave an address). True if sent."""
    study = review.study
    owner = study.owner
    if not owner.email or not owner.is_active:
        return False
    subject, body = review_email(username=owner.get_username(), corrected=review.version > 1)
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [owner.email])
    except Exception as exc:  # SMTP down or refused: the review stands, the notice is lost (logged)
        logger.warning("could not e-mail the review notice of study %s: %s", study.pk, exc)
        record_event(
            actor=None,
            action="study.review_notice",
            obj=study,
            outcome=Outcome.ERROR,
            detail={"review_version": review.version, "error": type(exc).__name__},
        )
        return False
    record_event(actor=None, action="study.review_notice", obj=study, detail={"review_version": review.version})
    return True


def review_saved(sender, instance, created: bool, **kwargs) -> None:
    """post_save of apps.review's Review: notify the patient once the review is committed."""
    if created:
        transaction.on_commit(lambda: send_review_notice(instance))
