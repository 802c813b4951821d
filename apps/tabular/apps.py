from django.apps import AppConfig


class TabularConfig(AppConfig):
    """The tabular lab: uploaded clinical tables, their profiles, experiments (on apps.jobs'
    lifecycle) and risk models. The data science itself is ml_core.tabular."""

    name = "apps.tabular"
    label = "tabular"

    def ready(self) -> None:
        from apps.jobs.signals import job_changed
        from apps.modelops.consumers import register_kind
        from apps.tabular import receivers, selectors
        from apps.tabular.models import TabularExperiment

        job_changed.connect(receivers.experiment_changed, sender=TabularExperiment, dispatch_uid="tabular.experiment")
        register_kind(receivers.WS_KIND, TabularExperiment, selectors.experiment_progress)
