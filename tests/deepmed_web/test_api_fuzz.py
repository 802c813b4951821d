"""Fuzz the API with schemathesis against a live server (`manage.py serve`, embedded mode).

For each role (anonymous, patient with a real study, physician, admin) schemathesis generates requests
from /api/schema/ for a bounded number of examples and seconds, and checks three things: no
response is a 5xx, every status code returned is documented for its operation, and every
response matches its documented schema (errors included: the one error envelope). Rate limits are
raised for this server only (they are tested in tests/apps/*/test_api_*.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

pytestmark = [pytest.mark.slow]

PASSWORD = "a-long-fuzz-password"
ROLES = ("patient", "physician", "admin")
MAX_EXAMPLES = 15
MAX_SECONDS = 45
# Starting a real training run (image or tabular) from random input would keep the server's worker
# busy for the rest of the run; their validation and permissions are tested in tests/apps/modelops
# and tests/apps/tabular. The other tabular operations are fuzzed, with one uploaded dataset listed.
SKIP_OPERATIONS = ("POST /api/v1/training-runs", "POST /api/v1/tabular/experiments")


def _post_json(url: str, body: dict, token: str | None = None) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def _upload(url: str, token: str, png: bytes, *, field: str = "image", filename: str = "cxr.png",
            content_type: str = "image/png") -> dict:  # fmt: skip
    boundary = "deepmedfuzz"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, process_tools):
    from ml_core.testing import make_tiny_package, make_xray_like_png

    data_dir = tmp_path_factory.mktemp("fuzz-embedded")
    package = make_tiny_package(data_dir / "cxr-tiny")
    unlimited = {
        f"DEEPMED_THROTTLE_{k}": "100000/min" for k in ("AUTH_IP", "AUTH_ACCOUNT", "UPLOAD_IP", "UPLOAD_ACCOUNT")
    }
    server, base = process_tools.start_embedded_server(
        data_dir,
        setup=[
            ["register_model", str(package), "--alias", "champion"],
            *[["create_user", "--role", role, "--username", f"fuzz-{role}", "--password", PASSWORD] for role in ROLES],
        ],
        DEEPMED_BASE_DATASET_DIR=str(data_dir / "no-dataset"),
        **unlimited,
    )
    api = f"{base}/api/v1"
    tokens = {
        role: _post_json(f"{api}/auth/token", {"username": f"fuzz-{role}", "password": PASSWORD})["access"]
        for role in ROLES
    }
    _post_json(f"{api}/consent", {"version": "1"}, tokens["patient"])
    study = _upload(f"{api}/studies", tokens["patient"], make_xray_like_png(size=128, seed=5))
    from ml_core.tabular.testing import make_frame

    csv = make_frame(60, seed=1).to_csv(index=False).encode()
    _upload(f"{api}/tabular/datasets", tokens["admin"], csv, field="file", filename="risk.csv", content_type="text/csv")
    yield {"base": base, "tokens": tokens, "study": study["id"], "log": server.log}
    server.kill()


def _operations_to_skip(base: str) -> list[str]:
    with urllib.request.urlopen(f"{base}/api/schema/?format=json", timeout=30) as response:
        schema = json.loads(response.read())
    skip = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if f"{method.upper()} {path}" in SKIP_OPERATIONS:
                skip.append(operation["operationId"])
    assert len(skip) == len(SKIP_OPERATIONS), "an operation to skip is no longer in the schema"
    return skip


@pytest.mark.parametrize("role", ["anonymous", *ROLES])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_server, role, tmp_path):
    base = fuzz_server["base"]
    args = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{base}/api/schema/?format=json",
        "--checks",
        "not_a_server_error,status_code_conformance,response_schema_conformance",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_SECONDS),
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--seed",
        "20261127",
        "--generation-database",
        "none",
    ]
    if role != "anonymous":
        args += ["--header", f"Authorization: Bearer {fuzz_server['tokens'][role]}"]
    for operation_id in _operations_to_skip(base):
        args += ["--exclude-operation-id", operation_id]
    done = subprocess.run(args, capture_output=True, text=True, timeout=MAX_SECONDS * 4, cwd=tmp_path)
    failures = done.stdout.find("FAILURES")
    report = done.stdout[max(failures, 0) :][:12000] + done.stderr[-2000:]
    assert done.returncode == 0, report + "\n--- server log ---\n" + fuzz_server["log"]()[-3000:]
    assert "passed" in done.stdout.lower(), report  # it really ran operations


def test_a_malformed_multipart_body_gets_the_error_envelope_not_a_bare_400(fuzz_server):
    """Daphne's HTTP layer (Twisted) must leave request bodies to Django (see `manage.py serve`)."""
    import urllib.error

    boundary = "deepmed-broken"
    request = urllib.request.Request(
        f"{fuzz_server['base']}/api/v1/auth/token/refresh",
        data=f"--{boundary}--\r\n".encode(),
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400
    assert refused.value.headers["Content-Type"] == "application/json"
    assert json.loads(refused.value.read())["error"]["code"] == "invalid_request"
