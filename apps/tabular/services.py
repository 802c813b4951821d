"""Writes of the tabular lab. Reads are in selectors.py; the data science is ml_core.tabular."""

from __future__ import annotations

from typing import BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from apps.accounts.models import Role
from apps.audit.models import Outcome
from apps.audit.services import record_event
from apps.tabular.errors import TabularError
from apps.tabular.models import TabularDataset
from ml_core.tabular.io import DEFAULT_MAX_BYTES, DEFAULT_MAX_COLUMNS, DEFAULT_MAX_ROWS, TabularDataError, read_table
from ml_core.tabular.profile import profile


def max_bytes() -> int:
    return int(getattr(settings, "DEEPMED_TABULAR_MAX_BYTES", DEFAULT_MAX_BYTES))


def upload_dataset(*, actor, name: str, data: bytes | BinaryIO, target: str | None = None) -> TabularDataset:
    """Parse, profile and store an uploaded CSV (admins only). Every refusal is a TabularError
    with the reader's code (empty_file, not_text, not_utf8, too_many_columns, ...) and leaves
    no row and no file behind; refusals are audited too."""
    if actor is None or getattr(actor, "role", None) != Role.ADMIN:
        record_event(actor=actor, action="tabular.dataset_upload", object_type="tabular.tabulardataset",
                     outcome=Outcome.DENIED, detail={"reason": "admins only"}, patient=None)  # fmt: skip
        raise TabularError("only administrators upload tabular datasets", code="forbidden")
    if not isinstance(data, bytes):
        data = data.read(max_bytes() + 1)  # no more than the limit (+1 to tell it was over) in memory
    name = (name or "").strip()[:120] or "dataset"
    try:
        table = read_table(
            data,
            max_bytes=max_bytes(),
            max_rows=int(getattr(settings, "DEEPMED_TABULAR_MAX_ROWS", DEFAULT_MAX_ROWS)),
            max_columns=int(getattr(settings, "DEEPMED_TABULAR_MAX_COLUMNS", DEFAULT_MAX_COLUMNS)),
        )
        if target is not None and target not in table.frame.columns:
            raise TabularDataError("unknown_target", f"no column {target!r}")
        report = profile(table.frame, target)
    except TabularDataError as exc:
        record_event(actor=actor, action="tabular.dataset_upload", object_type="tabular.tabulardataset",
                     outcome=Outcome.INVALID, detail={"code": exc.code, "bytes": len(data)}, patient=None)  # fmt: skip
        raise TabularError.from_data_error(exc) from None
    dataset = TabularDataset(
        name=name,
        sha256=table.sha256,
        n_bytes=table.n_bytes,
        rows=len(table.frame),
        columns=[str(c) for c in table.frame.columns],
        encoding=table.encoding,
        delimiter=table.delimiter,
        notes=table.notes,
        profile=_strict_json(report),
        uploaded_by=actor,
    )
    try:
        with transaction.atomic():
            dataset.file.save(dataset_name(dataset), ContentFile(data), save=False)
            dataset.save()
            record_event(actor=actor, action="tabular.dataset_upload", obj=dataset, patient=None,
                         detail={"sha256": dataset.sha256, "rows": dataset.rows, "columns": len(dataset.columns)})  # fmt: skip
    except BaseException:
        if dataset.file.name:  # the row rolled back: the file must not stay behind either
            dataset.file.storage.delete(dataset.file.name)
        raise
    return dataset


def dataset_name(dataset: TabularDataset) -> str:
    return f"{dataset.sha256}.csv"


def _strict_json(obj):
    from ml_core.tabular.artifacts import finite

    return finite(obj)
