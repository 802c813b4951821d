from django.apps import AppConfig


class TabularConfig(AppConfig):
    """The tabular lab: uploaded clinical tables, their profiles (training runs and risk models
    come next, on apps.jobs' lifecycle). The data science itself is ml_core.tabular."""

    name = "apps.tabular"
    label = "tabular"
