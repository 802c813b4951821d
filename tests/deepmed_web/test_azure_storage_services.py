"""Azure Blob storage (django-storages) against Azurite, through a live server whose settings
come from AZURE_STORAGE_CONNECTION_STRING: upload → blob → permission-checked download → delete."""

import pytest

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def azure_server(request, azurite, process_env):
    """`manage.py serve` configured for Azure Blob by the environment alone (settings.py's branch)."""
    process_env.update(AZURE_STORAGE_CONNECTION_STRING=azurite, AZURE_STORAGE_CONTAINER="deepmed")
    return request.getfixturevalue("live_server_process")


def _blobs(container, study_id) -> list[str]:
    return [blob.name for blob in container.list_blobs(name_starts_with=f"studies/{study_id}/")]


def test_study_lives_in_blob_storage_from_upload_to_delete(
    azure_server, azure_container, consenting_patient, other_patient, xray_png, bearer
):
    import httpx

    from apps.studies.models import Study

    owner = bearer(consenting_patient)
    response = httpx.post(
        f"{azure_server}/api/v1/studies", headers=owner, files={"image": ("cxr.png", xray_png, "image/png")}, timeout=60
    )
    assert response.status_code == 201, response.text
    study_id = response.json()["id"]

    blobs = _blobs(azure_container, study_id)
    study = Study.objects.get(pk=study_id)
    assert sorted(blobs) == sorted([study.image.name, study.thumbnail.name])
    stored = azure_container.download_blob(study.image.name).readall()
    assert stored.startswith(b"\x89PNG")

    download = httpx.get(f"{azure_server}/api/v1/studies/{study_id}/image", headers=owner, timeout=30)
    assert download.status_code == 200
    assert download.content == stored
    stranger = httpx.get(f"{azure_server}/api/v1/studies/{study_id}/image", headers=bearer(other_patient))
    assert stranger.status_code == 404 and stranger.content != stored

    # A file some other part of the system derived under the study's prefix goes too: found by
    # listing the prefix (the Azure backend lists full blob names, not names under a folder).
    azure_container.upload_blob(f"studies/{study_id}/crops/lung-left.png", b"derived")
    assert httpx.delete(f"{azure_server}/api/v1/studies/{study_id}", headers=owner, timeout=30).status_code == 204
    assert _blobs(azure_container, study_id) == []
    assert not Study.objects.filter(pk=study_id).exists()


def test_readiness_probes_blob_storage(azure_server, champion):
    import httpx

    body = httpx.get(f"{azure_server}/health/ready", timeout=30).json()
    assert body["checks"]["storage"] == "ok", body
