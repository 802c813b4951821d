"""The one error type services raise when they refuse an operation.

A refusal carries a stable machine-readable `code` (the API's `error.code`, documented in the
README), a `message` for people, the HTTP status it answers with, and `details` (the API's
`error.details`). Services raise subclasses; they are mapped to responses in two places only:
the API's exception handler (deepmed_web/api.py) and the web pages' helpers
(deepmed_web/web_errors.py). Plain Python: importable by services, workers and commands
without DRF (HackSoft's `ApplicationError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class ApplicationError(Exception):
    code: str = "application_error"
    http_status: int = 400
    # A family whose code varies per instance states the status of each code once, here,
    # instead of every view keeping its own table (codes not listed get `http_status`).
    status_by_code: ClassVar[Mapping[str, int]] = {}

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        details: Mapping[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is None:
            http_status = self.status_by_code.get(self.code, type(self).http_status)
        self.http_status = http_status
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, http_status={self.http_status}, message={self.message!r})"
