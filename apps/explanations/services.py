"""Writes for explanations: enqueue after a prediction, generate (explaining → explained),
physician edits, and the LoRA fine-tune job on collected edits. This app owns Explanation,
ExplanationEdit and ExplainerFinetuneRun; the study's status moves through apps.studies.services.

An explanation problem never fails a study: a missing/broken engine or rejected output
falls back to the deterministic template, and the prediction stays visible throughout.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from apps.audit.services import record_event
from apps.core import tasks
from apps.core.errors import ApplicationError
from apps.explanations import metrics, selectors
from apps.explanations.models import ExplainerFinetuneRun, Explanation, ExplanationEdit
from apps.jobs.models import JobStatus
from apps.jobs.services import claim_job, enqueue_job, finish_job, keep_alive, run_training_computation
from apps.studies.models import Study, StudyStatus
from apps.studies.selectors import champion_prediction
from apps.studies.services import claim_study_step, touch_study, transition_study
from ml_core.llm.engine import STARTER_CHECKPOINT, GenerationSettings
from ml_core.llm.facts import ExplanationFacts, build_facts
from ml_core.llm.knowledge import DISCLAIMER
from ml_core.llm.prompt import build_prompt
from ml_core.llm.validate import ValidationLimits, validate_explanation

logger = logging.getLogger(__name__)

S = StudyStatus
PHYSICIAN_ENGINE = "physician"
MAX_EDIT_CHARS = 4000


class ExplanationError(ApplicationError):
    """A refused explanation operation, with a stable code (also the API error code)."""

    code = "explanation_refused"
    status_by_code = {"no_explanation": 404, "explanation_not_ready": 404, "no_edits": 409}

    def __init__(self, code: str, message: str, *, details: dict | None = None):
        super().__init__(message, code=code, details=details)


# --- configuration ------------------------------------------------------------------------


def generation_settings() -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=settings.DEEPMED_LLM_MAX_NEW_TOKENS,
        temperature=settings.DEEPMED_LLM_TEMPERATURE,
        top_k=settings.DEEPMED_LLM_TOP_K or None,
        seed=settings.DEEPMED_LLM_SEED,
        device=settings.DEEPMED_LLM_DEVICE,
        threads=settings.DEEPMED_LLM_THREADS,
        in_child_process=settings.DEEPMED_LLM_IN_CHILD_PROCESS,
        child_nice=settings.DEEPMED_EMBEDDED_BACKGROUND_NICE,
    )


def validation_limits() -> ValidationLimits:
    return ValidationLimits(max_chars=settings.DEEPMED_LLM_MAX_CHARS)


def explainer_checkpoint() -> Path:
    """The operator's checkpoint when configured, else the project's own domain model. A relative
    path is taken from the project root (litgpt itself would read it as a hub name)."""
    if not settings.DEEPMED_LLM_CHECKPOINT:
        return STARTER_CHECKPOINT
    path = Path(settings.DEEPMED_LLM_CHECKPOINT).expanduser()
    return path if path.is_absolute() else (settings.BASE_DIR / path).resolve()


def load_configured_engine() -> tuple[object | None, str | None]:
    """(engine, None) or (None, reason): the engine is optional, the template is not."""
    if not settings.DEEPMED_LLM_ENABLED:
        return None, "language model disabled (DEEPMED_LLM_ENABLED=false)"
    from ml_core.llm.engine import EngineUnavailable, get_engine

    cfg = generation_settings()
    try:
        engine = get_engine(
            explainer_checkpoint(),
            device=cfg.device,
            threads=cfg.threads,
            in_child_process=cfg.in_child_process,
            nice=cfg.child_nice,
        )
        return engine, None
    except EngineUnavailable as exc:
        logger.warning("explanation engine unavailable, using the template: %s", exc)
        return None, str(exc)


def warm_up_engine() -> bool:
    """Load the explanation engine before the first study needs it (a cold litgpt load held the
    first explanations of a burst back about 6 s); True when one is warm. Called when an `llm`
    worker starts (workers/__init__.py)."""
    engine, _ = load_configured_engine()
    return engine is not None


# --- the pipeline -------------------------------------------------------------------------


def request_explanation(study: Study) -> None:
    """Queue the explanation once the current transaction (the prediction) commits."""
    study_id = study.pk
    transaction.on_commit(lambda: enqueue_explanation(study_id))


def enqueue_explanation(study_id) -> None:
    """A broker outage is logged, not raised: the study keeps its visible prediction and
    `requeue_unexplained_studies` picks it up later."""
    try:
        tasks.enqueue(tasks.EXPLANATION, str(study_id))
    except Exception:
        logger.warning("could not enqueue the explanation of study %s", study_id, exc_info=True)


def start_explanation(study_id) -> Study | None:
    """Claim a predicted study for explaining (see studies.services.claim_study_step)."""
    return claim_study_step(
        study_id,
        ready=S.PREDICTED,
        working=S.EXPLAINING,
        done=Exists(Explanation.objects.filter(study=OuterRef("pk"))),
    )


def facts_for_study(study: Study) -> ExplanationFacts | None:
    prediction = champion_prediction(study)
    if prediction is None:
        return None
    return build_facts(
        label=prediction.label,
        probabilities=prediction.probabilities,
        heatmap_regions=prediction.heatmap_regions,
        age=study.patient_age,
        symptoms_text=study.symptoms,
    )


def generate_explanation(study_id) -> Explanation | None:
    """explaining → grounded, validated explanation (or the template) → explained."""
    from ml_core.llm.explain import explain

    study = start_explanation(study_id)
    if study is None:
        return None
    started_at = timezone.now()
    prediction = champion_prediction(study)
    facts = facts_for_study(study)
    if facts is None:
        logger.error("study %s is %s without a champion prediction", study.pk, study.status)
        return None
    model_label = f"{prediction.model_name} v{prediction.model_version_label}"
    engine, engine_error = load_configured_engine()
    try:
        outcome = explain(
            facts,
            engine,
            settings=generation_settings(),
            limits=validation_limits(),
            model_label=model_label,
            engine_error=engine_error or "",
        )
    except Exception as exc:
        logger.exception("explanation of study %s failed; using the template", study.pk)
        outcome = explain(facts, None, model_label=model_label, engine_error=f"{type(exc).__name__}: {exc}")
    return store_explanation(study, outcome, facts, started_at=started_at)


def store_explanation(study: Study, outcome, facts: ExplanationFacts, *, started_at=None) -> Explanation | None:
    try:
        with transaction.atomic():
            locked = Study.objects.select_for_update().get(pk=study.pk)
            explanation = Explanation.objects.create(
                study=locked,
                text=outcome.text,
                technical_summary=outcome.technical_summary,
                engine=outcome.engine,
                model_name=outcome.model_name,
                prompt_hash=outcome.prompt_hash,
                generation_ms=round(outcome.generation_ms, 1),
                validation=outcome.validation_record(facts),
                started_at=started_at,
            )
            # A physician may have reviewed the study meanwhile: keep the text, not the status.
            if locked.status == S.EXPLAINING:
                transition_study(locked, S.EXPLAINED)
    except IntegrityError:
        return Explanation.objects.filter(study_id=study.pk).first()  # another delivery won
    except Study.DoesNotExist:
        return None  # deleted while we were writing
    metrics.observe_explanation(outcome)
    return explanation


def requeue_unexplained_studies(*, older_than_seconds: int = 600) -> int:
    """Re-enqueue studies left `predicted`/`explaining` without an explanation (lost task)."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    stalled = list(
        Study.objects.filter(
            status__in=[S.PREDICTED, S.EXPLAINING], updated_at__lt=cutoff, explanation__isnull=True
        ).values_list("pk", flat=True)
    )
    for study_id in stalled:
        touch_study(study_id)
        enqueue_explanation(study_id)
    return len(stalled)


# --- physician edits ----------------------------------------------------------------------


def edit_explanation(*, study: Study, editor, text: str, ip_address: str | None = None) -> ExplanationEdit:
    """A physician rewrites the patient explanation. The edit is shown to the patient, kept
    with the original for audit, and collected for the LoRA fine-tune."""
    if not getattr(editor, "is_clinical_staff", False):
        raise PermissionDenied("Only physicians edit explanations.")
    text = " ".join((text or "").split())
    if not text:
        raise ExplanationError("empty_text", "The explanation text is empty.")
    if not text.endswith(DISCLAIMER):
        text = f"{text} {DISCLAIMER}"  # patients always see the disclaimer last
    if len(text) > MAX_EDIT_CHARS:
        raise ExplanationError("text_too_long", f"The explanation is longer than {MAX_EDIT_CHARS} characters.")
    with transaction.atomic():
        explanation = Explanation.objects.select_for_update().filter(study=study).first()
        if explanation is None:
            raise ExplanationError("no_explanation", "This study has no explanation yet.")
        facts = selectors.explanation_facts(explanation) or facts_for_study(study)
        verdict = validate_explanation(text, facts, validation_limits()) if facts else None
        edit = ExplanationEdit.objects.create(
            explanation=explanation,
            editor=editor,
            original_text=explanation.text,
            original_engine=explanation.engine,
            edited_text=text,
            prompt=build_prompt(facts) if facts else "",
            validation=verdict.to_dict() if verdict else {},
        )
        explanation.text = text
        explanation.engine = PHYSICIAN_ENGINE
        explanation.save(update_fields=["text", "engine"])
        record_event(
            actor=editor,
            action="explanation.edit",
            obj=study,
            ip_address=ip_address,
            detail={"edit_id": edit.pk, "original_engine": edit.original_engine},
        )
    return edit


# --- LoRA fine-tune on the edits ------------------------------------------------------------


def export_edit_dataset(path: str | Path) -> int:
    """Write the latest edit per explanation as an instruction dataset; returns the row count."""
    from ml_core.llm.finetune import InstructionExample, write_instruction_dataset

    examples = [InstructionExample(instruction=e.prompt, output=e.edited_text) for e in selectors.edits_for_training()]
    write_instruction_dataset(examples, path)
    return len(examples)


def run_explainer_finetune(
    *, steps: int = 20, out_dir: str | Path | None = None, base_checkpoint: str | Path | None = None
):
    """The training job: export edits → LoRA fine-tune (litgpt) → merged checkpoint, tracked in MLflow.
    Deploy the result by pointing DEEPMED_LLM_CHECKPOINT at it."""
    from ml_core.llm.finetune import LoraConfig, finetune_lora

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(out_dir or settings.DATA_DIR / "llm" / f"lora-{stamp}").resolve()
    data_path = out_dir / "edits.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    if export_edit_dataset(data_path) == 0:
        raise ExplanationError("no_edits", "No physician edits to fine-tune on yet.")
    return run_training_computation(
        finetune_lora,
        Path(base_checkpoint or explainer_checkpoint()).resolve(),
        data_path,
        out_dir / "checkpoint",
        LoraConfig(steps=steps),
        tracking_uri=settings.MLFLOW_TRACKING_URI,
        artifact_root=settings.MLFLOW_ARTIFACT_ROOT,
    )


def start_explainer_finetune(*, actor=None, steps: int = 20) -> ExplainerFinetuneRun:
    """Queue a LoRA fine-tune on the `training` queue (GPU worker when there is one). Refused
    with `no_edits` while physicians have edited nothing."""
    if not selectors.edits_for_training().exists():
        raise ExplanationError("no_edits", "No physician edits to fine-tune on yet.")
    with transaction.atomic():
        run = ExplainerFinetuneRun.objects.create(
            steps=steps, started_by=actor if getattr(actor, "is_authenticated", False) else None
        )
        record_event(actor=actor, action="explainer.finetune.start", obj=run, detail={"steps": steps})
        enqueue_job(run)  # on the `training` queue once committed
    return run


def execute_explainer_finetune(run_id: int, *, worker: str = "") -> ExplainerFinetuneRun | None:
    """The job itself (called by the worker); None when there is nothing to do (finished, or
    running under a live worker: see apps.jobs.services.claim_job). A failure is stored on the
    run, never raised."""
    run = claim_job(ExplainerFinetuneRun, run_id, worker=worker)
    if run is None:
        return None
    try:
        with keep_alive(run):
            result = run_explainer_finetune(steps=run.steps, out_dir=settings.DATA_DIR / "llm" / f"lora-run-{run.pk}")
    except Exception as exc:
        logger.exception("explainer fine-tune %s failed", run.pk)
        error = (exc.message if isinstance(exc, ExplanationError) else str(exc))[:2000]
        finish_job(run, JobStatus.FAILED, error=error)
    else:
        run.examples, run.checkpoint_dir, run.mlflow_run_id, run.seconds = (
            result.examples,
            result.checkpoint_dir,
            result.mlflow_run_id,
            result.seconds,
        )
        finish_job(run, JobStatus.SUCCEEDED, update_fields=["examples", "checkpoint_dir", "mlflow_run_id", "seconds"])
    record_event(
        actor=None,
        action="explainer.finetune.finish",
        obj=run,
        detail={"status": run.status, "mlflow_run_id": run.mlflow_run_id, "error": run.error[:200]},
    )
    return run
