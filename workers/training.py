"""Training queue: image-model training runs, the explainer's LoRA fine-tune, and the periodic
retraining check. Thin: services decide."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.training.run_training", acks_late=True)
def run_training(run_id: int) -> str:
    from apps.modelops.services import execute_training_run

    run = execute_training_run(run_id)
    return "skipped" if run is None else run.status


@shared_task(name="workers.training.check_retraining_queue")
def check_retraining_queue() -> int | None:
    """Celery beat: start an automatic run when the retraining queue says so."""
    from apps.modelops.services import check_retraining_queue as check

    run = check()
    return None if run is None else run.pk


@shared_task(name="workers.training.fail_stalled_runs")
def fail_stalled_runs() -> dict[str, list[int]]:
    """Celery beat: fail training runs and explainer fine-tunes whose worker stopped its heartbeat."""
    from apps.explanations.services import fail_stalled_finetunes
    from apps.modelops.services import fail_stalled_runs as fail_training

    return {
        "training": [run.pk for run in fail_training()],
        "explainer_finetune": [run.pk for run in fail_stalled_finetunes()],
    }


@shared_task(name="workers.training.finetune_explainer", acks_late=True)
def finetune_explainer(run_id: int) -> str:
    """LoRA fine-tune of the explanation model on physicians' edits (training queue)."""
    from apps.explanations.services import execute_explainer_finetune

    run = execute_explainer_finetune(run_id)
    return "skipped" if run is None else run.status
