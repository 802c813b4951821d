from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    """Process entry points (the `serve` command); no models."""

    name = "apps.runtime"
    label = "runtime"
