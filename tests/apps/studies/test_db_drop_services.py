"""Fault: the PostgreSQL connection drops in the middle of an upload (after the image was
stored, as the study row is written). The API answers a clean 503 in the error envelope, the
web form a "try again" page with 503; the stored image is removed (no orphan file), and the
next upload works."""

import pytest

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _stored_files(media):
    return sorted(p for p in media.rglob("*") if p.is_file())


def _upload(channel: str, api_client, client, user, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    if channel == "api":
        api_client.force_authenticate(user)
        return api_client.post("/api/v1/studies", {"image": SimpleUploadedFile("cxr.png", data)}, format="multipart")
    client.force_login(user)
    return client.post("/studies/upload/", {"image": SimpleUploadedFile("cxr.png", data)})


@pytest.mark.parametrize("channel", ["api", "web"])
def test_connection_drop_during_upload_is_a_clean_error_without_orphan_file(
    channel, api_client, client, consenting_patient, xray_png, monkeypatch, _isolated_media, flushed_redis
):
    import psycopg2
    from django.db import connection

    from apps.studies.models import Study

    original_save = Study.save
    dropped = []

    def save_after_the_connection_drops(self, *args, **kwargs):
        if not dropped:  # the image is in storage by now; kill this connection's backend from outside
            pid = connection.connection.info.backend_pid
            db = connection.settings_dict
            admin = psycopg2.connect(
                dbname=db["NAME"],
                user=db["USER"] or "postgres",
                host=db["HOST"] or "127.0.0.1",
                port=db["PORT"] or 5432,
            )
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            admin.close()
            dropped.append(pid)
        return original_save(self, *args, **kwargs)

    if channel == "web":
        client.force_login(consenting_patient)  # before the drop: the session is written first
    monkeypatch.setattr(Study, "save", save_after_the_connection_drops)
    response = _upload(channel, api_client, client, consenting_patient, xray_png)

    assert dropped, "the connection was not dropped"
    assert response.status_code == 503, response.content
    if channel == "api":
        assert response.json()["error"]["code"] == "service_unavailable"
    else:
        assert b"briefly unavailable" in response.content
    assert response["Retry-After"]
    assert _stored_files(_isolated_media) == []  # the image written before the failure is gone

    retry = _upload(channel, api_client, client, consenting_patient, xray_png)
    assert retry.status_code == (201 if channel == "api" else 302), retry.content  # the patient just tries again
    assert Study.objects.filter(owner=consenting_patient).count() == 1
    assert len(_stored_files(_isolated_media)) == 2  # its image and thumbnail
