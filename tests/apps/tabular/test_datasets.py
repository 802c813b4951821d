"""Uploading a clinical CSV: stored with its profile and audited; every bad input class gets a
clear error code and leaves no row and no file behind."""

from __future__ import annotations

import io

import pytest

from apps.audit.models import AuditEvent, Outcome
from apps.tabular.errors import TabularError
from apps.tabular.models import TabularDataset
from apps.tabular.selectors import get_dataset, list_datasets
from apps.tabular.services import upload_dataset
from ml_core.tabular.testing import make_frame

pytestmark = pytest.mark.django_db


def csv_bytes(n: int = 60) -> bytes:
    return make_frame(n).to_csv(index=False).encode()


def stored_files(media) -> list:
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


def test_admin_upload_is_stored_profiled_and_audited(admin_user, _isolated_media):
    ds = upload_dataset(actor=admin_user, name=" risk table ", data=io.BytesIO(csv_bytes()), target="target")
    assert ds.name == "risk table" and ds.rows == 60 and "glucose" in ds.columns and ds.delimiter == ","
    assert ds.profile["suspicious_zeros"]["bmi"] == 6 and ds.profile["target"]["column"] == "target"
    assert ds.file.name == f"tabular/datasets/{ds.sha256}.csv"
    assert ds.file.read() == csv_bytes() and stored_files(_isolated_media) != []
    event = AuditEvent.objects.get(action="tabular.dataset_upload", outcome=Outcome.ALLOWED)
    assert event.object_id == str(ds.pk) and event.detail["rows"] == 60
    assert list(list_datasets()) == [ds] and get_dataset(ds.pk) == ds


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", "not_text"),
        (
            (",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join(["1"] * 10_000) + "\n").encode(),
            "too_many_columns",
        ),
        (b"only\n1\n", "malformed_csv"),
    ],
    ids=["empty", "binary", "10000-columns", "one-column"],
)
def test_bad_files_leave_nothing_behind(admin_user, _isolated_media, data, code):
    with pytest.raises(TabularError) as exc:
        upload_dataset(actor=admin_user, name="bad", data=data)
    assert exc.value.code == code and exc.value.http_status == 400 and exc.value.message
    assert TabularDataset.objects.count() == 0 and stored_files(_isolated_media) == []
    assert AuditEvent.objects.get(action="tabular.dataset_upload").outcome == Outcome.INVALID


def test_too_large_is_413(admin_user, settings):
    settings.DEEPMED_TABULAR_MAX_BYTES = 100
    with pytest.raises(TabularError) as exc:
        upload_dataset(actor=admin_user, name="big", data=io.BytesIO(csv_bytes()))
    assert (exc.value.code, exc.value.http_status) == ("file_too_large", 413)
    assert TabularDataset.objects.count() == 0


def test_non_utf8_is_read_with_a_note(admin_user):
    ds = upload_dataset(actor=admin_user, name="latin", data="name,target\nJosé,1\nRené,0\n".encode("cp1252"))
    assert ds.encoding == "cp1252" and ds.notes


def test_unknown_target_is_refused(admin_user):
    with pytest.raises(TabularError) as exc:
        upload_dataset(actor=admin_user, name="t", data=csv_bytes(), target="outcome")
    assert exc.value.code == "unknown_target" and TabularDataset.objects.count() == 0


def test_only_admins_upload(physician, patient):
    for user in (physician, patient, None):
        with pytest.raises(TabularError) as exc:
            upload_dataset(actor=user, name="x", data=csv_bytes())
        assert exc.value.http_status == 403
    assert TabularDataset.objects.count() == 0
    assert AuditEvent.objects.filter(action="tabular.dataset_upload", outcome=Outcome.DENIED).count() == 3


def test_a_failing_save_removes_the_file(admin_user, _isolated_media, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("apps.tabular.services.record_event", boom)
    with pytest.raises(RuntimeError):
        upload_dataset(actor=admin_user, name="x", data=csv_bytes())
    assert TabularDataset.objects.count() == 0 and stored_files(_isolated_media) == []


def test_missing_dataset_is_404(db):
    with pytest.raises(TabularError) as exc:
        get_dataset(12345)
    assert exc.value.http_status == 404
