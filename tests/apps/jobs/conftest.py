"""apps.jobs has only an abstract model: its tests drive the services through concrete jobs
(training runs mostly: they need nothing but `params`)."""

from __future__ import annotations

import pytest


@pytest.fixture
def job_changes():
    """[(model name, job id, change)] sent on apps.jobs' job_changed during the test."""
    from apps.jobs.signals import job_changed

    seen: list[tuple[str, int, str]] = []

    def record(sender, job, change, **kwargs):
        seen.append((sender.__name__, job.pk, change))

    job_changed.connect(record, weak=False)
    yield seen
    job_changed.disconnect(record)
