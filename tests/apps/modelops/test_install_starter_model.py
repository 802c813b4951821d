"""`manage.py install_starter_model`: deploys the shipped starter package once (DB mirror, optionally MLflow)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from apps.modelops.models import ModelVersion
from apps.modelops.selectors import get_champion


@pytest.mark.django_db
def test_installs_the_starter_as_champion_once(modelops_settings):
    call_command("install_starter_model")
    champion = get_champion()
    assert champion is not None and champion.registered_name == "cxr-starter"
    assert (modelops_settings.DEEPMED_MODEL_DIR / "starter" / "package.json").is_file()
    assert champion.metrics["test"]["n"] == 398
    call_command("install_starter_model")  # idempotent: nothing new once a champion exists
    assert ModelVersion.objects.count() == 1


@pytest.mark.django_db
def test_mlflow_option_registers_the_starter_in_the_registry(modelops_settings):
    from ml_core import tracking

    call_command("install_starter_model", "--mlflow")
    champion = get_champion()
    assert champion.registered_name == modelops_settings.DEEPMED_REGISTERED_MODEL and champion.mlflow_run_id
    uri = modelops_settings.MLFLOW_TRACKING_URI
    assert tracking.get_alias_version(uri, champion.registered_name, "champion") == champion.version
