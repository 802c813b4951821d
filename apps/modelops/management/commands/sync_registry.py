from django.core.management.base import BaseCommand

from apps.modelops.services.registry import sync_registry


class Command(BaseCommand):
    help = "Re-read the MLflow registry into the ModelVersion mirror (MLflow wins on every difference)."

    def add_arguments(self, parser):
        parser.add_argument("--name", default="", help="registered model (default DEEPMED_REGISTERED_MODEL)")

    def handle(self, *args, name, **options):
        for version in sync_registry(registered_name=name):
            self.stdout.write(f"{version}")
        self.stdout.write(self.style.SUCCESS("registry mirror in sync"))
