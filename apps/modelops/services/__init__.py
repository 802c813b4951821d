"""Writes for model operations, one module per concern:

- registry: the ModelVersion mirror of the MLflow registry, aliases;
- serving: warm predictors, champion/challenger/canary choice, the inference pipeline of a study;
- training: training runs and the adapters to ml_core (dataset, training, packaging);
- gates: held-out evaluation, quality gates, promotion and rollback;
- retraining: the automatic retraining trigger;
- augmentation: augmentation jobs;
- errors: the refusals (ModelOpsError and its codes).

MLflow (ml_core.tracking) is the source of truth for runs and the registry; everything heavy
happens in ml_core; the functions here decide, record and audit. The public names are
re-exported here, so `from apps.modelops.services import X` keeps working; patch a name in
the module that uses it (e.g. apps.modelops.services.gates._score_package).
"""

from apps.modelops.services.augmentation import (
    AUGMENTATION_LEVELS,
    execute_augmentation_job,
    start_augmentation_job,
)
from apps.modelops.services.errors import (
    GatesFailed,
    InvalidJobParameters,
    ModelOpsError,
    NoHoldout,
    NothingToRollBack,
    SameVersion,
    TrainingCancelled,
)
from apps.modelops.services.gates import (
    LATENCY_SAMPLE,
    GateResult,
    check_gates,
    compare_versions,
    evaluate_on_holdout,
    evaluate_version,
    promote_version,
    rollback_champion,
)
from apps.modelops.services.registry import (
    register_model_version,
    set_alias,
    sync_registry,
)
from apps.modelops.services.retraining import (
    check_retraining_queue,
)
from apps.modelops.services.serving import (
    choose_serving_versions,
    load_predictor,
    predict_study,
    record_shadow_prediction,
)
from apps.modelops.services.training import (
    INITIALISATIONS,
    OVERRIDABLE,
    TIERS,
    WARM_START_LR,
    cancel_training_run,
    execute_training_run,
    resolve_initialisation,
    start_training_run,
    training_dataset,
    validate_training_params,
)

__all__ = [
    "ModelOpsError",
    "GatesFailed",
    "NothingToRollBack",
    "NoHoldout",
    "SameVersion",
    "InvalidJobParameters",
    "TrainingCancelled",
    "register_model_version",
    "set_alias",
    "sync_registry",
    "load_predictor",
    "choose_serving_versions",
    "record_shadow_prediction",
    "predict_study",
    "TIERS",
    "INITIALISATIONS",
    "WARM_START_LR",
    "validate_training_params",
    "OVERRIDABLE",
    "resolve_initialisation",
    "start_training_run",
    "cancel_training_run",
    "execute_training_run",
    "training_dataset",
    "evaluate_version",
    "evaluate_on_holdout",
    "compare_versions",
    "GateResult",
    "check_gates",
    "promote_version",
    "rollback_champion",
    "LATENCY_SAMPLE",
    "check_retraining_queue",
    "AUGMENTATION_LEVELS",
    "start_augmentation_job",
    "execute_augmentation_job",
]
