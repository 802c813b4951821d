"""Receivers of apps.studies' signals (connected in apps.py)."""

from __future__ import annotations

from apps.explanations import services


def study_predicted(sender, study, **kwargs) -> None:
    services.request_explanation(study)  # the llm task starts once the prediction is committed
