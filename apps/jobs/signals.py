"""`job_changed` is sent after each state change of a job (sender: the job's model; `job`; `change`:
claimed, progress, finished, cancelled, stalled, lost, requeued). The apps owning a kind of job
push their live updates from it, so the shared services stay free of app specifics."""

from django.dispatch import Signal

job_changed = Signal()
