"""Fault: the PostgreSQL connection drops in the middle of an upload (after the image was
stored, as the study row is written). The API answers a clean 503 in the error envelope,
the stored image is removed (no orphan file), and the next upload works."""

import pytest

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _stored_files(media):
    return sorted(p for p in media.rglob("*") if p.is_file())


def test_connection_drop_during_upload_is_a_clean_error_without_orphan_file(
    api_client, consenting_patient, xray_png, monkeypatch, _isolated_media, flushed_redis
):
    import psycopg2
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection

    from apps.studies.models import Study

    original_save = Study.save
    dropped = []

    def save_after_the_connection_drops(self, *args, **kwargs):
        if not dropped:  # the image is in storage by now; kill this connection's backend from outside
            pid = connection.connection.info.backend_pid
            db = connection.settings_dict
            admin = psycopg2.connect(dbname=db["NAME"], user=db["USER"] or "postgres", host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432)
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            admin.close()
            dropped.append(pid)
        return original_save(self, *args, **kwargs)

    monkeypatch.setattr(Study, "save", save_after_the_connection_drops)
    api_client.force_authenticate(consenting_patient)
    response = api_client.post("/api/v1/studies", {"image": SimpleUploadedFile("cxr.png", xray_png)}, format="multipart")

    assert dropped, "the connection was not dropped"
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response["Retry-After"]
    assert _stored_files(_isolated_media) == []  # the image written before the failure is gone

    retry = api_client.post("/api/v1/studies", {"image": SimpleUploadedFile("cxr.png", xray_png)}, format="multipart")
    assert retry.status_code == 201, retry.content  # a fresh connection: the patient just tries again
    assert Study.objects.filter(owner=consenting_patient).count() == 1
    assert len(_stored_files(_isolated_media)) == 1
