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


def test_the_domain_errors_are_application_errors_with_their_codes_and_statuses():
    from apps.accounts.services import AccountLocked, ConsentVersionError, WrongPassword
    from apps.explanations.services import ExplanationError
    from apps.modelops.services import InvalidJobParameters, NoHoldout, NothingToRollBack
    from apps.review.services import ReviewError
    from apps.studies.services import StudyIntakeError

    cases = [
        (StudyIntakeError("consent_required", "m"), "consent_required", 403),
        (StudyIntakeError("file_too_large", "m"), "file_too_large", 413),
        (StudyIntakeError("server_busy", "m"), "server_busy", 503),
        (StudyIntakeError("corrupt_image", "m"), "corrupt_image", 400),
        (ReviewError("study_claimed", "m", 409), "study_claimed", 409),
        (ReviewError("invalid_final_label", "m"), "invalid_final_label", 400),
        (ExplanationError("no_edits", "m"), "no_edits", 409),
        (ExplanationError("no_explanation", "m"), "no_explanation", 404),
        (ExplanationError("empty_text", "m"), "empty_text", 400),
        (NothingToRollBack("m"), "nothing_to_roll_back", 409),
        (NoHoldout("m"), "no_holdout", 409),
        (InvalidJobParameters({"tier": "one of quick"}), "invalid_request", 400),
        (ConsentVersionError("m"), "consent_version_mismatch", 409),
        (WrongPassword("m"), "wrong_password", 403),
        (AccountLocked(), "account_locked", 429),
    ]
    for exc, code, status in cases:
        assert isinstance(exc, ApplicationError)
        assert (exc.code, exc.http_status) == (code, status), exc


def test_intake_details_keep_the_finer_reason_only_when_it_differs():
    from apps.studies.services import StudyIntakeError

    assert StudyIntakeError("image_too_large", "m", reason="decompression_bomb").details == {
        "reason": "decompression_bomb"
    }
    assert StudyIntakeError("corrupt_image", "m", reason="corrupt_image").details == {}


def test_invalid_job_parameters_stay_value_errors_with_fields():
    from apps.modelops.services import InvalidJobParameters

    exc = InvalidJobParameters({"tier": "one of quick"})
    assert isinstance(exc, ValueError) and exc.details == {"fields": {"tier": "one of quick"}}
