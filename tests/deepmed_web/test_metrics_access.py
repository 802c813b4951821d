"""/metrics carries clinical totals (predictions by label, physician agreement, worklist size):
only an allowed client address (DEEPMED_METRICS_ALLOWED_IPS, loopback by default) or a scraper
with the bearer token (DEEPMED_METRICS_TOKEN) may read it (deepmed_web/metrics.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-scrape-token-0123456789"


def _metrics(client, remote: str = "127.0.0.1", token: str | None = None, scheme: str = "Bearer"):
    headers = {"HTTP_AUTHORIZATION": f"{scheme} {token}"} if token is not None else {}
    return client.get("/metrics", REMOTE_ADDR=remote, **headers)


def test_defaults_allow_loopback_only(settings):
    assert settings.DEEPMED_METRICS_ALLOWED_IPS == ["127.0.0.1", "::1"]
    assert settings.DEEPMED_METRICS_TOKEN == ""


@pytest.mark.parametrize("remote", ["127.0.0.1", "::1"])
def test_loopback_reads_the_metrics_by_default(client, remote):
    response = _metrics(client, remote)
    assert response.status_code == 200 and "django_http_requests" in response.content.decode()
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("remote", ["10.0.0.7", "203.0.113.9", "2001:db8::5"])
def test_a_remote_address_without_a_token_is_refused(client, remote):
    response = _metrics(client, remote)
    assert response.status_code == 403
    assert b"deepmed_" not in response.content and b"django_" not in response.content


def test_a_signed_in_admin_is_not_enough(client, admin_user):
    client.force_login(admin_user)
    assert _metrics(client, "10.0.0.7").status_code == 403


def test_the_right_token_is_let_in_from_anywhere(client, settings):
    settings.DEEPMED_METRICS_TOKEN = TOKEN
    assert _metrics(client, "10.0.0.7", TOKEN).status_code == 200
    assert _metrics(client, "10.0.0.7", TOKEN, scheme="bearer").status_code == 200  # the scheme is case-insensitive


@pytest.mark.parametrize(
    "token,scheme", [("wrong-token", "Bearer"), (TOKEN[:-1], "Bearer"), ("", "Bearer"), (TOKEN, "Basic")]
)
def test_a_wrong_token_is_refused(client, settings, token, scheme):
    settings.DEEPMED_METRICS_TOKEN = TOKEN
    assert _metrics(client, "10.0.0.7", token, scheme=scheme).status_code == 403


def test_without_a_configured_token_no_token_opens_it(client, settings):
    settings.DEEPMED_METRICS_TOKEN = ""
    assert _metrics(client, "10.0.0.7", "").status_code == 403
    assert _metrics(client, "10.0.0.7", "anything").status_code == 403


def test_allowed_addresses_and_networks(client, settings):
    settings.DEEPMED_METRICS_ALLOWED_IPS = ["10.1.0.0/16", "192.0.2.4"]
    assert _metrics(client, "10.1.200.3").status_code == 200
    assert _metrics(client, "192.0.2.4").status_code == 200
    assert _metrics(client, "192.0.2.5").status_code == 403
    assert _metrics(client, "127.0.0.1").status_code == 403  # loopback is only a default


def test_an_empty_allow_list_means_token_only(client, settings):
    settings.DEEPMED_METRICS_ALLOWED_IPS = []
    settings.DEEPMED_METRICS_TOKEN = TOKEN
    assert _metrics(client, "127.0.0.1").status_code == 403
    assert _metrics(client, "127.0.0.1", TOKEN).status_code == 200


def test_settings_read_the_environment():
    import re
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "deepmed_web" / "settings.py").read_text()
    assert re.search(r'env\.\w+\(\s*"DEEPMED_METRICS_TOKEN"', source)
    assert re.search(r'env\.\w+\(\s*"DEEPMED_METRICS_ALLOWED_IPS"', source)


def test_prometheus_and_kubernetes_send_the_token():
    """Compose's Prometheus reads the token from a file; the cluster's scrape job for the web pods
    from a mounted Secret, and the web pods get the same Secret as DEEPMED_METRICS_TOKEN."""
    from pathlib import Path

    import yaml

    deploy = Path(__file__).resolve().parents[2] / "deploy"
    jobs = {
        j["job_name"]: j for j in yaml.safe_load((deploy / "prometheus/prometheus.yml").read_text())["scrape_configs"]
    }
    assert jobs["deepmed-web"]["authorization"]["credentials_file"] == "/run/secrets/metrics-token"
    compose = yaml.safe_load((deploy / "docker-compose.yml").read_text())
    assert compose["secrets"]["metrics-token"] == {"environment": "DEEPMED_METRICS_TOKEN"}
    assert "metrics-token" in compose["services"]["prometheus"]["secrets"]
    assert "DEEPMED_METRICS_TOKEN" in compose["services"]["web"]["environment"]

    docs = [d for p in sorted((deploy / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert "DEEPMED_METRICS_TOKEN" in secrets["deepmed-secrets"]["stringData"]
    scrape = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "deepmed-prometheus-scrape")
    web_job = next(j for j in yaml.safe_load(scrape["data"]["deepmed-scrape.yml"]) if j["job_name"] == "deepmed-web")
    assert web_job["authorization"]["credentials_file"]
