"""tests/factories.py makes what its names say (the other tests rely on it)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.accounts.selectors import has_current_consent
from apps.audit.models import AuditEvent
from apps.studies.models import StudyStatus as S
from tests.factories import (
    AdminFactory,
    AugmentationJobFactory,
    LabeledSampleFactory,
    ModelVersionFactory,
    PatientFactory,
    PhysicianFactory,
    PredictionFactory,
    StudyFactory,
    TrainingRunFactory,
)

pytestmark = pytest.mark.django_db


def test_users_have_their_role_group_and_patients_consent():
    patient, physician, admin = PatientFactory(), PhysicianFactory(), AdminFactory()
    assert [u.role for u in (patient, physician, admin)] == ["patient", "physician", "admin"]
    assert all(u.groups.filter(name=u.role).exists() for u in (patient, physician, admin))
    assert admin.is_staff and not physician.is_staff
    assert has_current_consent(patient) and not has_current_consent(PatientFactory(consented=False))
    assert patient.check_password("a-long-test-password")


@pytest.mark.parametrize(
    "trait,status,predictions,explained,reviews",
    [
        ("uploaded", S.UPLOADED, 0, False, 0),
        (None, S.QUEUED, 0, False, 0),
        ("predicting", S.PREDICTING, 0, False, 0),
        ("predicted", S.PREDICTED, 1, False, 0),
        ("explaining", S.EXPLAINING, 1, False, 0),
        ("explained", S.EXPLAINED, 1, True, 0),
        ("reviewed", S.REVIEWED, 1, True, 1),
        ("failed", S.FAILED, 0, False, 0),
    ],
)
def test_each_study_state(trait, status, predictions, explained, reviews):
    study = StudyFactory(**({trait: True} if trait else {}))
    assert study.status == status
    assert study.image.storage.exists(study.image.name)
    assert study.predictions.count() == predictions
    assert hasattr(study, "explanation") is explained
    assert study.reviews.count() == reviews
    assert AuditEvent.objects.filter(action="study.create").count() == (0 if trait == "uploaded" else 1)


def test_a_predicted_study_has_the_result_asked_for_and_its_age():
    version = ModelVersionFactory(champion=True, version="3")
    study = StudyFactory(
        predicted=True, probabilities={"COVID-19": 0.7, "NORMAL": 0.2, "PNEUMONIA": 0.1}, created_at=timezone.now()
    )
    prediction = study.predictions.get()
    assert (prediction.label, prediction.confidence, prediction.model_version) == ("COVID-19", 0.7, version)
    old = StudyFactory(uploaded=True, status=S.EXPLAINED, created_at=timezone.now() - timezone.timedelta(hours=5))
    assert old.status == S.EXPLAINED and (timezone.now() - old.created_at).total_seconds() > 4 * 3600
    a, b = StudyFactory(), StudyFactory()  # distinct images: the second is not a duplicate upload
    assert a.sha256 != b.sha256


def test_rows_of_the_other_models():
    challenger = ModelVersionFactory(challenger=True)
    shadow = PredictionFactory(role="challenger", model_version=challenger, label="NORMAL")
    assert shadow.model_version_label == challenger.version and shadow.probabilities == {"NORMAL": 1.0}
    assert LabeledSampleFactory().image.storage.exists(LabeledSampleFactory().image.name)
    beat = timezone.now() - timezone.timedelta(minutes=45)
    run = TrainingRunFactory(status="running", heartbeat_at=beat, created_at=beat)
    assert (run.status, run.heartbeat_at, run.created_at) == ("running", beat, beat)
    assert AugmentationJobFactory().status == "queued"
