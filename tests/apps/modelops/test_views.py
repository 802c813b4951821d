"""The admin console pages: admins only; start/cancel a run; failed runs show error and logs."""

from __future__ import annotations

import pytest

from apps.modelops.models import RunStatus, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/modelops/", "/modelops/runs/1/", "/modelops/compare/?a=1&b=1"])
def test_console_is_for_admins_only(client, physician, consenting_patient, url):
    for user in (physician, consenting_patient):
        client.force_login(user)
        assert client.get(url).status_code == 403


def test_console_shows_versions_preview_and_queue(client, admin_user, champion, modelops_settings):
    client.force_login(admin_user)
    page = client.get("/modelops/").content.decode()
    assert "cxr-tiny v1" in page and 'id="champion-name">cxr-tiny v1 @champion' in page
    assert "<td>COVID-19</td><td>8</td><td>0</td><td>0</td><td>8</td>" in page  # class counts preview
    assert 'id="new-labels">0<' in page


def test_start_and_cancel_a_run(client, admin_user, modelops_settings, django_capture_on_commit_callbacks):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/modelops/runs/", {"architecture": "cxr_tiny", "tier": "quick", "augmentation": "light"}
        )
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/modelops/runs/{run.pk}/"
    assert len(callbacks) == 1
    assert 'id="cancel-run"' in client.get(f"/modelops/runs/{run.pk}/").content.decode()
    client.post(f"/modelops/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.cancel_requested
    assert client.get(f"/modelops/runs/{run.pk}/status.json").json()["status"] == "cancelled"


def test_failed_run_shows_error_and_logs(client, admin_user):
    run = TrainingRun.objects.create(
        params={"architecture": "cxr_tiny", "tier": "quick"},
        status=RunStatus.FAILED,
        error="RuntimeError: out of memory",
        logs="epoch=1 train_loss=0.9\nTraceback …",
    )
    client.force_login(admin_user)
    page = client.get(f"/modelops/runs/{run.pk}/").content.decode()
    assert "RuntimeError: out of memory" in page and "Traceback" in page and 'id="cancel-run"' not in page
