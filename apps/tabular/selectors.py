from __future__ import annotations

from django.db.models import QuerySet

from apps.tabular.errors import TabularError
from apps.tabular.models import TabularDataset, TabularExperiment


def list_datasets() -> QuerySet[TabularDataset]:
    return TabularDataset.objects.select_related("uploaded_by").defer("profile")


def get_dataset(pk: int) -> TabularDataset:
    try:
        return TabularDataset.objects.get(pk=pk)
    except TabularDataset.DoesNotExist:
        raise TabularError(f"no tabular dataset {pk}", code="not_found") from None


def list_experiments(dataset: TabularDataset | None = None) -> QuerySet[TabularExperiment]:
    rows = TabularExperiment.objects.select_related("dataset")
    return rows.filter(dataset=dataset) if dataset is not None else rows


def get_experiment(pk: int) -> TabularExperiment:
    try:
        return TabularExperiment.objects.select_related("dataset").get(pk=pk)
    except TabularExperiment.DoesNotExist:
        raise TabularError(f"no tabular experiment {pk}", code="not_found") from None
