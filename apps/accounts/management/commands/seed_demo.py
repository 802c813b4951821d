from django.core.management.base import BaseCommand

from apps.accounts.models import User
from apps.accounts.services import create_user, set_user_password

DEMO_ACCOUNTS = (
    ("patient", "demo-patient", "patient-demo-pass"),
    ("physician", "demo-physician", "physician-demo-pass"),
    ("admin", "demo-admin", "admin-demo-pass"),
)


class Command(BaseCommand):
    help = "Create (or reset) the demo patient, physician and admin accounts and print their credentials."

    def handle(self, *args, **options):
        self.stdout.write("Demo accounts (local use only):")
        for role, username, password in DEMO_ACCOUNTS:
            user = User.objects.filter(username=username).first()
            if user is None:
                create_user(username=username, password=password, role=role, validate=False)
            else:
                set_user_password(user, password)
            self.stdout.write(f"  {role:<10} username={username:<16} password={password}")
