"""Reads for studies, always through the permission check."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from apps.accounts.models import User
from apps.studies.models import Prediction, PredictionRole, Study


def can_view_study(user: User, study: Study) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return study.owner_id == user.pk or user.is_clinical_staff


def get_study_for_user(user: User, study_id) -> Study:
    """The study if `user` may see it. A patient asking for someone else's study gets 404,
    so ids cannot be probed; clinical staff see every study."""
    study = Study.objects.select_related("owner").filter(pk=study_id).first()
    if study is None:
        raise Http404("No such study.")
    if not can_view_study(user, study):
        if user.is_authenticated and not getattr(user, "is_patient", True):
            raise PermissionDenied
        raise Http404("No such study.")
    return study


def studies_for_owner(user: User) -> QuerySet[Study]:
    return Study.objects.filter(owner=user).prefetch_related("predictions").order_by("-created_at")


def champion_prediction(study: Study) -> Prediction | None:
    return study.predictions.filter(role=PredictionRole.CHAMPION).first()
