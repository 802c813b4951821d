"""Test objects, one factory per model (factory_boy): `from tests.factories import StudyFactory`.

Users and studies are made through the real services, as the portal makes them (a user gets
their role's group, a study a de-identified image, each step its audit event, status event and
metric); the other factories write rows directly.

    PatientFactory()                      # a patient who accepted the current disclaimer
    PatientFactory(consented=False)       # ... who did not (yet)
    PhysicianFactory(), AdminFactory()
    StudyFactory()                        # queued: through the intake service (no task runs in a `db` test)
    StudyFactory(uploaded=True)           # a bare row in `uploaded` (or any `status=`: state-machine tests)
    StudyFactory(predicted=True, probabilities={...}, model_version=v, created_at=...)
    StudyFactory(explained=True)          # + an explanation (fixed template-like text)
    StudyFactory(reviewed=True, reviewer=physician)
    StudyFactory(failed=True, failure_code="not_a_chest_xray")
    PredictionFactory(study=s, model_version=v, label="NORMAL", role="challenger")
    ModelVersionFactory(champion=True)    # a registry row without a package behind it
    TabularExperimentFactory(f1=0.9, roc_auc=0.95, cv_std=0.02)  # a succeeded, registered
                                          # tabular experiment (figures only, no model directory)
    TrainingRunFactory(status="running", heartbeat_at=..., created_at=...)

Any factory takes `created_at=` (and the other auto_now fields): it is written after the insert.
"""

from __future__ import annotations

import hashlib

import factory
from django.core.files.base import ContentFile
from factory.django import DjangoModelFactory

from apps.accounts.models import Role, User
from apps.explanations.models import ExplainerFinetuneRun, Explanation
from apps.jobs.models import JobStatus
from apps.modelops.models import Alias, AugmentationJob, ModelVersion, TrainingRun
from apps.review.models import Decision, LabeledSample, Review, SampleSource
from apps.studies.models import Prediction, PredictionRole, Study, StudyStatus
from apps.tabular.models import TabularDataset, TabularExperiment, TabularModel
from ml_core.testing import make_xray_like_png

S = StudyStatus

CLASSES = ["COVID-19", "NORMAL", "PNEUMONIA"]
PNEUMONIA_RESULT = {"COVID-19": 0.05, "NORMAL": 0.15, "PNEUMONIA": 0.80}
EXPLANATION_TEXT = "The model saw patchy shadows in the lower right lung."
PASSWORD = "a-long-test-password"


def hours_ago(hours: float):
    """The aware datetime `hours` before now (for `created_at=`)."""
    from django.utils import timezone

    return timezone.now() - timezone.timedelta(hours=hours)


class Factory(DjangoModelFactory):
    """Writes `created_at` (and any other auto_now/auto_now_add field given) after the insert,
    which is the only way to age a row."""

    class Meta:
        abstract = True
        skip_postgeneration_save = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        stamps = _pop_auto_timestamps(model_class, kwargs)
        return _stamped(super()._create(model_class, *args, **kwargs), stamps)


def _pop_auto_timestamps(model_class, kwargs: dict) -> dict:
    auto = [
        f.name
        for f in model_class._meta.concrete_fields
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    ]
    return {name: kwargs.pop(name) for name in auto if kwargs.get(name) is not None}


def _stamped(obj, stamps: dict):
    if stamps:
        type(obj)._default_manager.filter(pk=obj.pk).update(**stamps)
        obj.refresh_from_db()
    return obj


# --- accounts ----------------------------------------------------------------------------------


class UserFactory(Factory):
    """A user made by accounts.services.create_user (role group attached, `user.create` audited);
    the password is PASSWORD."""

    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user-{n}")
    password = PASSWORD
    role = Role.PATIENT

    @classmethod
    def _create(cls, model_class, *, username, password, role, **kwargs):
        from apps.accounts.services import create_user

        stamps = _pop_auto_timestamps(model_class, kwargs)
        return _stamped(create_user(username=username, password=password, role=role, validate=False, **kwargs), stamps)


class PatientFactory(UserFactory):
    """A patient who accepted the current disclaimer (accounts.services.accept_disclaimer);
    `consented=False`: one who did not."""

    username = factory.Sequence(lambda n: f"patient-{n}")
    role = Role.PATIENT

    @factory.post_generation
    def consented(user, create, extracted, **kwargs):
        if create and extracted is not False:
            from apps.accounts.services import accept_disclaimer

            accept_disclaimer(user, ip_address="127.0.0.1")


class PhysicianFactory(UserFactory):
    username = factory.Sequence(lambda n: f"dr-{n}")
    role = Role.PHYSICIAN


class AdminFactory(UserFactory):
    username = factory.Sequence(lambda n: f"admin-{n}")
    role = Role.ADMIN


# --- model registry ----------------------------------------------------------------------------


class ModelVersionFactory(Factory):
    """A registry row with no package behind it (nothing can load it); `champion=True` or
    `challenger=True` gives it that alias. For a servable one, register a real package
    (the `champion` fixture does)."""

    class Meta:
        model = ModelVersion
        django_get_or_create = ("registered_name", "version")

    registered_name = "deepmed-cxr"
    version = factory.Sequence(lambda n: str(n + 1))
    classes = factory.LazyFunction(lambda: list(CLASSES))
    package_uri = "/nowhere"

    class Params:
        champion = factory.Trait(alias=Alias.CHAMPION)
        challenger = factory.Trait(alias=Alias.CHALLENGER)


def current_champion() -> ModelVersion:
    """The champion in the registry, else a new ModelVersionFactory champion."""
    return ModelVersion.objects.filter(alias=Alias.CHAMPION).first() or ModelVersionFactory(champion=True)


# --- studies -----------------------------------------------------------------------------------


def prediction_result(probabilities: dict[str, float], *, model_name: str, model_version: str, heatmap: bool = False):
    """The ml_core result the inference worker would hand to record_prediction."""
    from ml_core.serve import PredictionResult

    heatmap_png = None
    if heatmap:
        import numpy as np

        from ml_core.imaging import encode_png

        overlay = np.zeros((64, 64, 4), dtype=np.uint8)
        overlay[16:48, 16:48] = (255, 0, 0, 160)
        heatmap_png = encode_png(overlay)
    label = max(probabilities, key=probabilities.get)
    return PredictionResult(
        label=label,
        probabilities=dict(probabilities),
        confidence=probabilities[label],
        latency_ms=5.0,
        heatmap_png=heatmap_png,
        model_name=model_name,
        model_version=model_version,
    )


# The states a study passes through, in order, and the service call that enters each.
_LIFE = [S.QUEUED, S.PREDICTING, S.PREDICTED, S.EXPLAINING, S.EXPLAINED, S.REVIEWED]


class StudyFactory(Factory):
    """A study walked through the real services to one point of its life (default: queued).

    Intake is apps.studies.services.create_study (one distinct generated 64 px X-ray per study;
    `data=` for other bytes, a DICOM say; `patient_age`, `symptoms` go to it too); `predicted` records
    the champion's result (`probabilities`, `model_version` (default: the registry's champion,
    else a ModelVersionFactory one), `model_name`, `heatmap`) with record_prediction;
    `explained` stores an ExplanationFactory text (`explanation=`) between transitions;
    `reviewed` adds a ReviewFactory by `reviewer` (default: a new physician). A bare row with
    any `status=` (and nothing attached) is `StudyFactory(uploaded=True, status=...)`.
    """

    class Meta:
        model = Study

    owner = factory.SubFactory(PatientFactory)
    data = factory.Sequence(lambda n: make_xray_like_png(size=64, seed=1000 + n))  # the uploaded bytes
    state = S.QUEUED
    probabilities = factory.LazyFunction(lambda: dict(PNEUMONIA_RESULT))
    model_version = None
    model_name = "cxr-test"
    heatmap = False
    explanation = EXPLANATION_TEXT
    reviewer = None
    failure_code = "inference_error"

    class Params:
        uploaded = factory.Trait(state=S.UPLOADED)
        predicting = factory.Trait(state=S.PREDICTING)
        predicted = factory.Trait(state=S.PREDICTED)
        explaining = factory.Trait(state=S.EXPLAINING)
        explained = factory.Trait(state=S.EXPLAINED)
        reviewed = factory.Trait(state=S.REVIEWED)
        failed = factory.Trait(state=S.FAILED)

    @classmethod
    def _create(cls, model_class, *, owner, data, state, failure_code, **kwargs):
        from apps.studies import services

        walk = {k: kwargs.pop(k) for k in ("probabilities", "model_version", "model_name", "heatmap")}
        explanation, reviewer = kwargs.pop("explanation"), kwargs.pop("reviewer")
        stamps = _pop_auto_timestamps(model_class, kwargs)
        if state == S.UPLOADED:
            study = Study(owner=owner, sha256=hashlib.sha256(data).hexdigest(), original_format="png", **kwargs)
            study.image.save("image.png", ContentFile(data), save=False)
            study.width = study.height = 64
            study.save()
            return _stamped(study, stamps)
        study = services.create_study(owner=owner, data=data, **kwargs)
        if state == S.FAILED:
            services.fail_study(study, code=failure_code, reason="Failed in a test.")
        for step in _LIFE[1 : _LIFE.index(state) + 1] if state in _LIFE else []:
            cls._enter(study, step, explanation=explanation, reviewer=reviewer, **walk)
        study.refresh_from_db()
        return _stamped(study, stamps)

    @staticmethod
    def _enter(study, step, *, probabilities, model_version, model_name, heatmap, explanation, reviewer):
        from apps.studies import services

        if step == S.PREDICTING:
            services.start_prediction(study.pk)
        elif step == S.PREDICTED:
            version = model_version or current_champion()
            result = prediction_result(
                probabilities, model_name=model_name, model_version=version.version, heatmap=heatmap
            )
            services.record_prediction(study, model_version=version, result=result)
        elif step == S.EXPLAINING:
            services.transition_study(study, S.EXPLAINING)
        elif step == S.EXPLAINED:
            ExplanationFactory(study=study, text=explanation)
            services.transition_study(study, S.EXPLAINED)
        elif step == S.REVIEWED:
            ReviewFactory(study=study, physician=reviewer or PhysicianFactory())
            services.transition_study(study, S.REVIEWED)


class PredictionFactory(Factory):
    """A stored prediction row (no service runs: the study's status is left as it is);
    probability 1.0 for `label`."""

    class Meta:
        model = Prediction

    study = factory.SubFactory(StudyFactory)
    role = PredictionRole.CHAMPION
    model_version = factory.SubFactory(ModelVersionFactory)
    model_name = factory.LazyAttribute(lambda p: p.model_version.registered_name if p.model_version else "cxr-test")
    model_version_label = factory.LazyAttribute(lambda p: p.model_version.version if p.model_version else "1")
    label = "PNEUMONIA"
    probabilities = factory.LazyAttribute(lambda p: {p.label: 1.0})
    confidence = 1.0
    latency_ms = 1.0


class ExplanationFactory(Factory):
    class Meta:
        model = Explanation

    study = factory.SubFactory(StudyFactory, predicted=True)
    text = EXPLANATION_TEXT
    engine = "template"


# --- review ------------------------------------------------------------------------------------


class ReviewFactory(Factory):
    """A physician's correction to NORMAL (version 1); the study's status is left as it is."""

    class Meta:
        model = Review

    study = factory.SubFactory(StudyFactory, explained=True)
    physician = factory.SubFactory(PhysicianFactory)
    decision = Decision.CORRECT
    final_label = "NORMAL"
    note = "No consolidation on my reading."
    version = 1


class LabeledSampleFactory(Factory):
    """A physician-labelled sample in the retraining queue (its image: a stored file of
    `image__data`, by default 3 bytes; pass a real PNG when it will be trained on)."""

    class Meta:
        model = LabeledSample

    image = factory.django.FileField(filename="sample.png", data=b"png")
    sha256 = factory.Sequence(lambda n: f"sample-{n}".ljust(64, "0"))
    label = "PNEUMONIA"
    source = SampleSource.PHYSICIAN_REVIEW


# --- jobs --------------------------------------------------------------------------------------


class TrainingRunFactory(Factory):
    """A training run row in any `status` (no task is sent); `started_at`, `heartbeat_at`,
    `created_at` ... age it."""

    class Meta:
        model = TrainingRun

    status = JobStatus.QUEUED
    params = factory.LazyFunction(dict)


class AugmentationJobFactory(Factory):
    class Meta:
        model = AugmentationJob

    status = JobStatus.QUEUED
    label = "COVID-19"
    target_count = 10


class ExplainerFinetuneRunFactory(Factory):
    class Meta:
        model = ExplainerFinetuneRun

    status = JobStatus.QUEUED


# --- tabular lab ---------------------------------------------------------------------------------


class TabularDatasetFactory(Factory):
    """A dataset row (no file behind it: upload through services.upload_dataset for that)."""

    class Meta:
        model = TabularDataset

    name = factory.Sequence(lambda n: f"risk table {n}")
    sha256 = factory.Sequence(lambda n: hashlib.sha256(f"table {n}".encode()).hexdigest())
    n_bytes = 1000
    rows = 120
    columns = factory.LazyFunction(lambda: ["glucose", "bmi", "target"])
    encoding = "utf-8"
    delimiter = ","


class TabularExperimentFactory(Factory):
    """A succeeded tabular experiment registered as the next version of its dataset's model
    (test figures from `f1`, `roc_auc`, `cv_std`); `registered=False` leaves it unregistered."""

    class Meta:
        model = TabularExperiment
        exclude = ("f1", "roc_auc", "cv_std")

    f1, roc_auc, cv_std = 0.9, 0.95, 0.02
    dataset = factory.SubFactory(TabularDatasetFactory)
    status = JobStatus.SUCCEEDED
    chosen_algorithm = "logistic_regression"
    config = factory.LazyFunction(lambda: {"target": "target", "scoring": "roc_auc"})
    result = factory.LazyAttribute(
        lambda o: {
            "chosen": "logistic_regression",
            "scoring": "roc_auc",
            "test": {"f1_macro": o.f1, "roc_auc": o.roc_auc, "accuracy": o.f1},
            "algorithms": {"logistic_regression": {"cv_mean": o.roc_auc, "cv_std": o.cv_std}},
        }
    )

    @factory.post_generation
    def registered(obj, create, extracted, **kwargs):
        """Register it (as execute_experiment does) unless `registered=False`."""
        if not create or extracted is False or obj.status != JobStatus.SUCCEEDED or obj.model_name:
            return
        from apps.tabular.selectors import model_name_for, registered_name_for

        name = model_name_for(obj.dataset)
        TabularModel.objects.get_or_create(name=name, defaults={"registered_name": registered_name_for(name)})
        version = TabularExperiment.objects.filter(model_name=name).count() + 1
        TabularExperiment.objects.filter(pk=obj.pk).update(model_name=name, model_version=version)
        obj.refresh_from_db()
