"""Serve HTTP + WebSockets with Daphne; in embedded mode also run the Celery worker in-process."""

import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand


def _leave_request_bodies_to_django() -> None:
    """Twisted (under Daphne) parses every multipart POST body itself, only to fill an argument
    dict Daphne never uses: a second in-memory copy of each upload, and a malformed body gets
    Twisted's bare 400 instead of the application's error envelope. Turn that parsing off."""
    from daphne.http_protocol import WebRequest

    if getattr(WebRequest, "_deepmed_body_parsing_off", False):
        return
    original_init = WebRequest.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    WebRequest.__init__ = init
    WebRequest._deepmed_body_parsing_off = True


class Command(BaseCommand):
    help = "Run the ASGI server (and, without REDIS_URL, the in-process Celery worker)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-worker", action="store_true", help="do not start the embedded worker")

    def handle(self, *args, host, port, no_worker, **options):
        from channels.routing import get_default_application
        from daphne.access import AccessLogGenerator
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        if settings.EMBEDDED_MODE and not no_worker:
            from deepmed_web.embedded import start_embedded_worker

            start_embedded_worker()
            mode = "embedded (SQLite/local media/in-process worker unless configured)"
        else:
            mode = "services (Redis broker; run `celery -A deepmed_web worker` separately)"
        self.stdout.write(f"DeepMed serving on http://{host}:{port}/ — mode: {mode}")
        _leave_request_bodies_to_django()
        Server(
            application=get_default_application(),
            endpoints=build_endpoint_description_strings(host=host, port=port),
            action_logger=AccessLogGenerator(sys.stdout),
            proxy_forwarded_address_header="X-Forwarded-For" if settings.SECURE_PROXY_SSL_HEADER else None,
            proxy_forwarded_port_header="X-Forwarded-Port" if settings.SECURE_PROXY_SSL_HEADER else None,
            proxy_forwarded_proto_header="X-Forwarded-Proto" if settings.SECURE_PROXY_SSL_HEADER else None,
        ).run()
