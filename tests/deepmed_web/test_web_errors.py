"""The web pages' one mapping of ApplicationError: a message, a form error, or the JSON envelope."""

from __future__ import annotations

import json

from django import forms
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import RequestFactory

from apps.core.errors import ApplicationError
from deepmed_web.web_errors import add_form_error, errors_as_messages, json_error


class Conflict(ApplicationError):
    code = "test_conflict"
    http_status = 409


def _request():
    request = RequestFactory().post("/somewhere/")
    request.session = {}
    request._messages = FallbackStorage(request)
    return request


def test_a_refusal_becomes_an_error_message_and_the_view_goes_on():
    request = _request()
    reached = []
    with errors_as_messages(request):
        raise Conflict("Someone else holds it.")
    reached.append("after")
    with errors_as_messages(request, lambda exc: f"Not done: {exc.code}"):
        raise Conflict("x")
    with errors_as_messages(request):
        pass  # no refusal, no message
    assert reached == ["after"]
    assert [(m.level_tag, m.message) for m in get_messages(request)] == [
        ("error", "Someone else holds it."),
        ("error", "Not done: test_conflict"),
    ]


def test_other_exceptions_are_not_swallowed():
    request = _request()
    try:
        with errors_as_messages(request):
            raise KeyError("a bug")
    except KeyError:
        pass
    else:
        raise AssertionError("a bug was shown as a message")


def test_a_refusal_on_a_form_gives_the_page_its_status():
    form = forms.Form(data={})
    assert add_form_error(form, Conflict("Taken."), None) == 409
    assert form.non_field_errors() == ["Taken."]


def test_the_xhr_answer_is_the_api_envelope_with_retry_after_when_busy():
    busy = json_error(ApplicationError("Busy.", code="server_busy", http_status=503, details={"a": 1}))
    assert busy.status_code == 503 and busy["Retry-After"] == "5"
    assert json.loads(busy.content) == {"error": {"code": "server_busy", "message": "Busy.", "details": {"a": 1}}}
    fields = json_error(Conflict("Taken."), {"fields": {}})
    assert fields.status_code == 409 and "Retry-After" not in fields
    assert json.loads(fields.content)["error"]["details"] == {"fields": {}}
