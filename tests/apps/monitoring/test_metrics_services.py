"""Queue depth per Celery queue, read from the real Redis broker at scrape time."""

import pytest

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_metrics_report_the_inference_backlog(client, consenting_patient, champion, xray_png, flushed_redis):
    from apps.studies.services import create_study

    assert 'deepmed_celery_queue_length{queue="inference"} 0.0' in client.get("/metrics").content.decode()
    create_study(owner=consenting_patient, data=xray_png)  # published to Redis; no worker is running
    text = client.get("/metrics").content.decode()
    assert 'deepmed_celery_queue_length{queue="inference"} 1.0' in text
    assert 'deepmed_celery_queue_length{queue="training"} 0.0' in text
