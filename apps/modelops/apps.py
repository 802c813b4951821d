from django.apps import AppConfig


class ModelopsConfig(AppConfig):
    name = "apps.modelops"
    label = "modelops"

    def ready(self) -> None:
        from apps.jobs.signals import job_changed
        from apps.modelops import receivers
        from apps.modelops.models import AugmentationJob, TrainingRun

        job_changed.connect(receivers.training_run_changed, sender=TrainingRun, dispatch_uid="modelops.training")
        job_changed.connect(
            receivers.augmentation_job_changed, sender=AugmentationJob, dispatch_uid="modelops.augmentation"
        )
