"""Explanation moved from apps.studies to apps.explanations with its table and rows unchanged."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("studies", "0002_identifying_text"), ("explanations", "0003_job_lifecycle")]


def _migrate(targets=None):
    """Migrate to `targets`, or to the latest migration of every app (None); the state's apps."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def back_to_latest():
    """Whatever the test leaves, the next test finds the current schema (later fields included)."""
    yield
    _migrate()


def test_rows_written_under_studies_are_read_by_the_explanations_model(explained_study, back_to_latest):
    from django.contrib.contenttypes.models import ContentType

    from apps.explanations.models import Explanation

    assert Explanation._meta.db_table == "studies_explanation"
    old_apps = _migrate(BEFORE)  # the schema as it was: the model in studies
    old = old_apps.get_model("studies", "Explanation")
    assert old.objects.get(study_id=explained_study.pk).text
    ContentType.objects.filter(app_label="explanations", model="explanation").delete()
    ContentType.objects.get_or_create(app_label="studies", model="explanation")

    new_apps = _migrate()  # the move, and every later migration
    with pytest.raises(LookupError):
        new_apps.get_model("studies", "Explanation")
    moved = Explanation.objects.get(study_id=explained_study.pk)
    assert moved.study == explained_study and explained_study.explanation == moved
    assert ContentType.objects.filter(app_label="explanations", model="explanation").exists()
    assert not ContentType.objects.filter(app_label="studies", model="explanation").exists()
