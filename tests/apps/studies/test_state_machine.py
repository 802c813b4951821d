import pytest

from apps.studies.models import StudyStatus
from apps.studies.services import ALLOWED_TRANSITIONS, IllegalTransition, transition_study
from tests.factories import StudyFactory

S = StudyStatus
HAPPY_PATH = [S.QUEUED, S.PREDICTING, S.PREDICTED, S.EXPLAINING, S.EXPLAINED, S.REVIEWED]


def test_happy_path_walks_every_state(patient):
    study = StudyFactory(uploaded=True, owner=patient)
    for status in HAPPY_PATH:
        transition_study(study, status)
        study.refresh_from_db()
        assert study.status == status


@pytest.mark.parametrize(
    "start,target",
    [
        (S.UPLOADED, S.PREDICTED),
        (S.QUEUED, S.REVIEWED),
        (S.PREDICTED, S.QUEUED),
        (S.REVIEWED, S.PREDICTING),
        (S.EXPLAINED, S.FAILED),
        (S.FAILED, S.PREDICTED),
    ],
)
def test_illegal_transitions_are_refused_and_nothing_changes(patient, start, target):
    study = StudyFactory(uploaded=True, owner=patient, status=start)
    with pytest.raises(IllegalTransition):
        transition_study(study, target)
    study.refresh_from_db()
    assert study.status == start


def test_every_status_has_a_rule():
    assert set(ALLOWED_TRANSITIONS) == set(S.values)
    for targets in ALLOWED_TRANSITIONS.values():
        assert targets <= set(S.values)


def test_failure_reason_is_kept_only_while_failed(patient):
    study = StudyFactory(uploaded=True, owner=patient, status=S.QUEUED)
    transition_study(study, S.FAILED, failure_code="no_model", failure_reason="no model is deployed")
    study.refresh_from_db()
    assert (study.failure_code, study.failure_reason) == ("no_model", "no model is deployed")
    transition_study(study, S.QUEUED)
    study.refresh_from_db()
    assert study.failure_reason == "" and study.status == S.QUEUED


def test_transition_publishes_event_after_commit(patient, django_capture_on_commit_callbacks, monkeypatch):
    published = []
    monkeypatch.setattr("apps.studies.events.publish_study_status", lambda s: published.append(s.status))
    study = StudyFactory(uploaded=True, owner=patient)
    with django_capture_on_commit_callbacks(execute=True):
        transition_study(study, S.QUEUED)
    assert published == [S.QUEUED]
