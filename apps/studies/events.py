"""Study status events pushed to browsers and apps over Channels.

Groups: one per study (`study.<id>`) and one per owner (`user.<id>`); clinical staff
also follow `worklist`. Publishing never breaks the caller: a missing channel layer
(Redis restarting) is logged and clients fall back to polling.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.studies.selectors import patient_status

logger = logging.getLogger(__name__)

WORKLIST_GROUP = "worklist"


def study_group(study_id) -> str:
    return f"study.{study_id}"


def user_group(user_id) -> str:
    return f"user.{user_id}"


def study_status_payload(study) -> dict:
    return {
        "study_id": str(study.id),
        "status": study.status,
        "status_display": study.get_status_display(),
        "status_text": patient_status(study),  # the patient's wording ("Awaiting physician review")
        "failure_code": study.failure_code,
        "failure_reason": study.failure_reason,
        "updated_at": study.updated_at.isoformat() if study.updated_at else None,
        # A physician's correction keeps the status `reviewed`: the version tells pages to reload.
        "review_version": study.reviews.order_by("-version").values_list("version", flat=True).first(),
    }


def publish_study_status(study) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "study.status", **study_status_payload(study)}
    groups = (study_group(study.id), user_group(study.owner_id), WORKLIST_GROUP)
    try:
        # One trip into the event loop for the three groups: each async_to_sync costs a thread
        # hand-off (profiled: most of the per-study cost of publishing).
        async_to_sync(_send_to_groups)(layer, groups, message)
    except Exception:
        logger.warning("could not publish status of study %s", study.id, exc_info=True)


async def _send_to_groups(layer, groups, message) -> None:
    for group in groups:
        await layer.group_send(group, message)
