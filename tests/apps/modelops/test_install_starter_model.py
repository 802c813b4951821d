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


def _older_starter(directory, shipped, version="3"):
    """A copy of the shipped starter that claims an earlier version and another model file."""
    import json
    import shutil

    from ml_core.package import file_sha256

    shutil.copytree(shipped, directory)
    model = directory / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")  # another file: another sha256
    meta = json.loads((directory / "package.json").read_text())
    meta.update(version=version, model_sha256=file_sha256(model))
    (directory / "package.json").write_text(json.dumps(meta))
    return directory


@pytest.mark.django_db
def test_an_install_serving_an_older_starter_gets_the_new_one_as_challenger_once(modelops_settings, tmp_path):
    from apps.modelops.management.commands.install_starter_model import STARTER_PACKAGE
    from apps.modelops.selectors import get_challenger
    from apps.modelops.services import register_model_version
    from ml_core.package import load_package_meta

    old = register_model_version(_older_starter(tmp_path / "old-starter", STARTER_PACKAGE), alias="champion")
    call_command("install_starter_model")

    assert get_champion() == old  # the served model is never replaced behind the admin's back
    challenger = get_challenger()
    shipped = load_package_meta(STARTER_PACKAGE)
    assert challenger is not None and challenger.version == shipped.version
    offered_dir = modelops_settings.DEEPMED_MODEL_DIR / f"starter-v{shipped.version}"
    assert challenger.package_uri == str(offered_dir.resolve())
    assert load_package_meta(offered_dir).model_sha256 == shipped.model_sha256

    call_command("install_starter_model")  # idempotent: the shipped file is registered now
    assert ModelVersion.objects.count() == 2 and get_challenger() == challenger


@pytest.mark.django_db
def test_no_starter_is_offered_over_an_admins_challenger_or_when_it_is_served(modelops_settings, tmp_path):
    from apps.modelops.management.commands.install_starter_model import STARTER_PACKAGE
    from apps.modelops.selectors import get_challenger
    from apps.modelops.services import register_model_version

    old = register_model_version(_older_starter(tmp_path / "old-starter", STARTER_PACKAGE), alias="champion")
    theirs = register_model_version(
        _older_starter(tmp_path / "their-run", STARTER_PACKAGE, version="3.1"), alias="challenger"
    )
    call_command("install_starter_model")
    assert get_champion() == old and get_challenger() == theirs and ModelVersion.objects.count() == 2

    ModelVersion.objects.all().delete()
    call_command("install_starter_model")  # fresh install: the shipped starter is the champion
    call_command("install_starter_model")
    assert ModelVersion.objects.count() == 1 and get_challenger() is None
