from django.core.management.base import BaseCommand, CommandError

from apps.modelops.models import Alias
from apps.modelops.services.registry import register_model_version


class Command(BaseCommand):
    help = "Register a model package directory (model.onnx + package.json); --alias champion deploys it."

    def add_arguments(self, parser):
        parser.add_argument("package_dir")
        parser.add_argument("--alias", default="", choices=list(Alias.values))

    def handle(self, *args, package_dir, alias, **options):
        try:
            version = register_model_version(package_dir, alias=alias)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise CommandError(f"not a model package: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"registered {version}"))
