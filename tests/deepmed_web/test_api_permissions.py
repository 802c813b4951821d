"""The API's permission matrix: every role against every endpoint, on a study owned by one
patient, plus id guessing. Each case runs on its own fresh data (a DELETE that succeeds
cannot hide a later case) and every read of patient data must leave an audit event.

Roles: anonymous, owner (the patient who uploaded), stranger (another patient),
physician, admin. A status of 400/404/409 for staff on a mutating endpoint means "the
permission let the request through and the domain rule answered", which is what we check.
"""

from __future__ import annotations

import uuid

import pytest

from apps.audit.models import AuditEvent

ROLES = ("anonymous", "owner", "stranger", "physician", "admin")
S = "{study}"  # replaced by the study's id

# (method, path, body, expected status per role in ROLES order)
MATRIX = [
    ("get", "/api/v1/me", None, (401, 200, 200, 200, 200)),
    ("get", "/api/v1/consent", None, (401, 200, 200, 200, 200)),
    ("post", "/api/v1/consent/research", {"version": "1", "granted": True}, (401, 201, 201, 403, 403)),
    ("delete", "/api/v1/account", {"password": "wrong"}, (401, 403, 403, 403, 403)),
    ("get", "/api/v1/studies", None, (401, 200, 200, 200, 200)),
    ("post", "/api/v1/studies", None, (401, 400, 400, 403, 403)),  # patients consented: the empty upload is refused
    ("get", f"/api/v1/studies/{S}", None, (401, 200, 404, 200, 200)),
    ("get", f"/api/v1/studies/{S}/image", None, (401, 200, 404, 200, 200)),
    ("get", f"/api/v1/studies/{S}/heatmap", None, (401, 200, 404, 200, 200)),
    ("get", f"/api/v1/studies/{S}/explanation", None, (401, 200, 404, 200, 200)),
    ("put", f"/api/v1/studies/{S}/explanation", {"text": ""}, (401, 403, 403, 400, 400)),
    ("delete", f"/api/v1/studies/{S}", None, (401, 204, 404, 403, 403)),
    ("get", "/api/v1/review/worklist", None, (401, 403, 403, 200, 200)),
    ("post", f"/api/v1/review/{S}/claim", None, (401, 403, 403, 200, 200)),
    ("post", f"/api/v1/review/{S}/release", None, (401, 403, 403, 204, 204)),
    ("post", f"/api/v1/review/{S}", {}, (401, 403, 403, 400, 400)),
    ("post", f"/api/v1/review/{S}/identifying-text", {"flagged": True}, (401, 403, 403, 200, 200)),
    ("get", "/api/v1/models", None, (401, 403, 403, 403, 200)),
    ("post", "/api/v1/models/cxr-tiny/versions/1/promote", {}, (401, 403, 403, 403, 409)),  # random model: gates fail
    ("post", "/api/v1/models/cxr-tiny/rollback", None, (401, 403, 403, 403, 409)),
    ("post", "/api/v1/training-runs", {"architecture": "no-such-net"}, (401, 403, 403, 403, 400)),
    ("get", "/api/v1/training-runs/999999", None, (401, 403, 403, 403, 404)),
    ("get", "/api/v1/retraining-queue", None, (401, 403, 403, 403, 200)),
    ("get", "/api/v1/monitoring/drift", None, (401, 403, 403, 403, 200)),
    ("post", "/api/v1/explainer/finetune-runs", {}, (401, 403, 403, 403, 409)),  # no physician edits yet
    ("get", "/api/v1/explainer/finetune-runs/999999", None, (401, 403, 403, 403, 404)),
    # tabular lab: risk predictions for clinical staff (no champion here: 404), the lab for admins
    ("get", "/api/v1/tabular/models", None, (401, 403, 403, 200, 200)),
    ("post", "/api/v1/tabular/models/heart/predict", {"age": 50}, (401, 403, 403, 404, 404)),
    ("post", "/api/v1/tabular/models/heart/rollback", None, (401, 403, 403, 403, 404)),
    ("get", "/api/v1/tabular/datasets", None, (401, 403, 403, 403, 200)),
    ("post", "/api/v1/tabular/datasets", None, (401, 403, 403, 403, 400)),  # no file
    ("get", "/api/v1/tabular/datasets/999999", None, (401, 403, 403, 403, 404)),
    ("get", "/api/v1/tabular/experiments", None, (401, 403, 403, 403, 200)),
    ("post", "/api/v1/tabular/experiments", {"dataset": 999999, "config": {}}, (401, 403, 403, 403, 404)),
    ("get", "/api/v1/tabular/experiments/999999", None, (401, 403, 403, 403, 404)),
    ("post", "/api/v1/tabular/experiments/999999/promote", {}, (401, 403, 403, 403, 404)),
]
CASES = [(m, p, b, role, codes[i]) for m, p, b, codes in MATRIX for i, role in enumerate(ROLES)]
PATIENT_DATA = ("/api/v1/studies/{study}",)  # reads of one study: audited for every role that reaches the view


@pytest.fixture
def world(explained_study, other_patient, physician, admin_user):
    from apps.accounts.services import accept_disclaimer

    accept_disclaimer(other_patient)
    return {
        "owner": explained_study.owner,
        "stranger": other_patient,
        "physician": physician,
        "admin": admin_user,
        "anonymous": None,
        "study": explained_study,
    }


def _call(api, method: str, path: str, body):
    kwargs = {"format": "json"} if body is not None else {}
    return getattr(api, method)(path, body, **kwargs) if body is not None else getattr(api, method)(path)


@pytest.mark.parametrize(
    ("method", "path", "body", "role", "expected"),
    CASES,
    ids=[f"{role}-{m}-{p.replace('/api/v1/', '')}" for m, p, b, role, _ in CASES],
)
def test_permission_matrix(api_as, world, method, path, body, role, expected):
    study = world["study"]
    api = api_as(world[role])
    response = _call(api, method, path.replace(S, str(study.pk)), body)
    assert response.status_code == expected, response.content[:300]
    if response.status_code >= 400:
        assert response.json()["error"]["code"]  # refusals in the one error shape
    if path.startswith(PATIENT_DATA[0]) and method == "get" and role != "anonymous":
        assert AuditEvent.objects.filter(object_id=str(study.pk), actor=world[role]).exists(), "read not audited"


@pytest.mark.parametrize("role", ["owner", "stranger", "physician", "admin"])
@pytest.mark.parametrize("suffix", ["", "/image", "/heatmap", "/explanation"])
def test_guessed_ids_are_indistinguishable_from_others_studies(api_as, world, role, suffix):
    """A random id and another patient's id answer the same to a patient: no probing."""
    api = api_as(world[role])
    unknown = api.get(f"/api/v1/studies/{uuid.uuid4()}{suffix}")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    if role == "stranger":
        theirs = api.get(f"/api/v1/studies/{world['study'].pk}{suffix}")
        assert theirs.status_code == 404 and theirs.json() == unknown.json()


def test_a_patient_list_never_shows_another_patients_study(api_as, world):
    assert api_as(world["stranger"]).get("/api/v1/studies").json()["count"] == 0
    assert api_as(world["owner"]).get("/api/v1/studies").json()["count"] == 1
