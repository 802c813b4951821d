import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from apps.accounts.models import Role, User
from apps.accounts.selectors import has_current_consent, has_research_consent
from apps.accounts.services import (
    ConsentVersionError,
    accept_disclaimer,
    create_user,
    decide_research_use,
    register_patient,
)
from apps.audit.models import AuditEvent


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


def test_consent_is_versioned(patient, new_disclaimer_version):
    assert not has_current_consent(patient)
    accept_disclaimer(patient, ip_address="10.0.0.1")
    assert has_current_consent(patient)
    new_disclaimer_version()
    assert not has_current_consent(patient)  # a new disclaimer version asks again
    with pytest.raises(ConsentVersionError):
        accept_disclaimer(patient, version="1")  # agreeing to the outdated text is refused
    accept_disclaimer(patient, version="2")
    assert has_current_consent(patient)
    assert list(patient.consents.values_list("disclaimer_version", flat=True)) == ["2", "1"]  # history kept


def test_accepting_twice_records_once(patient):
    first = accept_disclaimer(patient)
    assert accept_disclaimer(patient) == first and patient.consents.count() == 1


def test_research_consent_is_separate_explicit_and_versioned(patient, monkeypatch):
    accept_disclaimer(patient)
    assert not has_research_consent(patient)  # accepting the disclaimer never implies research use
    decide_research_use(patient, granted=True, ip_address="10.0.0.2")
    assert has_research_consent(patient)
    decide_research_use(patient, granted=False)
    assert not has_research_consent(patient)
    decide_research_use(patient, granted=True)
    monkeypatch.setattr("apps.accounts.disclaimer.CURRENT_RESEARCH_VERSION", "2")
    assert not has_research_consent(patient)  # a grant of an older text does not cover a new one
    assert list(patient.research_consents.values_list("granted", flat=True)) == [True, False, True]
    actions = AuditEvent.objects.filter(action__startswith="consent.research").values_list("action", flat=True)
    assert sorted(actions) == ["consent.research.grant", "consent.research.grant", "consent.research.withdraw"]


def test_register_patient_is_always_a_patient_with_a_strong_password(db):
    user = register_patient(username="newbie", password="correct-horse-battery", email="n@example.org")
    assert user.role == Role.PATIENT and not user.is_staff and not user.is_superuser
    assert AuditEvent.objects.filter(action="user.register", object_id=str(user.pk)).exists()
    with pytest.raises(ValidationError):
        register_patient(username="weak", password="12345678")
    with pytest.raises(ValueError):
        register_patient(username="NEWBIE", password="correct-horse-battery")  # case-insensitive uniqueness


def test_an_accepted_disclaimer_is_remembered_on_the_user_object_for_its_version(
    patient, django_assert_num_queries, monkeypatch
):
    from apps.accounts import disclaimer as texts
    from apps.accounts.selectors import has_current_consent
    from apps.accounts.services import accept_disclaimer

    with django_assert_num_queries(1):
        assert not has_current_consent(patient)  # a "no" is not remembered: accepting must count at once
    accept_disclaimer(patient)
    with django_assert_num_queries(1):
        assert has_current_consent(patient) and has_current_consent(patient)
    monkeypatch.setattr(texts, "CURRENT_VERSION", "2099-new-text")
    with django_assert_num_queries(1):
        assert not has_current_consent(patient)  # a new disclaimer is asked about again
