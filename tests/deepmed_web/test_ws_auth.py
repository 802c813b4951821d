"""WebSocket authentication through the real ASGI application (deepmed_web.asgi): apps with a
JWT (header or query), browsers with their session cookie and an allowed Origin. A refusal is
an accepted handshake closed at once with 4401 (log in again) or 4403 (not yours): a refused
handshake would reach the app as a bare HTTP 403 that says neither."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)


async def _connect(path: str, headers: list[tuple[bytes, bytes]] = ()):
    from deepmed_web.asgi import application

    communicator = WebsocketCommunicator(application, path, headers=list(headers))
    connected, code = await communicator.connect()
    return communicator, connected, code


async def _closed_with(communicator, connected: bool) -> int:
    """The close code of a connection the server accepted and closed at once."""
    assert connected, "the handshake itself was refused: the app gets HTTP 403, not a close code"
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close"
    return message["code"]


async def test_an_app_follows_its_study_with_a_bearer_header(queued_study, access_token):
    token = await database_sync_to_async(access_token)(queued_study.owner)
    communicator, connected, _ = await _connect(
        f"/ws/studies/{queued_study.pk}/", [(b"authorization", f"Bearer {token}".encode())]
    )
    assert connected
    assert (await communicator.receive_json_from())["status"] == "queued"
    await communicator.disconnect()


async def test_a_token_in_the_query_string_works_too(queued_study, access_token):
    token = await database_sync_to_async(access_token)(queued_study.owner)
    communicator, connected, _ = await _connect(f"/ws/studies/{queued_study.pk}/?token={token}")
    assert connected
    await communicator.disconnect()


@pytest.mark.parametrize("case", ["expired", "garbage", "none", "other_patient"])
async def test_bad_or_foreign_tokens_are_refused(queued_study, other_patient, case, access_token):
    tokens = {
        "expired": lambda: access_token(queued_study.owner, expired=True),
        "garbage": lambda: "not-a-jwt",
        "none": lambda: None,
        "other_patient": lambda: access_token(other_patient),
    }
    token = await database_sync_to_async(tokens[case])()
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    communicator, connected, _ = await _connect(f"/ws/studies/{queued_study.pk}/", headers)
    assert await _closed_with(communicator, connected) == (4403 if case == "other_patient" else 4401)


async def test_a_revoked_token_is_refused(queued_study, access_token):
    from apps.accounts.services import set_user_password

    token = await database_sync_to_async(access_token)(queued_study.owner)
    await database_sync_to_async(set_user_password)(queued_study.owner, "a-brand-new-password-1")
    communicator, connected, _ = await _connect(
        f"/ws/studies/{queued_study.pk}/", [(b"authorization", f"Bearer {token}".encode())]
    )
    assert await _closed_with(communicator, connected) == 4401


async def _session_cookie(user) -> bytes:
    from django.test import Client

    client = Client()
    await database_sync_to_async(client.force_login)(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def test_browser_session_needs_an_allowed_origin(queued_study):
    cookie = await _session_cookie(queued_study.owner)
    path = f"/ws/studies/{queued_study.pk}/"
    communicator, connected, _ = await _connect(path, [(b"cookie", cookie), (b"origin", b"http://127.0.0.1:8000")])
    assert connected
    await communicator.disconnect()
    _, connected, _ = await _connect(path, [(b"cookie", cookie), (b"origin", b"https://evil.example")])
    assert not connected  # a page of another site cannot ride the session
    communicator, connected, _ = await _connect(path, [(b"cookie", cookie)])
    assert (
        await _closed_with(communicator, connected) == 4401
    )  # no Origin = not a browser: the cookie alone does not count


@pytest.mark.parametrize("path", ["/ws/studies/", "/ws/modelops/training/1/"])
async def test_the_other_sockets_close_with_4401_without_a_valid_token(path):
    communicator, connected, _ = await _connect(path, [(b"authorization", b"Bearer not-a-jwt")])
    assert await _closed_with(communicator, connected) == 4401


async def test_a_patient_on_the_training_socket_gets_4403(patient, access_token):
    token = await database_sync_to_async(access_token)(patient)
    communicator, connected, _ = await _connect(
        "/ws/modelops/training/1/", [(b"authorization", f"Bearer {token}".encode())]
    )
    assert await _closed_with(communicator, connected) == 4403
