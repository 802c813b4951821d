"""Request bodies are capped before they are received (deepmed_web/request_size.py): a declared
Content-Length over the cap is refused with 413 `file_too_large` without reading the body, a body
without a length is cut off at the cap, in the Django middleware (WSGI, test client), the ASGI
wrapper and inside Daphne (a real server over real HTTP)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

GB = 1024**3


class Unreadable:
    """A wsgi.input that fails the test if anything reads the body."""

    def read(self, *args):
        raise AssertionError("the body of an oversized request must not be read")

    readline = read


def _declaring(client, path: str, length: int, **headers):
    return client.generic(
        "POST",
        path,
        b"",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(length),
        **{"wsgi.input": Unreadable()},
        **headers,
    )


def test_api_upload_declaring_more_than_the_cap_is_413_without_reading_it(client, settings):
    response = _declaring(client, "/api/v1/studies", GB)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "file_too_large" and "30 MB" in error["message"]
    assert error["details"]["max_bytes"] == settings.DEEPMED_MAX_UPLOAD_BYTES + 1024 * 1024


def test_web_upload_declaring_more_than_the_cap_gets_the_styled_page(client):
    response = _declaring(client, "/studies/upload/", GB, HTTP_ACCEPT="text/html")
    assert response.status_code == 413
    page = response.content.decode()
    assert 'id="file-too-large"' in page and "30 MB" in page and "deepmed.css" in page
    assert response["Content-Security-Policy"]  # the security headers' middleware still answers


def test_the_upload_pages_xhr_gets_the_envelope(client):
    response = _declaring(client, "/studies/upload/", GB, HTTP_ACCEPT="application/json")
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"


def test_the_cap_follows_the_upload_limit_and_the_allowance(client, settings):
    settings.DEEPMED_MAX_UPLOAD_BYTES = 10_000
    settings.DEEPMED_REQUEST_ALLOWANCE_KB = 2
    assert _declaring(client, "/api/v1/studies", 10_000 + 2048 + 1).status_code == 413
    # At the cap the request goes on to the view (401 here: not signed in).
    response = client.post("/api/v1/studies", b"x" * (10_000 + 2048), content_type="application/octet-stream")
    assert response.status_code == 401


def test_tabular_paths_keep_their_larger_csv_limit(client, settings):
    csv_sized = 40 * 1024 * 1024  # over the image cap, within the tabular lab's 50 MB
    assert _declaring(client, "/api/v1/studies", csv_sized).status_code == 413
    assert _declaring(client, "/api/v1/tabular/datasets", csv_sized).status_code != 413
    assert _declaring(client, "/api/v1/tabular/datasets", 52 * 1024 * 1024).status_code == 413


# --- the ASGI wrapper -------------------------------------------------------------------------


def _asgi(path: str, headers: list[tuple[bytes, bytes]], chunks, *, chunk_size: int = 64 * 1024):
    """Run deepmed_web.asgi's HTTP application; (status, body, receive calls)."""
    from deepmed_web.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    calls = 0
    sent: list[dict] = []

    async def receive():
        nonlocal calls
        if chunks is None:
            raise AssertionError("the body of an oversized request must not be read")
        if calls == chunks:  # the body was all sent: the client waits for the response
            await asyncio.Event().wait()
        calls += 1
        more = calls < chunks
        return {"type": "http.request", "body": b"x" * chunk_size, "more_body": more}

    async def send(message):
        sent.append(message)

    asyncio.run(asyncio.wait_for(application(scope, receive, send), timeout=30))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, calls


@pytest.mark.django_db
def test_asgi_declared_length_over_the_cap_is_413_without_receiving_the_body():
    status, body, calls = _asgi("/api/v1/studies", [(b"content-length", str(GB).encode())], None)
    assert (status, calls) == (413, 0)
    assert json.loads(body)["error"]["code"] == "file_too_large"


@pytest.mark.django_db
def test_asgi_body_without_a_length_stops_being_read_at_the_cap(settings):
    settings.DEEPMED_MAX_UPLOAD_BYTES = 256 * 1024
    settings.DEEPMED_REQUEST_ALLOWANCE_KB = 64  # cap 320 KB: the sixth 64 KB chunk passes it
    status, body, calls = _asgi("/api/v1/studies", [], 10_000)
    assert (status, calls) == (413, 6)
    assert json.loads(body)["error"]["code"] == "file_too_large"


@pytest.mark.django_db
def test_asgi_body_within_the_cap_reaches_the_view():
    status, body, calls = _asgi("/api/v1/studies", [(b"content-length", str(128 * 1024).encode())], 2)
    assert (status, calls) == (401, 2)  # read in full, then refused for not being signed in


# --- a real Daphne ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daphne_server(tmp_path_factory, process_tools):
    """`manage.py serve` (Daphne, embedded mode) with a 1 MB upload limit and a 64 KB allowance."""
    server, base = process_tools.start_embedded_server(
        tmp_path_factory.mktemp("request-size"), DEEPMED_MAX_UPLOAD_MB="1", DEEPMED_REQUEST_ALLOWANCE_KB="64"
    )
    yield base.removeprefix("http://").split(":")
    server.kill()


def _exchange(address, head: str, body_chunks=()) -> bytes:
    """Send ``head`` (and ``body_chunks``), then read until the server closes the connection."""
    host, port = address
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head.encode())
        for chunk in body_chunks:
            sock.sendall(chunk)
        received = b""
        while data := sock.recv(65536):
            received += data
    return received


def test_daphne_answers_a_declared_gigabyte_from_its_headers(daphne_server):
    host, port = daphne_server
    head = (
        f"POST /api/v1/studies HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {GB}\r\n\r\n"
    )
    response = _exchange(daphne_server, head)  # no byte of the body is ever sent
    status, _, body = response.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413") and b"Connection: close" in status
    error = json.loads(body)["error"]
    assert error["code"] == "file_too_large" and "1 MB" in error["message"]


def test_daphne_web_form_gets_the_styled_page(daphne_server):
    host, port = daphne_server
    head = (
        f"POST /studies/upload/ HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/html\r\n"
        f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {GB}\r\nExpect: 100-continue\r\n\r\n"
    )
    response = _exchange(daphne_server, head)
    assert response.startswith(b"HTTP/1.1 413") and b"100 Continue" not in response
    assert b'id="file-too-large"' in response


def test_daphne_cuts_a_chunked_body_off_at_the_cap(daphne_server):
    host, port = daphne_server
    head = (
        f"POST /api/v1/studies HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * (64 * 1024)
    cap_passed = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 18  # 1152 KB > 1 MB + 64 KB; never terminated
    response = _exchange(daphne_server, head, cap_passed)
    assert response.startswith(b"HTTP/1.1 413") and b'"file_too_large"' in response
