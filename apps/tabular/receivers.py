"""Receivers of apps.jobs' `job_changed` for the tabular experiments (connected in apps.py): every
state change (claimed, each fold's progress, finished, cancelled, failed by the sweeper) is pushed
to the experiment page over the WebSocket the image runs use (apps.modelops.events.publish)."""

from __future__ import annotations

from apps.modelops import events
from apps.tabular import selectors
from apps.tabular.models import TabularExperiment

WS_KIND = "tabular"  # ws/modelops/tabular/<id>/


def experiment_changed(sender, job: TabularExperiment, change: str, **kwargs) -> None:
    events.publish(WS_KIND, job.pk, selectors.experiment_progress(job))
