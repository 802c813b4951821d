"""HTTP responses shared by the study pages (views.py) and the API (api.py)."""

from __future__ import annotations

from django.http import FileResponse, Http404


def png_response(field) -> FileResponse:
    """A stored PNG, privately: only ever returned after a permission check."""
    if not field:
        raise Http404("No such file.")
    try:
        handle = field.open("rb")
    except FileNotFoundError as exc:
        raise Http404("No such file.") from exc
    response = FileResponse(handle, content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response
