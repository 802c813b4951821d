"""ASGI entry point: HTTP through Django (request bodies capped first), WebSockets through
Channels (session cookie for browsers, JWT for apps: deepmed_web/ws_auth.py)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepmed_web.settings")
django_asgi_app = get_asgi_application()


def configure_web_db_connections() -> None:
    """Under ASGI each request runs in its own context, and Django keeps database connections per
    context: one kept for CONN_MAX_AGE is never reused by a later request, it stays open until
    garbage-collected. At 10 uploads/s in services mode that exhausted PostgreSQL's
    max_connections within seconds (HTTP 500, "too many clients"). Django's advice for ASGI:
    CONN_MAX_AGE = 0, each request closes its own. (Celery workers keep theirs: settings.py.)
    A new PostgreSQL connection per request (backend start, SET TIME ZONE) was ~16% of the web
    process's CPU at 10 uploads/s, so on PostgreSQL "closing" hands it back to a process-wide
    psycopg pool (at most DEEPMED_DB_POOL_MAX_SIZE, health-checked before reuse)."""
    from django.conf import settings
    from django.db import connections

    for alias, database in settings.DATABASES.items():
        database["CONN_MAX_AGE"] = 0
        if database["ENGINE"] == "django.db.backends.postgresql" and settings.DEEPMED_DB_POOL_MAX_SIZE > 0:
            if connections[alias].connection is not None:  # opened before: it could not go back to the pool
                connections[alias].close()
            database.setdefault("OPTIONS", {})["pool"] = {
                "min_size": min(2, settings.DEEPMED_DB_POOL_MAX_SIZE),
                "max_size": settings.DEEPMED_DB_POOL_MAX_SIZE,
            }


configure_web_db_connections()

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
