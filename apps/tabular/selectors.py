from __future__ import annotations

from django.db.models import QuerySet

from apps.tabular.errors import TabularError
from apps.tabular.models import TabularDataset


def list_datasets() -> QuerySet[TabularDataset]:
    return TabularDataset.objects.select_related("uploaded_by").defer("profile")


def get_dataset(pk: int) -> TabularDataset:
    try:
        return TabularDataset.objects.get(pk=pk)
    except TabularDataset.DoesNotExist:
        raise TabularError(f"no tabular dataset {pk}", code="not_found") from None
