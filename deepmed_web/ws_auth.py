"""WebSocket authentication for browsers (session cookie) and mobile apps (JWT).

Browsers always send an Origin header on a WebSocket handshake: it must name one of
ALLOWED_HOSTS, so no page of another site can open a socket riding the user's session cookie.
Native apps send no Origin: they are let in, but then only a JWT access token counts (given as
`Authorization: Bearer <token>` or, for clients that cannot set headers, `?token=<token>`);
their cookies are ignored. The consumers then apply the same per-study permission as the API.

Refusals are close codes, not a refused handshake (which a client sees as a bare HTTP 403):
the connection is accepted and closed at once with 4401 (not authenticated: log in again or
refresh the token) or 4403 (authenticated, but not yours / not allowed). `close_codes` wraps
every route (deepmed_web/routing.py) so that holds for every consumer.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


def bearer_token(scope) -> str | None:
    authorization = _header(scope, b"authorization") or ""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    return (query.get("token") or [None])[0] or None


@database_sync_to_async
def user_for_token(raw_token: str):
    """The active user of a valid access token (expiry, signature and revocation checked as for
    the HTTP API), else AnonymousUser."""
    from rest_framework.exceptions import AuthenticationFailed
    from rest_framework_simplejwt.authentication import JWTAuthentication

    auth = JWTAuthentication()
    try:
        return auth.get_user(auth.get_validated_token(raw_token.encode()))
    except AuthenticationFailed:  # InvalidToken is one too
        return AnonymousUser()


class TokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        token = bearer_token(scope)
        if token is not None:
            scope = dict(scope, user=await user_for_token(token))
        elif _header(scope, b"origin") is None:
            scope = dict(scope, user=AnonymousUser())  # not a browser: a cookie alone is not enough
        return await super().__call__(scope, receive, send)


class BrowserOriginValidator(OriginValidator):
    """Origin checked when present (browsers); absent (native apps) is allowed, see above."""

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or super().valid_origin(parsed_origin)


CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def close_codes(inner):
    """ASGI wrapper of one WebSocket route: an anonymous user is accepted and closed with 4401
    before the consumer runs; a consumer that closes without accepting (a refusal) is accepted
    first, so its close code reaches the client instead of HTTP 403. A consumer class with an
    `audit_anonymous_refusal(scope, code)` coroutine gets the anonymous refusals to record."""
    audit_refusal = getattr(getattr(inner, "consumer_class", None), "audit_anonymous_refusal", None)

    async def app(scope, receive, send):
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            message = await receive()
            if message["type"] == "websocket.connect":
                if audit_refusal is not None:
                    await audit_refusal(scope, CLOSE_UNAUTHENTICATED)
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED})
            return None
        accepted = False

        async def send_accepting_first(message):
            nonlocal accepted
            if message["type"] == "websocket.accept":
                accepted = True
            elif message["type"] == "websocket.close" and not accepted:
                accepted = True
                await send({"type": "websocket.accept"})
            await send(message)

        return await inner(scope, receive, send_accepting_first)

    return app


def websocket_auth_stack(inner):
    allowed = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    return BrowserOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(inner)), allowed)
