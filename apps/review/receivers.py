"""Receivers of apps.studies' signals (connected in apps.py): a study's training samples follow
what happens to the study."""

from __future__ import annotations

from apps.review import services
from apps.studies.signals import DerivedData


def identifying_text_flagged(sender, study, **kwargs) -> int:
    return services.exclude_study_samples(study)


def study_deleting(sender, study, keep_for_research: bool, **kwargs) -> DerivedData:
    return services.withdraw_samples_of_deleted_study(study, keep_for_research=keep_for_research)
