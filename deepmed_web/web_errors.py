"""What a service's refusal (`apps.core.errors.ApplicationError`) looks like on the web pages.

The API maps refusals once, in its exception handler (deepmed_web/api.py); the HTML views use
these helpers instead of branching on each error type:

- `errors_as_messages`: an action's refusal becomes a `messages` error and the view goes on to
  its redirect (claim, release, promote, roll back, start a job, edit an explanation);
- `add_form_error`: a refusal shown on the page's form, which is re-rendered with the
  refusal's status (upload, review);
- `json_error`: the API's envelope for a page's XHR path (the upload progress bar).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.core.errors import ApplicationError
from deepmed_web.api import error_body
from deepmed_web.middleware import RETRY_AFTER_SECONDS


@contextmanager
def errors_as_messages(
    request: HttpRequest, describe: Callable[[ApplicationError], str] | None = None
) -> Iterator[None]:
    """Run the block; a refusal is shown as an error message (its `message`, or `describe(exc)`)
    and swallowed, so the view continues after the block, typically to a redirect."""
    try:
        yield
    except ApplicationError as exc:
        messages.error(request, describe(exc) if describe else exc.message)


def add_form_error(form: forms.Form, exc: ApplicationError, field: str | None = None) -> int:
    """Show a refusal on `form` (on `field`, or the whole form); returns the status the
    re-rendered page answers with: the refusal's own."""
    form.add_error(field, exc.message)
    return exc.http_status


def with_retry_after(response: HttpResponse, exc: ApplicationError) -> HttpResponse:
    """A 503 refusal is about the server's load, not the request: say when to try again
    (as the API does)."""
    if exc.http_status == 503:
        response["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def json_error(exc: ApplicationError, details: dict[str, Any] | None = None) -> JsonResponse:
    """The refusal in the API's error envelope (`details` replaces the error's own)."""
    body = error_body(exc.code, exc.message, exc.details if details is None else details)
    return with_retry_after(JsonResponse(body, status=exc.http_status), exc)
