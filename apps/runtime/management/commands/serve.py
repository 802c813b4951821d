"""Serve HTTP + WebSockets with Daphne; in embedded mode also run the Celery worker in-process.

With `--processes N` (default DEEPMED_WEB_PROCESSES, 1) above 1, services mode only: this process
binds the listening socket once and starts N Daphne processes (`manage.py serve --listen-fd`) that
accept on it together; one process holds one GIL, so N of them use up to N cores. It forwards
SIGTERM/SIGINT to them and waits for them. If one exits on its own, it stops the others and exits
with status 1 (no restart: the supervisor (compose `restart:`, systemd, k8s) restarts the whole
server). Each process has its own PostgreSQL pool (DEEPMED_DB_POOL_MAX_SIZE) and its own Prometheus
request counters.
"""

import argparse
import os
import signal
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# Listening backlog of the shared socket: Twisted's default, what a single process listens with.
LISTEN_BACKLOG = 50
# After SIGTERM, how long the children get before SIGKILL (Daphne closes applications within 10 s).
STOP_GRACE_SECONDS = 30.0


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
        parser.add_argument(
            "--processes",
            type=int,
            default=settings.DEEPMED_WEB_PROCESSES,
            help="Daphne processes sharing the port (services mode only; default DEEPMED_WEB_PROCESSES)",
        )
        # Internal: a child of `--processes N` serves on the listening socket it inherited.
        parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
        parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)

    def handle(self, *args, host, port, no_worker, processes, listen_fd, parent_pid, **options):
        if listen_fd is not None:
            return self._serve_inherited_socket(listen_fd, parent_pid or os.getppid())
        if processes < 1:
            raise CommandError("--processes must be at least 1")
        if processes > 1:
            if settings.EMBEDDED_MODE:
                raise CommandError(
                    f"--processes {processes} (DEEPMED_WEB_PROCESSES) needs services mode (REDIS_URL set): "
                    "embedded mode keeps its Celery worker and channel layer inside the one web process"
                )
            return self._serve_processes(host, port, processes)

        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server  # noqa: F401  (imported before the worker, as always: it installs the reactor)

        if settings.EMBEDDED_MODE and not no_worker:
            from deepmed_web.embedded import start_embedded_worker

            start_embedded_worker()
            mode = "embedded (SQLite/local media/in-process worker unless configured)"
        else:
            mode = "services (Redis broker; run `celery -A deepmed_web worker` separately)"
        self.stdout.write(f"DeepMed serving on http://{host}:{port}/ — mode: {mode}")
        _daphne(build_endpoint_description_strings(host=host, port=port)).run()

    def _serve_inherited_socket(self, fd: int, parent: int) -> None:
        """A child of `--processes N`: Daphne on the parent's listening socket; stops when the
        parent is gone (killed without forwarding a signal), so no server is left orphaned."""
        from daphne.endpoints import build_endpoint_description_strings

        server = _daphne(build_endpoint_description_strings(file_descriptor=fd))  # imports daphne.server first
        from twisted.internet import task

        # `parent` comes from the parent itself (--parent-pid): read here with os.getppid() it was
        # already 1 when the parent died while this process was still starting, and the orphan
        # then never noticed (a flaky test found it).
        def stop_if_orphaned() -> None:
            if os.getppid() != parent:
                watchdog.stop()
                server.stop()

        watchdog = task.LoopingCall(stop_if_orphaned)
        watchdog.start(1.0, now=False)
        server.run()

    def _serve_processes(self, host: str, port: int, processes: int) -> None:
        import socket
        import subprocess

        # Daphne's fd endpoint adopts AF_INET sockets (daphne/twisted/plugins/fd_endpoint.py).
        try:
            address = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]
        except socket.gaierror as error:
            raise CommandError(f"--processes > 1 listens on IPv4 only, and {host!r} is no IPv4 host: {error}") from None
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted's own TCP port does
        try:
            listener.bind(address)
        except OSError as error:
            raise CommandError(f"cannot listen on {host}:{port}: {error}") from None
        listener.listen(LISTEN_BACKLOG)

        children: list[subprocess.Popen] = []
        stopping = False

        def stop(signum=None, frame=None) -> None:
            nonlocal stopping
            stopping = True
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        argv = [sys.executable, str(settings.BASE_DIR / "manage.py"), "serve", "--listen-fd", str(listener.fileno())]
        argv += ["--parent-pid", str(os.getpid())]
        self.stdout.write(
            f"DeepMed serving on http://{host}:{port}/ — mode: services (Redis broker; run `celery -A "
            f"deepmed_web worker` separately), {processes} web processes"
        )
        self.stdout.flush()
        for _ in range(processes):
            if stopping:
                break
            # Own process group: a signal to this process's group reaches the children once, from here.
            children.append(subprocess.Popen(argv, pass_fds=(listener.fileno(),), process_group=0))
        listener.close()  # the children hold it now
        if stopping:  # a signal came while they started: stop those that did
            stop()

        failed = None
        deadline = None
        while any(child.poll() is None for child in children):
            if not stopping:
                failed = next((child for child in children if child.returncode is not None), None)
                if failed is not None:
                    stop()
            if stopping and deadline is None:
                deadline = time.monotonic() + STOP_GRACE_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                for child in children:
                    if child.poll() is None:
                        child.kill()
            time.sleep(0.2)
        if failed is None and not stopping:  # all ended at once, between two checks
            failed = children[0]
        if failed is not None:
            raise CommandError(
                f"web process {failed.pid} exited with status {failed.returncode}; stopped the other "
                f"{len(children) - 1}"
            )


def _daphne(endpoints: list[str]):
    from channels.routing import get_default_application
    from daphne.access import AccessLogGenerator
    from daphne.server import Server

    _leave_request_bodies_to_django()
    return Server(
        application=get_default_application(),
        endpoints=endpoints,
        action_logger=AccessLogGenerator(sys.stdout),
        proxy_forwarded_address_header="X-Forwarded-For" if settings.SECURE_PROXY_SSL_HEADER else None,
        proxy_forwarded_port_header="X-Forwarded-Port" if settings.SECURE_PROXY_SSL_HEADER else None,
        proxy_forwarded_proto_header="X-Forwarded-Proto" if settings.SECURE_PROXY_SSL_HEADER else None,
    )
