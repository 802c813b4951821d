"""Training queue: image-model training runs, the explainer's LoRA fine-tune, and the periodic
retraining check. Thin: services decide."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.training.run_training", bind=True, acks_late=True)
def run_training(self, run_id: int) -> str:
    from apps.modelops.services.training import execute_training_run

    run = execute_training_run(run_id, worker=self.request.hostname or "")
    return "skipped" if run is None else run.status


@shared_task(name="workers.training.check_retraining_queue")
def check_retraining_queue() -> int | None:
    """Celery beat: start an automatic run when the retraining queue says so."""
    from apps.modelops.services.retraining import check_retraining_queue as check

    run = check()
    return None if run is None else run.pk


@shared_task(name="workers.training.finetune_explainer", bind=True, acks_late=True)
def finetune_explainer(self, run_id: int) -> str:
    """LoRA fine-tune of the explanation model on physicians' edits (training queue)."""
    from apps.explanations.services import execute_explainer_finetune

    run = execute_explainer_finetune(run_id, worker=self.request.hostname or "")
    return "skipped" if run is None else run.status


@shared_task(name="workers.training.run_tabular_experiment", bind=True, acks_late=True)
def run_tabular_experiment(self, experiment_id: int) -> str:
    """A tabular lab experiment (clean, select, grid-search six algorithms) on the training queue."""
    from apps.tabular.services import execute_experiment

    experiment = execute_experiment(experiment_id, worker=self.request.hostname or "")
    return "skipped" if experiment is None else experiment.status
