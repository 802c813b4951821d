from django.apps import AppConfig


class ExplanationsConfig(AppConfig):
    name = "apps.explanations"
    label = "explanations"
    verbose_name = "Explanations (LLM)"

    def ready(self) -> None:
        from apps.explanations import receivers
        from apps.studies.signals import study_predicted

        study_predicted.connect(receivers.study_predicted, dispatch_uid="explanations.study_predicted")
