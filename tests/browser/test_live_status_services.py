"""Live status in the browser, made deterministic with real services: the study waits in
Redis until the test starts a `celery worker`, so the page is already open on `queued`
when the worker moves it on. One page follows over the WebSocket (channels-redis), the
other has no WebSocket at all and must fall back to polling."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _log_in(page, client, user, base_url: str) -> None:
    """Share a session made in the test process (its fast test password hasher is unknown
    to the server process, so the log-in form is covered by the embedded flow instead)."""
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base_url}])


def test_study_page_follows_live_over_websocket_and_by_polling(
    client,
    consenting_patient,
    champion,
    flushed_redis,
    live_server_process,
    celery_worker_process,
    new_page,
    status_log,
    settled_on,
    artifacts,
):
    from ml_core.testing import make_xray_like_png

    live = new_page(live_server_process)
    _log_in(live, client, consenting_patient, live_server_process)
    live.goto("/studies/upload/")
    live.set_input_files(
        "#id_image",
        files=[{"name": "cxr.png", "mimeType": "image/png", "buffer": make_xray_like_png(size=384, seed=9)}],
    )
    live.click("#upload-submit")
    live.wait_for_url(re.compile(r"/studies/[0-9a-f-]{36}/$"))
    assert flushed_redis.llen("inference") == 1  # no worker yet: the study waits in the broker
    live.wait_for_function("() => document.getElementById('study-status').dataset.live === 'websocket'")

    polled = new_page(live_server_process, websockets=False)
    _log_in(polled, client, consenting_patient, live_server_process)
    polled.goto(live.url)
    polled.wait_for_function("() => document.getElementById('study-status').dataset.live === 'polling'")
    for page in (live, polled):
        assert page.text_content("#study-status") == "Waiting to be analysed"  # the patient's wording
        assert "step-current" in page.get_attribute("[data-step=queued]", "class")
    live.screenshot(path=str(artifacts / "services-01-queued.png"), full_page=True)

    celery_worker_process(queues="inference")  # starts consuming now; no llm worker: the study stays predicted

    for page, channel in ((live, "websocket"), (polled, "polling")):
        log = settled_on(page, "predicted", status_log)
        assert log[0] == {"status": "queued", "via": "render"}
        changes = [e["status"] for e in log if e["via"] == "live" and e["channel"] == channel]
        assert "predicted" in changes, log
        renders = [e["status"] for e in log if e["via"] == "render"]
        assert renders == ["queued", "predicted"], log  # the page reloaded itself once, on the result
        # The heat-map lies over the X-ray: it has a box once both images have loaded.
        page.wait_for_function(
            "() => ['xray-image', 'heatmap-image'].every((id) => {"
            " const img = document.getElementById(id); return img && img.complete && img.naturalWidth > 0; })"
        )
        assert page.is_visible("#heatmap-image") and page.is_visible("#result-disclaimer")
    statuses = [e["status"] for e in status_log(live) if e["via"] == "live"]
    assert statuses.index("predicting") < statuses.index("predicted")  # each step pushed as it happened
    live.screenshot(path=str(artifacts / "services-02-result.png"), full_page=True)
