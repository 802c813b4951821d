"""Usernames (apps/accounts/usernames.py): NFKC-normalised, letters/digits/. _ - @ + only (no
invisible, control or space characters), and never confusable with a physician's or an
administrator's username. One function, used by the API sign-up, the web sign-up and
`manage.py create_user` (through accounts.services.create_user)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from apps.accounts.models import User
from apps.accounts.services import create_user
from apps.accounts.usernames import clean_username, skeleton

PASSWORD = "correct-horse-battery"

# Each refused input with a word its message must contain.
REFUSED = [
    ("demo-physician\u200b", "invisible"),  # zero-width space (Cf) at the end
    ("demo\u200d-physician", "invisible"),  # zero-width joiner inside
    ("\u202eenaicisyhp-omed", "invisible"),  # right-to-left override
    ("bo\x07b", "invisible"),  # a control character (Cc)
    ("dr house (Physician)", "letters, digits"),  # spaces and brackets
    ("dr\u00a0house", "letters, digits"),  # a no-break space (Zs) becomes a space under NFKC
    ("<b>admin</b>", "letters, digits"),  # markup
    ("<script>alert(1)</script>", "letters, digits"),
    ("a\u0336lice", "letters, digits"),  # a combining overlay with nothing to compose with
    ("x" * 151, "150"),
]

# Lookalikes of the staff usernames "demo-physician" and "dr-house".
CONFUSABLE = [
    "demo-physici\u0430n",  # Cyrillic а
    "d\u0435mo-physician",  # Cyrillic е
    "dr-h\u043euse",  # Cyrillic о
    "dr-h\u03bfuse",  # Greek ο
    "dr-h0use",  # digit zero
    "dr.house",
    "Dr_House",
    "DRHOUSE",
    "\uff44\uff52-house",  # fullwidth letters (NFKC)
    "demo--physician",
]


@pytest.fixture
def staff(db):
    create_user(username="demo-physician", password=PASSWORD, role="physician", validate=False)
    create_user(username="dr-house", password=PASSWORD, role="physician", validate=False)
    create_user(username="root-admin", password=PASSWORD, role="admin", validate=False)


@pytest.mark.parametrize("raw,word", REFUSED)
def test_refused_characters(db, raw, word):
    with pytest.raises(ValidationError) as exc:
        clean_username(raw)
    assert word in " ".join(exc.value.messages)


@pytest.mark.parametrize("raw", CONFUSABLE)
def test_lookalikes_of_staff_usernames_are_refused(staff, raw):
    with pytest.raises(ValidationError) as exc:
        clean_username(raw)
    assert "too similar" in " ".join(exc.value.messages) or "taken" in " ".join(exc.value.messages)


@pytest.mark.parametrize(
    "raw,stored",
    [
        ("carol", "carol"),
        ("Mar\u00eda.Garc\u00eda", "Mar\u00eda.Garc\u00eda"),
        ("jo+deepmed@example.org", "jo+deepmed@example.org"),
        ("\ufb01ona_2", "fiona_2"),  # the ligature ﬁ is normalised (NFKC)
        ("e\u0301mile", "\u00e9mile"),  # e + combining acute = é
        ("  padded  ", "padded"),
        ("demo-patient", "demo-patient"),  # not a lookalike of demo-physician
    ],
)
def test_accepted_usernames_are_normalised(staff, raw, stored):
    assert clean_username(raw) == stored


def test_the_skeleton_maps_homoglyphs_case_and_separators():
    assert skeleton("Dr.H\u043eUSE") == skeleton("dr-house") == skeleton("dr_h0use") == "drhouse"
    assert skeleton("r\u043e\u043et-adm1n") == skeleton("root-admln")
    assert skeleton("alice") != skeleton("alicia")


def test_lookalikes_of_patients_are_not_refused(db):
    create_user(username="alice", password=PASSWORD, role="patient", validate=False)
    assert clean_username("al1ce") == "al1ce"  # only staff names carry authority worth faking


# --- the three ways in ----------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["demo-physician\u200b", "dr house (Physician)", "<b>admin</b>", "dr-h\u043euse"])
def test_api_sign_up_refuses(api_client, staff, raw):
    response = api_client.post("/api/v1/auth/register", {"username": raw, "password": PASSWORD}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "username" in response.json()["error"]["details"]["fields"]
    assert User.objects.count() == 3


def test_api_sign_up_stores_the_normalised_name(api_client, db):
    response = api_client.post("/api/v1/auth/register", {"username": "\ufb01ona", "password": PASSWORD}, format="json")
    assert response.status_code == 201 and response.json()["username"] == "fiona"
    assert User.objects.filter(username="fiona").exists()


@pytest.mark.parametrize("raw", ["demo-physician\u200b", "dr house (Physician)", "<b>admin</b>", "dr-h\u043euse"])
def test_web_sign_up_refuses(client, staff, raw):
    response = client.post(
        "/accounts/signup/", {"username": raw, "email": "", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 400
    assert response.context["form"].errors.get("username")
    assert User.objects.count() == 3


@pytest.mark.parametrize("raw", ["demo-physician\u200b", "dr house (Physician)", "<b>admin</b>", "dr-h\u043euse"])
def test_create_user_command_refuses(staff, raw):
    with pytest.raises(CommandError):
        call_command("create_user", "--role", "physician", "--username", raw, "--password", "tardis-blue-box-42")
    assert User.objects.count() == 3


def test_the_service_refuses_even_without_password_validation(staff):
    with pytest.raises(ValidationError) as exc:
        create_user(username="dr.house", password="x", role="admin", validate=False)
    assert "username" in exc.value.message_dict
