"""Web pages when the database goes away mid-request (failover, dropped connection): a clean
"try again" page with 503 and Retry-After instead of a 500. The API has the same answer in its
error envelope (deepmed_web/api.py). Django reconnects on the next request (CONN_HEALTH_CHECKS)."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# What "the database went away" looks like to Django, and when to come back; the API's
# exception handler (deepmed_web/api.py) answers the same errors with the same delay.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = "5"


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None
        logger.error("database unavailable during %s %s", request.method, request.path, exc_info=exception)
        # A standalone template: base.html may need the database (user, messages).
        response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = RETRY_AFTER_SECONDS
        return response
