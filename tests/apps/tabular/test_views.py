"""The tabular lab's HTML pages (Django test client): each page renders for its roles and is
refused to the others; a refused upload is shown on the form and stores nothing; a started
experiment's page follows it (status.json); the comparison ranks the algorithms with the best
value marked; the risk form is generated from the model's schema, posts through services.predict
(audited) and shows the preliminary result, its errors tied to their fields; batch CSV predict."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.audit.models import AuditEvent, Outcome
from apps.jobs.models import JobStatus
from apps.tabular.models import TabularDataset, TabularExperiment
from apps.tabular.selectors import experiment_progress
from apps.tabular.services import NOTICE, execute_experiment, start_experiment, upload_dataset
from ml_core.tabular.testing import make_frame

pytestmark = pytest.mark.django_db

ROW = {"glucose": "185", "bmi": "34", "blood_pressure": "80", "noise": "0", "smoker": "yes", "site": "north"}


def csv_file(n: int = 80, name: str = "table.csv", seed: int = 0) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, make_frame(n, seed=seed).to_csv(index=False).encode(), content_type="text/csv")


@pytest.fixture
def dataset(admin_user):
    return upload_dataset(actor=admin_user, name="risk", data=make_frame(120, seed=2).to_csv(index=False).encode(),
                          target="target")  # fmt: skip


@pytest.fixture
def experiment(admin_user, dataset, settings, tmp_path):
    settings.DEEPMED_MODEL_DIR = tmp_path / "models"
    config = {"grid": "quick", "folds": 3, "permutation_repeats": 1,
              "algorithms": ["logistic_regression", "naive_bayes"]}  # fmt: skip
    return execute_experiment(start_experiment(actor=admin_user, dataset=dataset, config=config).pk)


def pages(dataset_pk: int, experiment_pk: int) -> dict[str, str]:
    return {
        "lab": reverse("tabular-lab"),
        "dataset": reverse("tabular-dataset", args=[dataset_pk]),
        "plot": reverse("tabular-dataset-plot", args=[dataset_pk, "missingness"]),
        "experiment": reverse("tabular-experiment", args=[experiment_pk]),
        "status": reverse("tabular-experiment-status", args=[experiment_pk]),
        "compare": reverse("tabular-compare", args=[experiment_pk]),
        "comparison-chart": reverse("tabular-experiment-plot", args=[experiment_pk, "comparison"]),
    }


def test_lab_pages_are_for_admins_only(client, admin_user, physician, consenting_patient, experiment):
    urls = pages(experiment.dataset_id, experiment.pk)
    client.force_login(admin_user)
    for name, url in urls.items():
        response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
    for user in (physician, consenting_patient):
        client.force_login(user)
        for name, url in urls.items():
            assert client.get(url).status_code == 403, (user.role, name)
        assert client.post(reverse("tabular-upload"), {"name": "x", "file": csv_file()}).status_code == 403
        assert client.post(reverse("tabular-start", args=[experiment.dataset_id]), {}).status_code == 403
    assert TabularDataset.objects.count() == 1 and TabularExperiment.objects.count() == 1
    client.logout()
    assert client.get(urls["lab"]).status_code == 302  # to the log-in page


def test_risk_pages_are_for_physicians_and_admins(client, admin_user, physician, consenting_patient, experiment):
    urls = [reverse("tabular-risk-index"), reverse("tabular-risk", args=[experiment.pk])]
    for user in (physician, admin_user):
        client.force_login(user)
        for url in urls:
            assert client.get(url).status_code == 200, (user.role, url)
    client.force_login(consenting_patient)
    for url in urls:
        assert client.get(url).status_code == 403
    assert client.post(urls[1], ROW).status_code == 403
    assert client.post(reverse("tabular-risk-batch", args=[experiment.pk]), {"file": csv_file()}).status_code == 403
    assert not AuditEvent.objects.filter(action="tabular.predict").exists()


def test_menu_links_by_role(client, admin_user, physician):
    client.force_login(physician)
    menu = client.get(reverse("tabular-risk-index")).content.decode()
    assert f'href="{reverse("tabular-risk-index")}"' in menu and f'href="{reverse("tabular-lab")}"' not in menu
    client.force_login(admin_user)
    menu = client.get(reverse("tabular-lab")).content.decode()
    assert f'href="{reverse("tabular-risk-index")}"' in menu and f'href="{reverse("tabular-lab")}"' in menu


def test_upload_shows_the_profile(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("tabular-upload"), {"name": "pima-like", "target": "target", "file": csv_file()})
    dataset = TabularDataset.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("tabular-dataset", args=[dataset.pk])
    page = client.get(response["Location"]).content.decode()
    assert 'id="columns"' in page and 'data-column="glucose"' in page
    assert re.search(r'data-column="bmi">.*?class="num zeros">6<', page, re.S)  # suspicious zeros counted
    assert 'id="class-balance"' in page and "identifier" in page  # patient_id is dropped as an identifier
    assert 'data-plot="missingness"' in page and 'data-plot="class_balance"' in page
    plot = client.get(reverse("tabular-dataset-plot", args=[dataset.pk, "correlation"]))
    assert plot.status_code == 200 and plot["Content-Type"] == "image/png"
    assert b"".join(plot.streaming_content).startswith(b"\x89PNG")
    assert client.get(reverse("tabular-dataset-plot", args=[dataset.pk, "secrets"])).status_code == 404
    # the run form offers the columns as targets, the six algorithms and the grids
    assert '<option value="target" selected>' in page and 'value="random_forest"' in page and 'value="quick"' in page


@pytest.mark.parametrize(
    ("content", "target", "field", "words"),
    [
        (b"", "", "file", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "", "file", "PNG"),
        (make_frame(40).to_csv(index=False).encode(), "no_such_column", "target", "no_such_column"),
    ],
    ids=["empty", "binary", "unknown-target"],
)
def test_refused_upload_is_shown_on_the_field_and_nothing_is_stored(
    client, admin_user, _isolated_media, content, target, field, words
):
    client.force_login(admin_user)
    upload = SimpleUploadedFile("bad.csv", content, content_type="text/csv")
    response = client.post(reverse("tabular-upload"), {"name": "bad", "target": target, "file": upload})
    page = response.content.decode()
    assert response.status_code == 400
    error = re.search(rf'id="id_{field}_error">(.*?)</ul>', page, re.S)
    assert error and words.lower() in error.group(1).lower(), page
    assert re.search(rf'<input[^>]*name="{field}"[^>]*aria-invalid="true"', page)
    assert TabularDataset.objects.count() == 0
    assert not [p for p in _isolated_media.rglob("*") if p.is_file()] if _isolated_media.exists() else True


def run_form(**changes) -> dict:
    data = {
        "target": "target",
        "strip_whitespace": "on",
        "normalise_categories": "on",
        "zero_as_missing": "auto",
        "drop_identifiers": "on",
        "drop_constant": "on",
        "empty_columns": "error",
        "numeric_imputer": "median",
        "categorical_imputer": "most_frequent",
        "scaler": "standard",
        "select_method": "filter",
        "select_score": "anova_f",
        "select_fraction": "0.8",
        "select_wrapper": "rfecv",
        "algorithms": ["logistic_regression", "decision_tree"],
        "scoring": "f1_macro",
        "grid": "quick",
        "folds": "3",
        "imbalance": "auto",
        "test_size": "0.2",
        "decision_threshold": "0.5",
    }
    return {**data, **changes}


def test_run_form_starts_an_experiment_and_its_page_follows_it(
    client, admin_user, dataset, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks():
        response = client.post(reverse("tabular-start", args=[dataset.pk]), run_form(exclude=["site"]))
    experiment = TabularExperiment.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("tabular-experiment", args=[experiment.pk])
    assert experiment.config["algorithms"] == ["logistic_regression", "decision_tree"]
    assert experiment.config["scoring"] == "f1_macro" and experiment.config["grid"] == "quick"
    assert experiment.config["exclude"] == ["site"] and experiment.config["clean"]["zero_as_missing"] == "auto"
    assert experiment.config["select"]["method"] == "filter" and experiment.started_by == admin_user
    page = client.get(response["Location"]).content.decode()
    assert 'data-status="queued"' in page and "Queued" in page and 'id="cancel-experiment"' in page
    status = client.get(reverse("tabular-experiment-status", args=[experiment.pk])).json()
    assert status["status"] == "queued" and status["finished"] is False and status["fraction"] == 0


def test_run_form_refusal_is_shown_and_nothing_starts(client, admin_user, dataset):
    client.force_login(admin_user)
    response = client.post(reverse("tabular-start", args=[dataset.pk]), run_form(algorithms=[]))
    assert response.status_code == 400 and 'id="id_algorithms_error"' in response.content.decode()
    response = client.post(reverse("tabular-start", args=[dataset.pk]), run_form(exclude=["target", "site"]))
    assert response.status_code == 400 and re.search(r'id="id_exclude_error">.*?target', response.content.decode())
    assert TabularExperiment.objects.count() == 0


def test_run_refused_by_the_service_is_shown_on_the_form(client, admin_user, dataset, monkeypatch):
    from apps.tabular import services

    def refuse(dataset, config):
        raise services.TabularError("grid must be 'full' or 'quick'", code="invalid_config")

    monkeypatch.setattr(services, "validate_experiment_config", refuse)
    client.force_login(admin_user)
    response = client.post(reverse("tabular-start", args=[dataset.pk]), run_form())
    page = response.content.decode()
    assert response.status_code == 400 and re.search(r'id="run-errors".*?grid must be', page, re.S)
    assert TabularExperiment.objects.count() == 0


def test_progress_sentence_and_fraction():
    exp = TabularExperiment(status=JobStatus.RUNNING, config={"algorithms": ["logistic_regression", "svm"]})
    exp.progress = {"event": "fold", "algorithm": "svm", "grid_point": 2, "grid_points": 4, "folds_done": 1,
                    "folds": 3}  # fmt: skip
    payload = experiment_progress(exp)
    assert payload["text"] == "Support vector machine (algorithm 2 of 2): grid point 2 of 4, 1 of 3 folds done"
    assert payload["fraction"] == pytest.approx((1 + 4 / 12) / 2, abs=1e-4) and payload["finished"] is False
    exp.progress = {"event": "algorithm_done", "algorithm": "logistic_regression"}
    assert experiment_progress(exp)["fraction"] == 0.5
    exp.status = JobStatus.SUCCEEDED
    assert experiment_progress(exp)["fraction"] == 1.0 and experiment_progress(exp)["finished"] is True


def test_experiment_page_and_comparison(client, admin_user, experiment):
    client.force_login(admin_user)
    page = client.get(reverse("tabular-experiment", args=[experiment.pk])).content.decode()
    assert 'data-status="succeeded"' in page and 'id="test-metrics"' in page and 'id="compare-link"' in page
    assert 'data-plot="roc"' in page and 'id="cancel-experiment"' not in page
    page = client.get(reverse("tabular-compare", args=[experiment.pk])).content.decode()
    rows = re.findall(r'<tr data-algorithm="(\w+)"', page)
    assert sorted(rows) == ["logistic_regression", "naive_bayes"]
    assert rows[0] == experiment.chosen_algorithm  # ranked by the CV score that chose it
    assert re.search(rf'<tr data-algorithm="{rows[0]}" class="row-champion">', page)
    # one best value per column (ties aside), highlighted and said in words
    assert (
        page.count('class="num better"') >= 11 and page.count("✓ best") == page.count('class="num better"') + 1
    )  # + the caption's key
    assert 'id="comparison-chart"' in page
    chart = client.get(reverse("tabular-experiment-plot", args=[experiment.pk, "comparison"]))
    assert chart.status_code == 200 and b"".join(chart.streaming_content).startswith(b"\x89PNG")


def test_compare_of_an_unfinished_experiment_goes_back(client, admin_user, dataset):
    client.force_login(admin_user)
    exp = TabularExperiment.objects.create(dataset=dataset, config={"algorithms": ["svm"]})
    response = client.get(reverse("tabular-compare", args=[exp.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("tabular-experiment", args=[exp.pk])


def test_risk_form_is_generated_from_the_schema(client, physician, experiment):
    client.force_login(physician)
    page = client.get(reverse("tabular-risk", args=[experiment.pk])).content.decode()
    glucose = re.search(r'<input[^>]*name="glucose"[^>]*>', page).group(0)
    assert 'type="number"' in glucose and 'min="' in glucose and 'max="' in glucose and 'step="any"' in glucose
    assert "mg/dl" in page and 'aria-describedby="id_glucose_helptext"' in glucose
    smoker = re.search(r'<select[^>]*name="smoker"[^>]*>(.*?)</select>', page, re.S).group(1)
    assert '<option value="yes">' in smoker and '<option value="no">' in smoker
    assert 'name="patient_id"' not in page and 'name="constant"' not in page  # dropped by the cleaner
    assert NOTICE in page and 'id="model-version"' in page


def test_risk_form_posts_and_shows_the_preliminary_result(client, physician, experiment):
    client.force_login(physician)
    response = client.post(reverse("tabular-risk", args=[experiment.pk]), ROW)
    page = response.content.decode()
    assert response.status_code == 200 and 'id="risk-result"' in page
    label = re.search(r'id="predicted-label">(.*?)<', page).group(1)
    assert label == "1" and re.search(r'id="predicted-probability">\d+ %<', page)
    assert re.search(r'<table class="table" id="top-features">.*?<th scope="row">glucose</th>', page, re.S)
    sha = json.loads((Path(experiment.model_dir) / "manifest.json").read_text())["model_sha256"]
    assert sha[:12] in page and NOTICE in page
    event = AuditEvent.objects.get(action="tabular.predict")
    assert event.actor == physician and event.outcome == Outcome.ALLOWED and event.detail["rows"] == 1


def test_risk_form_errors_are_tied_to_their_fields(client, physician, experiment):
    client.force_login(physician)
    response = client.post(reverse("tabular-risk", args=[experiment.pk]), ROW | {"glucose": "5000", "bmi": "heavy"})
    page = response.content.decode()
    assert response.status_code == 400 and 'id="risk-result"' not in page
    assert re.search(r'id="id_bmi_error">.*?number', page, re.S)  # the form's own check
    assert re.search(r'<input[^>]*name="bmi"[^>]*aria-invalid="true"', page)
    # with only the out-of-range value, the schema (services.predict) refuses it on its field
    response = client.post(reverse("tabular-risk", args=[experiment.pk]), ROW | {"glucose": "5000"})
    page = response.content.decode()
    assert response.status_code == 400
    assert re.search(r'id="id_glucose_error">.*?outside the allowed range', page, re.S)
    glucose = re.search(r'<input[^>]*name="glucose"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in glucose and "id_glucose_error" in glucose
    assert AuditEvent.objects.get(action="tabular.predict").outcome == Outcome.INVALID


def test_batch_csv_predict_table_and_download(client, physician, experiment):
    client.force_login(physician)
    frame = make_frame(30, seed=5).drop(columns=["target"])
    url = reverse("tabular-risk-batch", args=[experiment.pk])

    def upload():
        return SimpleUploadedFile("patients.csv", frame.to_csv(index=False).encode(), content_type="text/csv")

    page = client.post(url, {"file": upload(), "format": "html"}).content.decode()
    assert 'id="batch-results"' in page and page.count('<td class="num">') >= 30 and NOTICE in page
    response = client.post(url, {"file": upload(), "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 30 and {"predicted_label", "probability", "model_sha256", "notice"} <= set(rows[0])
    assert all(0 <= float(r["probability"]) <= 1 for r in rows) and rows[0]["notice"] == NOTICE
    assert AuditEvent.objects.filter(action="tabular.predict", outcome=Outcome.ALLOWED).count() == 2


def test_batch_csv_errors_name_the_row_and_column(client, physician, experiment):
    client.force_login(physician)
    frame = make_frame(30, seed=5).drop(columns=["target"])
    frame.loc[frame.index[3], "glucose"] = 9999
    upload = SimpleUploadedFile("patients.csv", frame.to_csv(index=False).encode(), content_type="text/csv")
    response = client.post(reverse("tabular-risk-batch", args=[experiment.pk]), {"file": upload})
    page = response.content.decode()
    assert response.status_code == 400 and 'id="batch-results"' not in page
    assert re.search(r"id=\"id_file_error\">.*?line 5 of the file.*?glucose", page, re.S)
    empty = SimpleUploadedFile("empty.csv", b"", content_type="text/csv")
    response = client.post(reverse("tabular-risk-batch", args=[experiment.pk]), {"file": empty})
    assert response.status_code == 400 and 'id="id_file_error"' in response.content.decode()


def test_risk_form_of_an_unfinished_experiment_goes_back(client, physician, dataset):
    client.force_login(physician)
    exp = TabularExperiment.objects.create(dataset=dataset, config={"algorithms": ["svm"]})
    response = client.get(reverse("tabular-risk", args=[exp.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("tabular-risk-index")


def test_promote_and_rollback_buttons_call_the_services(client, admin_user, physician, experiment, monkeypatch):
    """The comparison page's promotion card shows the gates and calls services.promote_experiment /
    rollback_model (their own rules are tested with the registry); a refusal becomes a message."""
    from apps.tabular import selectors, services
    from apps.tabular.errors import TabularError

    calls = []
    gates = {"passed": False, "gates": [
        {"key": "f1_macro", "name": "test macro-F1", "passed": False, "value": 0.61, "threshold": 0.7},
        {"key": "roc_auc", "name": "test ROC-AUC", "passed": True, "value": 0.9, "threshold": 0.75},
    ]}  # fmt: skip
    monkeypatch.setattr(selectors, "check_gates", lambda exp: gates, raising=False)

    def promote_experiment(*, actor, experiment, override_reason=""):
        calls.append(("promote", actor, experiment.pk, override_reason))
        if not override_reason:
            raise TabularError("the model fails the gates: f1_macro", code="gates_failed")

    monkeypatch.setattr(services, "promote_experiment", promote_experiment, raising=False)
    monkeypatch.setattr(services, "rollback_model", lambda **kw: calls.append(("rollback", kw["name"])), raising=False)
    client.force_login(admin_user)
    page = client.get(reverse("tabular-compare", args=[experiment.pk])).content.decode()
    assert re.search(r'data-gate="f1_macro">.*?✗ fail.*?0.61.*?0.7', page, re.S)
    assert 'id="override-reason"' in page and "Override the gates and promote" in page and 'id="rollback"' in page
    url = reverse("tabular-promote", args=[experiment.pk])
    response = client.post(url, follow=True)
    assert "Not promoted: the model fails the gates" in response.content.decode()
    response = client.post(url, {"override_reason": "  reviewed by the board  "}, follow=True)
    assert "is now the champion" in response.content.decode()
    assert calls[1] == ("promote", admin_user, experiment.pk, "reviewed by the board")
    client.post(reverse("tabular-rollback", args=[experiment.pk]), {"name": "risk"})
    assert calls[-1] == ("rollback", "risk")
    client.force_login(physician)
    assert client.post(url, {"override_reason": "x"}).status_code == 403
    assert client.post(reverse("tabular-rollback", args=[experiment.pk]), {"name": "risk"}).status_code == 403
    assert len(calls) == 3


def test_cancel_a_queued_experiment_and_a_failed_one_shows_its_error(client, admin_user, physician, dataset):
    exp = TabularExperiment.objects.create(dataset=dataset, config={"algorithms": ["svm"]}, started_by=admin_user)
    url = reverse("tabular-experiment-cancel", args=[exp.pk])
    client.force_login(physician)
    assert client.post(url).status_code == 403
    client.force_login(admin_user)
    page = client.post(url, follow=True).content.decode()
    exp.refresh_from_db()
    assert exp.status == JobStatus.CANCELLED and "is cancelled" in page and 'id="cancel-experiment"' not in page
    assert AuditEvent.objects.filter(action="tabular.experiment.cancel", actor=admin_user).exists()
    failed = TabularExperiment.objects.create(
        dataset=dataset, config={"algorithms": ["svm"]}, status=JobStatus.FAILED, error="too_few_rows: 12 rows"
    )
    page = client.get(reverse("tabular-experiment", args=[failed.pk])).content.decode()
    assert re.search(r'<section class="card" id="experiment-error-card" >\s*<h2>Error</h2><pre[^>]*>too_few_rows', page)
    assert client.get(reverse("tabular-experiment-status", args=[failed.pk])).json()["finished"] is True
