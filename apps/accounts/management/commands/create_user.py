from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Role
from apps.accounts.services import create_user


class Command(BaseCommand):
    help = "Create a DeepMed user non-interactively (for operators and scripts)."

    def add_arguments(self, parser):
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--email", default="")

    def handle(self, *args, role, username, password, email, **options):
        try:
            user = create_user(username=username, password=password, role=role, email=email)
        except (ValueError, ValidationError) as exc:
            message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            raise CommandError(message) from exc
        self.stdout.write(self.style.SUCCESS(f"created {user.role} {user.username!r} (id {user.pk})"))
