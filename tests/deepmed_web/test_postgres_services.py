import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def test_migrations_apply_on_postgresql_and_match_the_models():
    assert connection.vendor == "postgresql"
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # exits non-zero if models drifted
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM django_migrations WHERE app IN ('studies','accounts','audit','review','modelops')"
        )
        assert cursor.fetchone()[0] >= 5


def test_single_champion_is_enforced_by_the_database(tiny_package):
    from django.db import IntegrityError

    from apps.modelops.models import ModelVersion

    ModelVersion.objects.create(registered_name="a", version="1", alias="champion", package_uri=str(tiny_package))
    with pytest.raises(IntegrityError):
        ModelVersion.objects.create(registered_name="a", version="2", alias="champion", package_uri=str(tiny_package))
