"""Quality gates, promotion and rollback on packages evaluated on the same held-out set.

The tiny packages have random weights: the gate thresholds are set per test so one gate, and
only that one, decides."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.modelops import selectors, services
from apps.modelops.models import Alias, Promotion

pytestmark = pytest.mark.django_db


@pytest.fixture
def candidate(modelops_settings, champion, second_package):
    return services.register_model_version(second_package, alias="challenger")


def _gate(gates, name):
    return next(g for g in gates if g.name == name)


def test_evaluation_is_on_the_held_out_set_and_cached(candidate, monkeypatch):
    report = services.evaluate_version(candidate)
    assert report["n"] == 12  # 4 test images x 3 classes
    assert set(report["per_class_recall"]) == {"COVID-19", "NORMAL", "PNEUMONIA"}
    assert sum(sum(row["counts"]) for row in report["confusion_rows"]) == 12
    assert report["latency_ms"]["p95"] > 0
    candidate.refresh_from_db()
    assert candidate.evaluation["holdout_fingerprint"] == report["holdout_fingerprint"]
    monkeypatch.setattr(
        services.gates, "_score_package", lambda *a: pytest.fail("re-evaluated an unchanged held-out set")
    )
    assert services.evaluate_version(candidate) == report


def test_scores_a_training_run_computed_today_are_reused_and_stale_ones_are_not(candidate, monkeypatch):
    from ml_core import evaluate

    scores = services.gates.score_held_out(candidate.package_uri)
    stale = services.gates.HeldOutScores("a held-out set since replaced", scores.report)
    real = evaluate.evaluate_package
    calls = []
    monkeypatch.setattr(evaluate, "evaluate_package", lambda *a, **k: calls.append(a[0]) or real(*a, **k))

    report = services.evaluate_version(candidate, scores=scores)
    assert calls == [] and report["n"] == 12 and report["latency_ms"]["p95"] > 0
    assert report["macro_f1"] == scores.report["macro_f1"]
    services.evaluate_version(candidate, force=True, scores=stale)
    assert calls == [candidate.package_uri]  # scored again on today's set


@pytest.mark.parametrize(
    "setting,value,gate",
    [
        ("DEEPMED_GATE_F1_FLOOR", 1.01, "macro_f1_floor"),
        ("DEEPMED_GATE_RECALL_FLOOR", 1.01, "class_recall_floor"),
        ("DEEPMED_GATE_P95_LATENCY_MS", 0.0, "p95_latency_ms"),
        ("DEEPMED_GATE_ONNX_PARITY", -1.0, "onnx_parity"),
        ("DEEPMED_GATE_REQUIRE_OOD", True, "ood_calibrated"),  # the tiny package has no OOD gate
        ("DEEPMED_GATE_F1_TOLERANCE", -1.01, "macro_f1_vs_champion"),
    ],
)
def test_each_failing_gate_blocks_promotion(modelops_settings, candidate, champion, setting, value, gate):
    assert all(g.passed for g in services.check_gates(candidate))
    setattr(modelops_settings, setting, value)
    with pytest.raises(services.GatesFailed) as failure:
        services.promote_version(candidate)
    assert [g.name for g in failure.value.failed] == [gate]
    assert selectors.get_champion() == champion
    assert AuditEvent.objects.filter(action="model.promote", outcome="denied").exists()


def test_promote_then_rollback_switches_the_served_version(
    candidate, champion, admin_user, queued_study, django_capture_on_commit_callbacks
):
    promotion = services.promote_version(candidate, actor=admin_user)
    assert promotion.previous == champion and selectors.get_champion() == candidate
    champion.refresh_from_db()
    assert champion.alias == Alias.ARCHIVED
    assert services.load_predictor(selectors.get_champion()).meta.version == "2"
    assert AuditEvent.objects.filter(action="model.promote", actor=admin_user, object_id=str(candidate.pk)).exists()

    rollback = services.rollback_champion(actor=admin_user)
    assert rollback.version == champion and selectors.get_champion() == champion
    assert AuditEvent.objects.filter(action="model.rollback").exists()
    # The next prediction is made by the restored champion, without any restart.
    from workers.inference import run_inference

    with django_capture_on_commit_callbacks(execute=False):
        run_inference(str(queued_study.pk))
    assert queued_study.predictions.get(role="champion").model_version_label == "1"


def test_override_needs_a_written_reason_and_is_audited(modelops_settings, candidate, admin_user):
    modelops_settings.DEEPMED_GATE_F1_FLOOR = 1.01
    with pytest.raises(services.GatesFailed):
        services.promote_version(candidate, actor=admin_user, override_reason="   ")
    promotion = services.promote_version(candidate, actor=admin_user, override_reason="urgent fix, reviewed by CMO")
    assert promotion.override_reason == "urgent fix, reviewed by CMO"
    event = AuditEvent.objects.get(action="model.promote.override")
    assert event.detail["failed_gates"] == ["macro_f1_floor"] and "CMO" in event.detail["override_reason"]


def test_promote_api_returns_409_with_failed_gates(modelops_settings, candidate, admin_user, api_client):
    api_client.force_authenticate(admin_user)
    modelops_settings.DEEPMED_GATE_RECALL_FLOOR = 1.01
    response = api_client.post("/api/v1/models/cxr-tiny/versions/2/promote", {}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "gates_failed" and [g["name"] for g in error["details"]["failed_gates"]] == [
        "class_recall_floor"
    ]
    modelops_settings.DEEPMED_GATE_RECALL_FLOOR = 0.0
    assert (
        api_client.post("/api/v1/models/cxr-tiny/versions/2/promote", {}, format="json").json()["champion"]
        == "cxr-tiny v2 @champion"
    )
    assert api_client.post("/api/v1/models/cxr-tiny/rollback").json()["champion"] == "cxr-tiny v1 @champion"
    assert list(Promotion.objects.values_list("action", flat=True)) == ["rollback", "promote"]


@pytest.mark.parametrize(
    "figures,passes",
    [
        # Starter v2 (trained from scratch): macro-F1 0.888 on the held-out split.
        (
            {"macro_f1": 0.888, "per_class_recall": {"COVID-19": 0.932, "NORMAL": 0.824, "PNEUMONIA": 0.904}},
            {"macro_f1_floor": False, "class_recall_floor": False},
        ),
        # A model that is good on average but misses most of one class.
        (
            {"macro_f1": 0.935, "per_class_recall": {"COVID-19": 0.99, "NORMAL": 0.86, "PNEUMONIA": 0.97}},
            {"macro_f1_floor": True, "class_recall_floor": False},
        ),
        # Starter v3 (fine-tuned EfficientNet-Lite0, plain temperature scaling): 0.923, lowest recall 0.832.
        (
            {"macro_f1": 0.923, "per_class_recall": {"COVID-19": 0.992, "NORMAL": 0.832, "PNEUMONIA": 0.948}},
            {"macro_f1_floor": False, "class_recall_floor": False},
        ),
        # Starter v4 (soup of v3.2 and its fine-tune): 0.950, lowest recall 0.926.
        (
            {"macro_f1": 0.950, "per_class_recall": {"COVID-19": 0.992, "NORMAL": 0.931, "PNEUMONIA": 0.926}},
            {"macro_f1_floor": True, "class_recall_floor": True},
        ),
        # A quick warm-start retraining run from v4 on the 2-core CPU (bench_retraining.py): 0.940, 0.911.
        (
            {"macro_f1": 0.940, "per_class_recall": {"COVID-19": 0.992, "NORMAL": 0.916, "PNEUMONIA": 0.911}},
            {"macro_f1_floor": True, "class_recall_floor": True},
        ),
    ],
)
def test_default_floors_are_at_the_transfer_learning_level(
    modelops_settings, champion, second_package, monkeypatch, figures, passes
):
    """With the shipped defaults (not the lenient test ones), models at the from-scratch (v2) and
    first fine-tuned (v3) levels fail, one class left behind fails the recall floor, and v4 and a
    quick retraining run from it pass both."""
    import deepmed_web.settings as shipped

    modelops_settings.DEEPMED_GATE_F1_FLOOR = shipped.DEEPMED_GATE_F1_FLOOR
    modelops_settings.DEEPMED_GATE_RECALL_FLOOR = shipped.DEEPMED_GATE_RECALL_FLOOR
    candidate = services.register_model_version(second_package, alias="challenger")
    monkeypatch.setattr(services.gates, "evaluate_version", lambda version, **kw: dict(figures))
    gates = {g.name: g for g in services.check_gates(candidate)}
    assert {name: gates[name].passed for name in passes} == passes
    assert gates["macro_f1_floor"].threshold == shipped.DEEPMED_GATE_F1_FLOOR >= 0.93
    assert gates["class_recall_floor"].threshold == shipped.DEEPMED_GATE_RECALL_FLOOR >= 0.88


def test_promote_without_a_held_out_set_is_409_no_holdout(
    modelops_settings, candidate, admin_user, api_client, tmp_path
):
    modelops_settings.DEEPMED_BASE_DATASET_DIR = tmp_path / "no-dataset"
    api_client.force_authenticate(admin_user)
    response = api_client.post("/api/v1/models/cxr-tiny/versions/2/promote", {}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "no_holdout" and "no held-out set" in error["message"]
    assert not Promotion.objects.exists()


def test_web_promote_shows_a_refusal_as_a_message_and_goes_back(modelops_settings, candidate, admin_user, client):
    client.force_login(admin_user)
    modelops_settings.DEEPMED_GATE_RECALL_FLOOR = 1.01
    url = f"/modelops/versions/{candidate.pk}/promote/"
    refused = client.post(url, {"next": "/modelops/compare/?a=1&b=2"})
    assert refused.status_code == 302 and refused["Location"] == "/modelops/compare/?a=1&b=2"
    elsewhere = client.post(url, {"next": "https://evil.example/phish"})  # never an open redirect
    assert elsewhere.status_code == 302 and elsewhere["Location"] == "/modelops/"
    page = client.get("/modelops/").content.decode()
    assert "Not promoted: the version fails quality gates: class_recall_floor. Give a written reason to override." in (
        page
    )
    modelops_settings.DEEPMED_BASE_DATASET_DIR = modelops_settings.DATA_DIR / "no-dataset"
    candidate.evaluation = {}
    candidate.save(update_fields=["evaluation"])
    missing = client.post(url)  # was a 500: the held-out set is gone
    assert missing.status_code == 302 and missing["Location"] == "/modelops/"
    page = client.get("/modelops/").content.decode()
    assert "Not promoted: no held-out set at" in page and "written reason" not in page
    assert selectors.get_champion() != candidate
