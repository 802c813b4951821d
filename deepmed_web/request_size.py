"""Request bodies are bounded before they are received.

Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not cover file uploads, and the upload services check a
file's size only once the whole body has been received and spooled. The cap on a request body
is the largest file its path accepts plus DEEPMED_REQUEST_ALLOWANCE_KB (the multipart envelope
and form fields): the studies upload limit (DEEPMED_MAX_UPLOAD_MB) everywhere, the tabular lab's
CSV limit (DEEPMED_TABULAR_MAX_BYTES) under its paths. A request over the cap gets 413
`file_too_large` in the project's error formats (the API envelope for /api/ and for the upload
page's XHR, the styled error page otherwise), enforced at each layer that reads a body:

- Daphne (`limit_daphne_request_bodies`, installed by deepmed_web/asgi.py): Twisted receives and
  buffers a whole body before the application is called, so the cap is applied there, from the
  headers: a declared Content-Length over the cap is answered at once and the connection closed
  without reading the body; a chunked body is cut off as soon as it passes the cap;
- any ASGI server (`RequestBodyLimitASGIMiddleware`, wrapping Django in deepmed_web/asgi.py):
  Django's ASGI handler reads the whole body before any middleware runs; this wrapper gives it
  no body at all for a declared length over the cap, and ends a chunked one at the cap; the
  request then reaches the Django middleware below, which answers 413;
- Django (`RequestBodyLimitMiddleware`, early in MIDDLEWARE; WSGI and the test client): a
  declared Content-Length over the cap, or a request the ASGI wrapper marked, is answered before
  anything reads the body (a WSGI body without Content-Length is never read by Django).
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

MB = 1024 * 1024
CODE = "file_too_large"
MIDDLEWARE = "deepmed_web.request_size.RequestBodyLimitMiddleware"
# Paths whose uploads are the tabular lab's CSV files (web pages and API), not X-ray images.
TABULAR_PREFIXES = ("/tabular/", "/api/v1/tabular/")
# Set in the ASGI scope when the wrapper withheld or cut off the body.
SCOPE_KEY = "deepmed.body_too_large"


def file_limit(path: str) -> int:
    """The largest file a request to ``path`` may carry (bytes)."""
    if path.startswith(TABULAR_PREFIXES):
        return int(settings.DEEPMED_TABULAR_MAX_BYTES)
    return int(settings.DEEPMED_MAX_UPLOAD_BYTES)


def body_limit(path: str) -> int:
    """The largest request body accepted for ``path`` (bytes): the file limit plus the allowance."""
    return file_limit(path) + int(settings.DEEPMED_REQUEST_ALLOWANCE_KB) * 1024


def declared_length(value: str | bytes | None) -> int | None:
    """A Content-Length header's value; None when absent or not a plain number (Django reads
    nothing then: its LimitedStream reads 0 bytes for an invalid length)."""
    if value is None:
        return None
    value = value.decode("latin-1") if isinstance(value, bytes) else value
    value = value.strip()
    return int(value) if value.isdigit() else None


def too_large_response(path: str, accept: str) -> HttpResponse:
    """413 `file_too_large` in the API's envelope (for /api/ and clients asking for JSON: the
    upload page's XHR) or as the styled error page."""
    from deepmed_web.api import error_body

    limit_mb = file_limit(path) / MB
    message = f"The file is larger than the {limit_mb:g} MB limit."
    if path.startswith("/api/") or "application/json" in accept:
        response = JsonResponse(error_body(CODE, message, {"max_bytes": body_limit(path)}), status=413)
    else:
        response = HttpResponse(render_to_string("413.html", {"limit_mb": f"{limit_mb:g}"}), status=413)
    response["Cache-Control"] = "no-store"
    return response


class RequestBodyLimitMiddleware:
    """Refuse a request whose body is over the cap before anything reads it (see module doc)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        length = declared_length(request.META.get("CONTENT_LENGTH"))
        marked = getattr(request, "scope", {}).get(SCOPE_KEY, False)
        if marked or (length is not None and length > body_limit(path)):
            logger.warning(
                "request body over the limit refused: %s %s (%s bytes declared)", request.method, path, length
            )
            return too_large_response(path, request.headers.get("Accept", ""))
        return self.get_response(request)


class RequestBodyLimitASGIMiddleware:
    """Around Django's ASGI application: never lets it receive more than the cap (see module doc)."""

    def __init__(self, app):
        if MIDDLEWARE not in settings.MIDDLEWARE:
            raise ImproperlyConfigured(f"{type(self).__name__} needs {MIDDLEWARE} in MIDDLEWARE to answer 413")
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = body_limit(scope.get("path", "/"))
        headers = dict(scope.get("headers") or ())
        length = declared_length(headers.get(b"content-length"))
        if length is not None and length > limit:
            return await self.app({**scope, SCOPE_KEY: True}, _no_body(), send)
        scope = {**scope}
        return await self.app(scope, _capped(receive, limit, scope), send)


def _no_body():
    """A receive() that ends the body at once, without reading it, then waits (Django listens
    for a disconnect while the view runs; it cancels the wait when the response is sent)."""
    ended = False

    async def receive():
        nonlocal ended
        if not ended:
            ended = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()

    return receive


def _capped(receive, limit: int, scope: dict):
    """``receive`` until the body passes ``limit`` bytes; then the body ends there, unread beyond,
    and ``scope`` is marked for the Django middleware."""
    received = 0
    cut = None

    async def capped():
        nonlocal received, cut
        if cut is not None:
            return await cut()
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                scope[SCOPE_KEY] = True
                cut = _no_body()
                return await cut()
        return message

    return capped


# --- Daphne ---------------------------------------------------------------------------------


def limit_daphne_request_bodies() -> None:
    """Apply the cap inside Daphne's request object (Twisted), from the headers: see module doc.
    Idempotent; does nothing when Daphne is not installed."""
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:  # pragma: no cover - Daphne is a dependency
        return
    if getattr(WebRequest, "_deepmed_body_limit", False):
        return
    got_length, handle_chunk, request_received = (
        WebRequest.gotLength,
        WebRequest.handleContentChunk,
        WebRequest.requestReceived,
    )

    def gotLength(self, length):  # Twisted's name
        self._deepmed_limit = body_limit(_target_path(self))
        self._deepmed_received = 0
        self._deepmed_refused = False
        if length is not None and length > self._deepmed_limit:
            from io import BytesIO

            self.content = BytesIO()  # nothing of the body is kept (or read)
            _refuse(self, length)
            return None
        return got_length(self, length)

    def handleContentChunk(self, data):
        if getattr(self, "_deepmed_refused", False):
            return None
        self._deepmed_received = getattr(self, "_deepmed_received", 0) + len(data)
        if self._deepmed_received > getattr(self, "_deepmed_limit", self._deepmed_received):
            _refuse(self, None)
            return None
        return handle_chunk(self, data)

    def requestReceived(self, command, path, version):
        if getattr(self, "_deepmed_refused", False):
            return None  # answered already: the application never sees it
        return request_received(self, command, path, version)

    WebRequest.gotLength = gotLength
    WebRequest.handleContentChunk = handleContentChunk
    WebRequest.requestReceived = requestReceived
    WebRequest._deepmed_body_limit = True


def _target_path(request) -> str:
    """The request target's path, known to the channel before the request object has it."""
    target = getattr(request.channel, "_path", b"/") or b"/"
    return target.split(b"?", 1)[0].decode("latin-1")


def _refuse(request, length: int | None) -> None:
    """Answer 413 on the raw connection and close it; the rest of the request is never read."""
    request._deepmed_refused = True
    channel = request.channel
    path = _target_path(request)
    accept = (request.requestHeaders.getRawHeaders(b"accept") or [b""])[0].decode("latin-1")
    logger.warning("request body over the limit refused by Daphne: %s (%s bytes declared)", path, length)
    response = too_large_response(path, accept)
    head = [b"HTTP/1.1 413 Content Too Large"]
    head += [f"{name}: {value}".encode("latin-1") for name, value in response.items()]
    head += [b"Content-Length: " + str(len(response.content)).encode(), b"Connection: close"]
    channel.dataReceived = lambda data: None  # stop parsing this connection
    channel._send100Continue = lambda: None  # an Expect: 100-continue is answered by the 413
    channel.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + response.content)
    channel.loseConnection()
