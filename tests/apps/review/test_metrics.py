import pytest
from prometheus_client import generate_latest
from prometheus_client.core import REGISTRY

from apps.review.selectors import model_feedback
from apps.review.services import save_review
from tests.factories import ModelVersionFactory, StudyFactory

pytestmark = pytest.mark.django_db

PNEUMONIA = {"COVID-19": 0.1, "NORMAL": 0.2, "PNEUMONIA": 0.7}


@pytest.fixture
def reviewed_by_two_versions(physician, model_version):
    older = ModelVersionFactory(version="2")
    for decision, label in [("confirm", ""), ("confirm", ""), ("correct", "NORMAL"), ("not_assessable", "")]:
        save_review(
            StudyFactory(predicted=True, probabilities=PNEUMONIA).pk,
            physician=physician,
            decision=decision,
            final_label=label,
        )
    save_review(
        StudyFactory(predicted=True, probabilities=PNEUMONIA, model_version=older).pk,
        physician=physician,
        decision="correct",
        final_label="COVID-19",
        fit_for_training=False,
    )
    StudyFactory(predicted=True, probabilities=PNEUMONIA)  # awaiting review
    return model_version, older


def test_feedback_per_model_version(reviewed_by_two_versions):
    current, older = reviewed_by_two_versions
    by_version = {f.model_version_id: f for f in model_feedback()}
    mine = by_version[current.pk]
    assert (mine.reviews, mine.agreed, mine.not_assessable, mine.samples_waiting) == (3, 2, 1, 3)
    assert mine.agreement_rate == pytest.approx(2 / 3)
    assert mine.confusion == {"PNEUMONIA": {"PNEUMONIA": 2, "NORMAL": 1}}
    assert mine.matrix == [("NORMAL", [0, 0]), ("PNEUMONIA", [1, 2])]
    theirs = by_version[older.pk]
    assert (theirs.reviews, theirs.agreed, theirs.samples_waiting) == (1, 0, 0)


def test_correction_counts_once_with_the_current_label(model_version, physician):
    study = StudyFactory(predicted=True, probabilities=PNEUMONIA)
    save_review(study.pk, physician=physician, decision="confirm")
    save_review(study.pk, physician=physician, decision="correct", final_label="NORMAL")
    (entry,) = model_feedback()
    assert (entry.reviews, entry.agreed, entry.samples_waiting) == (1, 0, 1)


def test_prometheus_exports_the_feedback_figures(reviewed_by_two_versions):
    current, _ = reviewed_by_two_versions
    name = str(current)
    labels = {"model_version": name, "alias": "champion"}
    assert REGISTRY.get_sample_value("deepmed_review_agreement_rate", labels) == pytest.approx(2 / 3)
    assert REGISTRY.get_sample_value("deepmed_review_reviews", labels) == 3
    assert REGISTRY.get_sample_value("deepmed_review_samples_waiting", labels) == 3
    assert (
        REGISTRY.get_sample_value(
            "deepmed_review_confusion", {**labels, "model_label": "PNEUMONIA", "physician_label": "NORMAL"}
        )
        == 1
    )
    assert REGISTRY.get_sample_value("deepmed_review_worklist_size") == 1
    assert b"deepmed_review_agreement_rate" in generate_latest(REGISTRY)


def test_metrics_endpoint_serves_them(client, reviewed_by_two_versions):
    body = client.get("/metrics").content.decode()
    assert "deepmed_review_reviews{" in body and "deepmed_review_worklist_size 1.0" in body
