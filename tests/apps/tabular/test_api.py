"""/api/v1/tabular end to end: an admin uploads a generated CSV, trains a reduced grid
(in-process, as the worker would), promotes it through the gates; a physician lists the models
and gets risk predictions from the champion; bad rows are 400 invalid_request naming the field;
patients and anonymous callers are refused; every prediction is audited."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.audit.models import AuditEvent, Outcome
from apps.jobs.models import JobStatus
from apps.tabular.models import TabularDataset, TabularExperiment
from apps.tabular.services import execute_experiment
from ml_core.tabular.testing import make_frame
from tests.factories import TabularExperimentFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/tabular"
QUICK = {
    "target": "target",
    "grid": "quick",
    "folds": 3,
    "permutation_repeats": 1,
    "algorithms": ["logistic_regression", "naive_bayes"],
}
ROW = {"glucose": 185, "bmi": 34.0, "blood_pressure": 80, "noise": 0.0, "smoker": "yes", "site": "north"}
LOW = {"glucose": 85, "bmi": 22.0, "blood_pressure": 70, "noise": 0.0, "smoker": "no", "site": "south"}


def csv_file(n: int = 120, seed: int = 2, name: str = "risk.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, make_frame(n, seed=seed).to_csv(index=False).encode(), content_type="text/csv")


@pytest.fixture
def trained(api_as, admin_user, settings, tmp_path, lenient_gates):
    """Uploaded, trained and promoted through the API: the champion of model 'diabetes-risk'."""
    settings.DEEPMED_MODEL_DIR = tmp_path / "models"
    api = api_as(admin_user)
    upload = api.post(f"{API}/datasets", {"file": csv_file(), "name": "Diabetes risk"}, format="multipart")
    assert upload.status_code == 201, upload.content
    assert upload.json()["rows"] == 120 and "target" in upload.json()["columns"] and upload.json()["profile"]
    started = api.post(f"{API}/experiments", {"dataset": upload.json()["id"], "config": QUICK}, format="json")
    assert started.status_code == 202, started.content
    assert started.json()["status"] == JobStatus.QUEUED
    pk = started.json()["id"]
    assert execute_experiment(pk).status == JobStatus.SUCCEEDED  # the worker's side, in-process
    detail = api.get(f"{API}/experiments/{pk}").json()
    assert detail["status"] == "succeeded" and detail["progress"]["event"] == "done"
    assert detail["model_name"] == "diabetes-risk" and detail["model_version"] == 1
    assert {g["name"] for g in detail["gates"]} == {"test_f1_macro_floor", "test_roc_auc_floor", "cv_std_ceiling"}
    promoted = api.post(f"{API}/experiments/{pk}/promote", {}, format="json")
    assert promoted.status_code == 200, promoted.content
    assert promoted.json()["action"] == "promote" and promoted.json()["version"] == 1
    return TabularExperiment.objects.get(pk=pk)


def test_end_to_end_upload_train_promote_predict(api_as, physician, trained):
    api = api_as(physician)
    [model] = api.get(f"{API}/models").json()
    assert model["name"] == "diabetes-risk" and model["registered_name"] == "tabular-diabetes-risk"
    champion = model["champion"]
    assert champion["experiment"] == trained.pk and champion["version"] == 1
    assert champion["algorithm"] in QUICK["algorithms"] and 0 <= champion["metrics"]["roc_auc"] <= 1
    columns = {c["name"]: c for c in champion["input_schema"]["columns"]}
    assert {"glucose", "bmi", "smoker", "site"} <= set(columns) and "target" not in columns

    one = api.post(f"{API}/models/diabetes-risk/predict", ROW, format="json")
    assert one.status_code == 200, one.content
    body = one.json()
    assert body["model"] == "diabetes-risk" and body["version"] == 1 and "not a diagnosis" in body["notice"]
    assert body["predictions"][0]["class"] == 1 and body["predictions"][0]["top_features"]
    many = api.post(f"{API}/models/diabetes-risk/predict", [ROW, LOW], format="json").json()
    assert [p["class"] for p in many["predictions"]] == [1, 0]
    assert many["predictions"][0]["probability"] > many["predictions"][1]["probability"]
    allowed = AuditEvent.objects.filter(action="tabular.predict", outcome=Outcome.ALLOWED, actor=physician)
    assert allowed.count() == 2


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({k: v for k, v in ROW.items() if k != "glucose"}, "glucose", "missing_column"),
        (ROW | {"glucose": 5000}, "glucose", "out_of_range"),
        (ROW | {"bmi": "heavy"}, "bmi", "wrong_type"),
        (ROW | {"bmi": {"nested": 1}}, "bmi", "wrong_type"),
        ([ROW, ROW | {"smoker": "sometimes"}], "smoker", "unknown_category"),
    ],
)
def test_bad_rows_are_invalid_request_naming_the_field(api_as, physician, trained, body, field, code):
    response = api_as(physician).post(f"{API}/models/diabetes-risk/predict", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["details"]["field"] == field
    assert error["details"]["errors"][0]["code"] == code and field in error["message"] + str(error["details"])
    assert AuditEvent.objects.filter(action="tabular.predict", outcome=Outcome.INVALID).count() == 1


@pytest.mark.parametrize(("body", "field"), [([], "rows"), ("a string", "rows"), ([ROW, 3], "rows[1]")])
def test_a_body_that_is_not_rows_is_refused(api_as, physician, trained, body, field):
    response = api_as(physician).post(f"{API}/models/diabetes-risk/predict", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["details"]["field"] == field
    assert AuditEvent.objects.get(action="tabular.predict", outcome=Outcome.INVALID).detail["field"] == field


def test_unknown_model_or_no_champion_is_404(api_as, physician):
    unpromoted = TabularExperimentFactory()
    for name in ("no-such-model", unpromoted.model_name):
        response = api_as(physician).post(f"{API}/models/{name}/predict", ROW, format="json")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_failing_gates_answer_409_with_the_failed_gates_then_override(api_as, admin_user, settings):
    settings.DEEPMED_TABULAR_GATE_F1_FLOOR = 0.8
    exp = TabularExperimentFactory(f1=0.5)
    api = api_as(admin_user)
    refused = api.post(f"{API}/experiments/{exp.pk}/promote", {}, format="json")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "gates_failed"
    assert [g["name"] for g in error["details"]["failed_gates"]] == ["test_f1_macro_floor"]
    done = api.post(f"{API}/experiments/{exp.pk}/promote", {"override_reason": "pilot"}, format="json")
    assert done.status_code == 200 and done.json()["override_reason"] == "pilot"
    nothing = api.post(f"{API}/models/{exp.model_name}/rollback")
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_roll_back"


def test_rollback_through_the_api(api_as, admin_user, lenient_gates):
    first = TabularExperimentFactory()
    second = TabularExperimentFactory(dataset=first.dataset)
    api = api_as(admin_user)
    for exp in (first, second):
        assert api.post(f"{API}/experiments/{exp.pk}/promote", {}, format="json").status_code == 200
    back = api.post(f"{API}/models/{first.model_name}/rollback")
    assert back.status_code == 200 and back.json() == {**back.json(), "experiment": first.pk, "previous": second.pk}
    [model] = api.get(f"{API}/models").json()
    assert model["champion"]["experiment"] == first.pk and model["versions"] == 2


def test_a_refused_upload_stores_nothing(api_as, admin_user):
    empty = SimpleUploadedFile("empty.csv", b"", content_type="text/csv")
    response = api_as(admin_user).post(f"{API}/datasets", {"file": empty}, format="multipart")
    assert response.status_code == 400 and response.json()["error"]["code"] in ("empty_file", "invalid_request")
    binary = SimpleUploadedFile("x.csv", bytes(range(256)) * 8, content_type="text/csv")
    response = api_as(admin_user).post(f"{API}/datasets", {"file": binary}, format="multipart")
    assert response.status_code == 400 and response.json()["error"]["code"] == "not_text"
    assert not TabularDataset.objects.exists()


def test_invalid_experiment_config_is_refused(api_as, admin_user):
    exp = TabularExperimentFactory()
    api = api_as(admin_user)
    bad = api.post(f"{API}/experiments", {"dataset": exp.dataset_id, "config": {"target": "nope"}}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_config"
    missing = api.post(f"{API}/experiments", {"dataset": 999999, "config": QUICK}, format="json")
    assert missing.status_code == 404
    listed = api.get(f"{API}/experiments").json()
    assert [e["id"] for e in listed] == [exp.pk] and api.get(f"{API}/datasets").json()[0]["id"] == exp.dataset_id


ADMIN_ONLY = [
    ("get", f"{API}/datasets", None),
    ("get", f"{API}/experiments", None),
    ("post", f"{API}/experiments", {"dataset": 1, "config": {}}),
    ("get", f"{API}/experiments/1", None),
    ("post", f"{API}/experiments/1/promote", {}),
    ("post", f"{API}/models/x/rollback", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY)
def test_lab_endpoints_are_for_admins_only(api_as, patient, physician, method, path, body):
    for user, expected in ((None, 401), (patient, 403), (physician, 403)):
        api = api_as(user)
        response = getattr(api, method)(path, body, format="json") if body is not None else getattr(api, method)(path)
        assert response.status_code == expected, (user, response.content)


def test_patients_cannot_list_or_predict(api_as, patient):
    TabularExperimentFactory()
    api = api_as(patient)
    assert api.get(f"{API}/models").status_code == 403
    assert api.post(f"{API}/models/x/predict", ROW, format="json").status_code == 403
    assert api_as(None).get(f"{API}/models").status_code == 401
