"""The OpenAPI contract: generated without errors or warnings, served locally (no CDN)."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.management.commands.spectacular import SchemaGenerationError, SchemaValidationError


def test_schema_generates_without_errors_or_warnings(tmp_path):
    out = tmp_path / "schema.yml"
    try:
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    except (SchemaGenerationError, SchemaValidationError) as exc:  # raised after it prints each warning
        pytest.fail(f"OpenAPI schema has warnings or errors: {exc}")
    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "DeepMed API"


@pytest.mark.django_db
def test_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert schema.json()["info"]["version"] == "1"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    # Assets come from drf-spectacular-sidecar through our static files: no internet needed.
    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page
    assert "swagger-ui" in page
