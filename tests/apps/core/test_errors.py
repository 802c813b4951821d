"""ApplicationError: the one refusal type services raise (code, message, status, details)."""

from __future__ import annotations

import pytest

from apps.core.errors import ApplicationError


class Refused(ApplicationError):
    code = "refused"
    http_status = 409


class Family(ApplicationError):
    status_by_code = {"too_big": 413}


def test_a_subclass_carries_its_class_code_and_status():
    exc = Refused("No, not now.")
    assert (exc.code, exc.http_status, exc.message, exc.details) == ("refused", 409, "No, not now.", {})
    assert str(exc) == "No, not now."


def test_an_instance_may_override_code_status_and_give_details():
    details = {"reason": "why"}
    exc = Refused("No.", code="other", http_status=403, details=details)
    assert (exc.code, exc.http_status, exc.details) == ("other", 403, {"reason": "why"})
    details["reason"] = "changed"
    assert exc.details == {"reason": "why"}  # a copy: the raiser cannot change it afterwards


@pytest.mark.parametrize(("code", "status"), [("too_big", 413), ("anything_else", 400)])
def test_a_family_states_the_status_of_each_code_once(code, status):
    assert Family("x", code=code).http_status == status
    assert Family("x", code=code, http_status=429).http_status == 429
