from django.apps import AppConfig


class JobsConfig(AppConfig):
    """The background-job lifecycle shared by training runs, augmentation jobs and explainer
    fine-tunes. An abstract model only: no tables of its own."""

    name = "apps.jobs"
    label = "jobs"
