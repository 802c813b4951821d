import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import Role, User
from apps.accounts.selectors import has_current_consent
from apps.accounts.services import accept_disclaimer, create_user


@pytest.mark.parametrize("role,staff", [("patient", False), ("physician", False), ("admin", True)])
def test_create_user_sets_role_group_and_staff(db, role, staff):
    user = create_user(username=f"u-{role}", password="a-long-test-password", role=role)
    assert user.role == role and user.is_staff is staff
    assert list(user.groups.values_list("name", flat=True)) == [role]
    assert user.check_password("a-long-test-password")


def test_create_user_refuses_unknown_role_and_duplicates(db):
    with pytest.raises(ValueError):
        create_user(username="x", password="a-long-test-password", role="nurse")
    create_user(username="x", password="a-long-test-password", role="patient")
    with pytest.raises(ValueError):
        create_user(username="x", password="a-long-test-password", role="patient")


def test_create_user_command(db, capsys):
    call_command("create_user", "--role", "physician", "--username", "dr-who", "--password", "tardis-blue-box-42")
    assert User.objects.get(username="dr-who").role == Role.PHYSICIAN
    with pytest.raises(CommandError, match="too short"):
        call_command("create_user", "--role", "patient", "--username", "p", "--password", "x1")


def test_seed_demo_is_safe_to_run_again(db, capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "username=demo-patient" in out and "password=" in out
    assert User.objects.filter(username__startswith="demo-").count() == 3
    assert User.objects.get(username="demo-admin").is_staff


def test_consent_is_versioned(patient, monkeypatch):
    assert not has_current_consent(patient)
    accept_disclaimer(patient, ip_address="10.0.0.1")
    assert has_current_consent(patient)
    monkeypatch.setattr("apps.accounts.selectors.CURRENT_VERSION", "2")
    assert not has_current_consent(patient)  # a new disclaimer version asks again
