"""Deploy the starter model shipped in ml_core/starter/ on a fresh install; on an install that
serves another model, offer a newer shipped starter as challenger (idempotent)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.modelops.services.starter import CHALLENGER_IN_PLACE, DEPLOYED, OFFERED, install_shipped_starter

STARTER_PACKAGE = settings.BASE_DIR / "ml_core" / "starter" / "cxr-starter"


class Command(BaseCommand):
    help = (
        "Register the shipped starter model as champion if no model is deployed; otherwise register a "
        "newer shipped starter as challenger (shadow), to be promoted through the gates from the console."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--mlflow",
            action="store_true",
            help="also register the package in the MLflow registry; costs a few seconds",
        )

    def handle(self, *args, **options):
        if not (STARTER_PACKAGE / "package.json").exists():
            raise CommandError(f"no starter model package at {STARTER_PACKAGE}")
        result = install_shipped_starter(STARTER_PACKAGE, with_mlflow=options["mlflow"])
        if result.outcome == DEPLOYED:
            self.stdout.write(self.style.SUCCESS(f"deployed starter model {result.version}"))
        elif result.outcome == OFFERED:
            self.stdout.write(
                self.style.SUCCESS(
                    f"a newer starter model, {result.version}, is registered as challenger: it runs in shadow; "
                    "compare and promote it through the gates from the console"
                )
            )
        elif result.outcome == CHALLENGER_IN_PLACE:
            self.stdout.write(
                f"deployed model: {result.version}; a newer starter ships in {STARTER_PACKAGE} but a challenger is "
                "in place: register it with `manage.py register_model <dir> --alias challenger` when you are ready"
            )
        else:
            self.stdout.write(f"deployed model: {result.version}")
