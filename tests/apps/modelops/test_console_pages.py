"""Issue 16, admins: the console lands after log-in, shows the champion's held-out figures, offers
the model's classes for augmentation, compares only two different versions (difference column,
the better value, readable gate badges) and the run page's progress, time left and cancel message."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.modelops import selectors, services
from apps.modelops.models import ModelVersion, RunStatus, TrainingRun

pytestmark = pytest.mark.django_db


def test_admin_lands_on_the_console_after_log_in(client, admin_user, physician):
    from django.urls import reverse

    client.force_login(admin_user)
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"] == reverse("modelops-console")
    client.force_login(physician)
    assert client.get(reverse("home")).status_code == 200  # a physician's start page, not the console


def test_run_timing_states_fraction_and_time_left():
    now = timezone.now()
    run = TrainingRun(status=RunStatus.QUEUED, progress={})
    assert selectors.run_timing(run, now=now)["state"] == "queued"
    run = TrainingRun(status=RunStatus.RUNNING, started_at=now - timezone.timedelta(seconds=30), progress={})
    timing = selectors.run_timing(run, now=now)
    assert timing == {"state": "waiting_first_epoch", "fraction": 0.0, "elapsed_s": 30, "eta_s": None}
    run.progress = {
        "phase": "step",
        "epoch": 2,
        "epochs": 4,
        "step": 5,
        "steps_per_epoch": 10,
        "history": [{"epoch": 1}],
    }
    timing = selectors.run_timing(run, now=now)
    assert timing["state"] == "training" and timing["fraction"] == pytest.approx(0.375)
    assert timing["eta_s"] == 50  # 30 s for 37.5 %: 50 s for the rest
    run.progress = {"phase": "epoch", "epoch": 1, "epochs": 4, "history": []}
    assert selectors.run_timing(run, now=now)["state"] == "waiting_first_epoch"  # no stored epoch yet
    run.status, run.finished_at = RunStatus.SUCCEEDED, now
    done = selectors.run_timing(run, now=now + timezone.timedelta(hours=1))
    assert done == {"state": "succeeded", "fraction": 1.0, "elapsed_s": 30, "eta_s": None}


def test_comparison_rows_have_a_difference_and_the_better_side():
    a = {
        "macro_f1": 0.70,
        "accuracy": 0.8,
        "per_class_recall": {"X": 0.5},
        "latency_ms": {"p50": 10, "p95": 20},
        "calibration": {"ece": 0.05},
        "n": 30,
        "roc": {"X": {"auc": 0.9}},
    }
    b = {
        "macro_f1": 0.75,
        "accuracy": 0.8,
        "per_class_recall": {"X": 0.4},
        "latency_ms": {"p50": 12, "p95": 15},
        "calibration": {"ece": 0.08},
        "n": 30,
        "roc": {"X": {"auc": 0.95}},
    }
    rows = {r["name"]: r for r in selectors.comparison_rows([a, b])}
    assert rows["macro-F1"]["diff"] == pytest.approx(0.05) and rows["macro-F1"]["better"] == "b"
    assert rows["accuracy"]["better"] == "" and rows["recall X"]["better"] == "a"
    assert rows["latency p95 (ms)"]["better"] == "b" and rows["latency p50 (ms)"]["better"] == "a"  # lower wins
    assert rows["ECE (calibration)"]["better"] == "a" and rows["held-out images"]["better"] == ""
    assert rows["AUC X"]["better"] == "b"


def test_gate_values_are_readable():
    gates = [
        services.GateResult("class_recall_floor", False, {"COVID-19": 0.41, "NORMAL": 0.3}, 0.5, "every class"),
        services.GateResult("ood_calibrated", True, False, True, "ood"),
        services.GateResult("onnx_parity", False, None, 0.01, "parity"),
    ]
    rows = selectors.gate_rows(gates)
    assert rows[0]["name"] == "Recall of every class" and rows[0]["value"] == "COVID-19 0.41, NORMAL 0.3"
    assert (rows[1]["value"], rows[1]["threshold"]) == ("no", "yes") and rows[2]["value"] == "—"
    assert not any("{" in r["value"] or "True" in r["value"] for r in rows)


def test_held_out_summary_prefers_the_shared_evaluation():
    version = ModelVersion(metrics={"macro_f1": 0.6}, evaluation={})
    assert selectors.held_out_summary(version)["source"] == "package"
    version.evaluation = {"macro_f1": 0.7, "accuracy": 0.8, "latency_ms": {"p95": 12.0}, "n": 24}
    assert selectors.held_out_summary(version) == {
        "source": "shared",
        "macro_f1": 0.7,
        "accuracy": 0.8,
        "p95_ms": 12.0,
        "n": 24,
    }
    assert selectors.held_out_summary(ModelVersion())["source"] == ""


def test_compare_refuses_the_same_version(client, admin_user, champion, modelops_settings):
    with pytest.raises(services.SameVersion):
        services.compare_versions(champion, champion)
    client.force_login(admin_user)
    response = client.get(f"/modelops/compare/?a={champion.pk}&b={champion.pk}", follow=True)
    assert response.redirect_chain[-1][0] == "/modelops/"
    assert "choose two different versions" in response.content.decode()


def test_console_evaluates_the_champion_and_offers_its_classes(client, admin_user, champion, modelops_settings):
    client.force_login(admin_user)
    page = client.get("/modelops/").content.decode()
    assert 'id="evaluate-champion"' in page and 'id="champion-f1">—<' in page
    for cls in champion.classes:
        assert f'<option value="{cls}"' in page  # the augmentation form's class choice
    client.post(f"/modelops/versions/{champion.pk}/evaluate/")
    page = client.get("/modelops/").content.decode()
    assert 'id="evaluate-champion"' not in page and 'id="champion-f1">—<' not in page
    champion.refresh_from_db()
    assert f'id="champion-f1">{champion.evaluation["macro_f1"]:.3f}<' in page


def test_compare_page_shows_difference_and_badges(client, admin_user, champion, second_package, modelops_settings):
    other = services.register_model_version(second_package)
    client.force_login(admin_user)
    page = client.get(f"/modelops/compare/?a={champion.pk}&b={other.pk}").content.decode()
    assert "difference (B − A)" in page and 'class="num diff"' in page
    assert "badge-pass" in page or "badge-fail" in page
    assert "{'" not in page.split('id="compare-data"')[0]  # no Python dict anywhere on the page


def test_cancel_says_what_happened(client, admin_user):
    run = TrainingRun.objects.create(params={"architecture": "cxr_tiny", "tier": "quick"})
    client.force_login(admin_user)
    page = client.get(f"/modelops/runs/{run.pk}/").content.decode()
    assert 'data-confirm="Cancel training run' in page and "Queued: waiting for a training worker" in page
    response = client.post(f"/modelops/runs/{run.pk}/cancel/", follow=True)
    assert f"Training run #{run.pk} is cancelled." in response.content.decode()


def test_status_payload_streams_timing_and_log_tail(client, admin_user):
    run = TrainingRun.objects.create(
        params={}, status=RunStatus.RUNNING, started_at=timezone.now(), logs="x" * 9000 + "last line\n"
    )
    client.force_login(admin_user)
    body = client.get(f"/modelops/runs/{run.pk}/status.json").json()
    assert body["timing"]["state"] == "waiting_first_epoch"
    assert body["logs_tail"].endswith("last line\n") and len(body["logs_tail"]) == 8000
