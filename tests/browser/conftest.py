"""Real headless Chromium (Debian's package) driven by Playwright against a real server.

`embedded_portal` runs `manage.py serve` (Daphne: HTTP + WebSockets, in-process Celery
worker, SQLite) in a subprocess on a free port, with a tiny random-weight model package
registered as champion, so uploads really get predicted. Screenshots go to
$DEEPMED_DATA_DIR/test-artifacts/browser/.

The pages run under the real Content-Security-Policy (no 'unsafe-eval'): give wait_for_function
an arrow function ("() => …"), not a bare expression. Playwright evaluates the string on every
poll with eval(), which the policy blocks after the first poll; a function is evaluated once.
Every page records the policy violations it reports (csp_violations, csp_console).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Runs in every page: records each status the study page shows, first as rendered by the
# server, then every live change (and over which channel), across the page's own reloads.
STATUS_RECORDER = """
(() => {
  const KEY = "deepmed-status-log";
  const push = (entry) => {
    const log = JSON.parse(sessionStorage.getItem(KEY) || "[]");
    log.push(entry);
    sessionStorage.setItem(KEY, JSON.stringify(log));
  };
  document.addEventListener("DOMContentLoaded", () => {
    const badge = document.getElementById("study-status");
    if (!badge) return;
    const status = () => (badge.className.match(/status-(\\w+)/) || [])[1];
    push({ status: status(), via: "render" });
    new MutationObserver(() => push({ status: status(), via: "live", channel: badge.dataset.live || "" }))
      .observe(badge, { attributes: true, attributeFilter: ["class"] });
  });
})();
"""

# Runs in every page: records each Content-Security-Policy violation the page reports (what the
# policy blocked: an inline script or style, a handler, a resource from elsewhere).
CSP_RECORDER = """
(() => {
  document.addEventListener("securitypolicyviolation", (e) => {
    const log = JSON.parse(sessionStorage.getItem("deepmed-csp-violations") || "[]");
    log.push({ page: location.pathname, directive: e.effectiveDirective || e.violatedDirective,
               blocked: e.blockedURI, source: e.sourceFile, line: e.lineNumber, sample: e.sample || "" });
    sessionStorage.setItem("deepmed-csp-violations", JSON.stringify(log));
  });
})();
"""


@pytest.fixture
def csp_console() -> list[str]:
    """Console messages about the Content-Security-Policy of every page the test's browser
    contexts opened (Chromium logs "Refused to … because it violates … Content Security Policy")."""
    return []


@pytest.fixture(scope="session")
def csp_violations(session_json):
    """csp_violations(page) -> the CSP violations that page's tab reported (all its pages)."""
    return lambda page: session_json(page, "deepmed-csp-violations")


@pytest.fixture(scope="session")
def session_json():
    """session_json(page, key) -> the JSON list a recorder script keeps in the tab's
    sessionStorage under `key` (read again after the page's own reload when one was under way)."""
    from playwright.sync_api import Error

    def read(page, key: str) -> list[dict]:
        for _ in range(20):
            try:
                page.wait_for_load_state()
                return json.loads(page.evaluate(f"sessionStorage.getItem('{key}') || '[]'"))
            except Error:  # the page was reloading itself
                page.wait_for_timeout(250)
        raise AssertionError("the page never settled")

    return read


@pytest.fixture(scope="session")
def status_log(session_json):
    """status_log(page) -> every status that page's tab has shown, in order."""
    return lambda page: session_json(page, "deepmed-status-log")


@pytest.fixture(scope="session")
def settled_on():
    """settled_on(page, status, status_log): wait until the page has been rendered by the server
    at `status` (after that the page reloads itself only for a review or a failure)."""

    def wait(page, status: str, status_log, timeout_s: float = 90.0) -> list[dict]:
        for _ in range(int(timeout_s * 4)):
            log = status_log(page)
            if [e["status"] for e in log if e["via"] == "render"][-1:] == [status]:
                return log
            page.wait_for_timeout(250)
        raise AssertionError(f"the page never rendered {status}: {log}")

    return wait


@pytest.fixture(scope="session")
def artifacts() -> Path:
    from django.conf import settings

    folder = Path(settings.DATA_DIR) / "test-artifacts" / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser():
    """Chromium for one test. Playwright's sync API keeps an event loop running in this
    thread while it is open, which makes Django refuse ORM calls ("async context"): the
    test's own (synchronous) database work is allowed for exactly that long."""
    if not CHROMIUM.exists():
        pytest.skip(f"headless Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
            # Connections opened while Playwright's loop ran live in that context: close them
            # there, or the test database cannot be dropped at the end of the session.
            from django.db import connections

            connections.close_all()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser, csp_console):
    """new_page(base_url) -> a page in a fresh browser context (its own cookies = its own user)."""
    contexts = []

    def make(base_url: str, *, websockets: bool = True):
        context = browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 1000})
        context.set_default_timeout(30_000)
        context.add_init_script(STATUS_RECORDER)
        context.add_init_script(CSP_RECORDER)
        context.on(
            "console",
            lambda message: (
                csp_console.append(f"{message.page.url if message.page else ''}: {message.text}")
                if "Content Security Policy" in message.text
                else None
            ),
        )
        if not websockets:  # a browser or proxy without WebSockets: the page must fall back to polling
            context.add_init_script("delete window.WebSocket;")
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def embedded_portal(tmp_path_factory, process_tools):
    from ml_core.testing import make_tiny_package

    data_dir = tmp_path_factory.mktemp("portal-embedded")
    package = make_tiny_package(data_dir / "cxr-tiny")
    server, base = process_tools.start_embedded_server(
        data_dir, setup=[["register_model", str(package), "--alias", "champion"]]
    )
    yield SimpleNamespace(url=base, log=server.log, data_dir=data_dir)
    server.kill()
