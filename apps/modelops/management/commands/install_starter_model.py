"""Deploy the starter model shipped in ml_core/starter/ when nothing is deployed yet (idempotent)."""

import shutil

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.modelops.models import Alias
from apps.modelops.selectors import get_champion
from apps.modelops.services import register_model_version

STARTER_PACKAGE = settings.BASE_DIR / "ml_core" / "starter" / "cxr-starter"


class Command(BaseCommand):
    help = "Register the shipped starter model as champion if no model is deployed."

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
        version = register_model_version(target, alias=Alias.CHAMPION)
        self.stdout.write(self.style.SUCCESS(f"deployed starter model {version}"))
