"""ASGI entry point: HTTP through Django (request bodies capped first), WebSockets through
Channels (session cookie for browsers, JWT for apps: deepmed_web/ws_auth.py)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepmed_web.settings")
django_asgi_app = get_asgi_application()


def close_db_connections_per_request() -> None:
    """Under ASGI each request runs in its own context, and Django keeps database connections per
    context: one kept for CONN_MAX_AGE is never reused by a later request, it stays open until
    garbage-collected. At 10 uploads/s in services mode that exhausted PostgreSQL's
    max_connections within seconds (HTTP 500, "too many clients"). Django's advice for ASGI:
    CONN_MAX_AGE = 0, each request closes its own. (Celery workers keep theirs: settings.py.)"""
    from django.conf import settings

    for database in settings.DATABASES.values():
        database["CONN_MAX_AGE"] = 0


close_db_connections_per_request()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up first)

from deepmed_web.request_size import RequestBodyLimitASGIMiddleware, limit_daphne_request_bodies  # noqa: E402
from deepmed_web.routing import websocket_urlpatterns  # noqa: E402
from deepmed_web.ws_auth import websocket_auth_stack  # noqa: E402

# Request bodies are capped before they are received: in Daphne (which buffers a whole body
# before calling the application) and around Django (deepmed_web/request_size.py).
limit_daphne_request_bodies()

application = ProtocolTypeRouter(
    {
        "http": RequestBodyLimitASGIMiddleware(django_asgi_app),
        "websocket": websocket_auth_stack(URLRouter(websocket_urlpatterns)),
    }
)
