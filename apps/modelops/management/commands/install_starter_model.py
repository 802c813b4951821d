"""Deploy the starter model shipped in ml_core/starter/ when nothing is deployed yet (idempotent)."""

import shutil

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.modelops.models import Alias
from apps.modelops.selectors import get_champion
from apps.modelops.services.registry import register_model_version

STARTER_PACKAGE = settings.BASE_DIR / "ml_core" / "starter" / "cxr-starter"


class Command(BaseCommand):
    help = "Register the shipped starter model as champion if no model is deployed."

    def add_arguments(self, parser):
        parser.add_argument(
            "--mlflow",
            action="store_true",
            help="also register the package in the MLflow registry (alias champion); costs a few seconds",
        )

    def handle(self, *args, **options):
        champion = get_champion()
        if champion is not None:
            self.stdout.write(f"deployed model: {champion}")
            return
        if not (STARTER_PACKAGE / "package.json").exists():
            raise CommandError(f"no starter model package at {STARTER_PACKAGE}")
        # Copy out of the source tree so the deployed package never changes under a running worker.
        target = settings.DEEPMED_MODEL_DIR / "starter"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(STARTER_PACKAGE, target)
        registry = self._register_in_mlflow(target) if options["mlflow"] else {}
        version = register_model_version(target, alias=Alias.CHAMPION, **registry)
        self.stdout.write(self.style.SUCCESS(f"deployed starter model {version}"))

    def _register_in_mlflow(self, package_dir) -> dict[str, str]:
        """MLflow registry version for the package, or {} (DB-only) when MLflow is unavailable."""
        try:
            from ml_core import tracking

            name, version = tracking.register_package(
                settings.MLFLOW_TRACKING_URI, package_dir, settings.DEEPMED_REGISTERED_MODEL, alias=Alias.CHAMPION
            )
            run_id = next(
                v.run_id for v in tracking.list_versions(settings.MLFLOW_TRACKING_URI, name) if v.version == version
            )
        except Exception as exc:
            self.stderr.write(f"MLflow registration skipped: {exc}")
            return {}
        self.stdout.write(f"registered in MLflow as {name} v{version}")
        return {"registered_name": name, "version": version, "mlflow_run_id": run_id}
