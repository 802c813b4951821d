"""Drift scoring over a synthetic stream of stored predictions: an unshifted stream passes,
a shifted one is scored above the threshold, marked for retraining review and exported."""

import json
import shutil

import numpy as np
import pytest
from django.utils import timezone

from apps.monitoring import selectors, services


def _stream(version, owner, n: int, *, seed: int, shifted: bool = False, hours_ago: float = 1.0):
    """n stored predictions of `version`: label mix and confidence move when `shifted`."""
    from apps.studies.models import Prediction, Study

    rng = np.random.default_rng(seed)
    classes = version.classes
    mix = np.linspace(1, 2, len(classes))[:: -1 if shifted else 1]
    labels = rng.choice(classes, size=n, p=mix / mix.sum())
    confidences = rng.beta(3, 3, size=n) if shifted else rng.beta(8, 2, size=n)
    ood = rng.normal(4.0 if shifted else 3.0, 0.5, size=n)
    studies = Study.objects.bulk_create(
        Study(owner=owner, image="studies/x.png", sha256=f"{seed}-{i}", original_format="png", status="predicted")
        for i in range(n)
    )
    predictions = Prediction.objects.bulk_create(
        Prediction(
            study=s,
            model_version=version,
            model_name="cxr",
            model_version_label=version.version,
            label=str(label),
            probabilities={},
            confidence=float(c),
            latency_ms=5.0,
            ood_score=float(o),
        )
        for s, label, c, o in zip(studies, labels, confidences, ood)
    )
    Prediction.objects.filter(pk__in=[p.pk for p in predictions]).update(
        created_at=timezone.now() - timezone.timedelta(hours=hours_ago)
    )


@pytest.fixture
def baseline(settings, champion, patient):
    """The champion's first 150 predictions (2 days ago) are its reference."""
    settings.DEEPMED_DRIFT_REFERENCE_SIZE = 150
    settings.DEEPMED_DRIFT_WINDOW_HOURS = 24
    _stream(champion, patient, 150, seed=0, hours_ago=48)
    return champion


def test_no_reference_no_score(champion, patient, settings):
    settings.DEEPMED_DRIFT_REFERENCE_SIZE = 50
    _stream(champion, patient, 20, seed=0)
    assert selectors.drift_reference(champion) is None
    assert services.compute_drift_score(champion) is None


def test_an_unshifted_window_is_scored_and_not_flagged(baseline, patient):
    _stream(baseline, patient, 120, seed=1)
    score = services.compute_drift_score(baseline)
    assert score.n == 120 and score.reference_source == "first_window"
    assert score.score is not None and score.score < score.threshold
    assert not score.drifted
    assert not selectors.needs_retraining_review(baseline) and selectors.open_retraining_reviews() == []


def test_a_shifted_window_marks_the_model_for_retraining_review(baseline, patient):
    _stream(baseline, patient, 120, seed=2, shifted=True)
    score = services.compute_drift_score(baseline)
    assert score.n == 120  # the 48-hour-old reference predictions are not in the window
    assert score.drifted and score.score > score.threshold
    assert score.components["confidence_ks"] > 1.0
    [review] = selectors.open_retraining_reviews()
    assert review.model_version == baseline and review.drift_score == score
    assert "drift score" in review.reason

    again = services.compute_drift_score(baseline)  # still drifted: the same review, updated
    assert [r.pk for r in selectors.open_retraining_reviews()] == [review.pk]
    assert selectors.open_retraining_reviews()[0].drift_score == again

    services.resolve_retraining_review(review, note="retrained")
    assert not selectors.needs_retraining_review(baseline)


def test_a_window_too_small_gets_no_verdict(baseline, patient, settings):
    settings.DEEPMED_DRIFT_MIN_SAMPLES = 30
    _stream(baseline, patient, 10, seed=3, shifted=True)
    score = services.compute_drift_score(baseline)
    assert score.n == 10 and score.score is None and not score.drifted


def test_training_reference_in_the_package_is_preferred(tiny_package, tmp_path, patient, db):
    from apps.modelops.services import register_model_version
    from ml_core.drift import build_reference

    package = shutil.copytree(tiny_package, tmp_path / "pkg")
    meta = json.loads((package / "package.json").read_text())
    rng = np.random.default_rng(0)
    classes = meta["classes"]
    # The training reference says: always the first class, always confident.
    meta.setdefault("extra", {})["drift_reference"] = build_reference(
        [classes[0]] * 500, rng.beta(20, 1, size=500).tolist(), classes
    ).to_dict()
    (package / "package.json").write_text(json.dumps(meta))
    version = register_model_version(package, alias="champion")
    assert selectors.drift_reference(version).reference.source == "training"
    _stream(version, patient, 100, seed=4)
    score = services.compute_drift_score(version)
    assert score.reference_source == "training" and score.drifted


def test_beat_task_scores_the_champion_and_metrics_export_it(baseline, patient, client):
    from workers.monitoring import compute_drift_scores

    _stream(baseline, patient, 120, seed=5, shifted=True)
    [score_id] = compute_drift_scores.apply().result  # .get() refuses to run beside a worker thread
    text = client.get("/metrics").content.decode()
    version = baseline.version
    assert f'deepmed_drift_score{{model_version="{version}",signal="overall"}}' in text
    assert f'deepmed_retraining_review_open{{model_version="{version}"}} 1.0' in text
    from apps.monitoring.models import DriftScore

    assert DriftScore.objects.get(pk=score_id).drifted


def test_drift_scoring_is_on_the_beat_schedule(settings):
    from deepmed_web.celery import app

    app.finalize()
    entry = app.conf.beat_schedule["compute-drift-scores"]
    assert entry["task"] == "workers.monitoring.compute_drift_scores"
    assert entry["schedule"] == float(settings.DEEPMED_DRIFT_CHECK_SECONDS)
    assert app.amqp.router.route({}, entry["task"])["queue"].name == "default"


def test_drift_api_is_for_admins_and_shows_the_open_review(baseline, patient, admin_user, api_client):
    _stream(baseline, patient, 120, seed=6, shifted=True)
    score = services.compute_drift_score(baseline)
    api_client.force_authenticate(patient)
    assert api_client.get("/api/v1/monitoring/drift").status_code == 403
    api_client.force_authenticate(admin_user)
    body = api_client.get("/api/v1/monitoring/drift").json()
    [latest] = body["latest"]
    assert latest["model_version"] == baseline.version and latest["drifted"] is True
    assert latest["score"] == pytest.approx(score.score)
    assert [r["model_version"] for r in body["open_reviews"]] == [baseline.version]
