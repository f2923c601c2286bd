"""WebSocket authentication: who is on the other end of a socket, set as ``scope["user"]``.

A connection authenticates with an access JWT (``?token=`` or ``Authorization: Bearer``) or,
for the web app, the Django session cookie. A token that is bad or expired leaves the user
anonymous and records why in ``scope["auth_error"]``: the consumer then accepts, says
``UNAUTHORIZED`` and closes with 4401, as the contract asks. ``scope["token_exp"]`` holds the
token's expiry, after which the consumer closes the connection unless it was refreshed.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken


def token_from_scope(scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin1").partition(" ")
            if scheme.lower() == "bearer" and credentials:
                return credentials.strip()
    return None


@database_sync_to_async
def user_for_token(raw: str):
    """The active user an access token names, and the token's expiry (epoch seconds).

    Raises ``TokenError`` for a bad, expired or refresh token, or an unknown or inactive user.
    """
    token = AccessToken(raw)
    user_id = token.get(api_settings.USER_ID_CLAIM)
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise TokenError("The token's user is unknown or deactivated.")
    return user, int(token["exp"])


class JwtAuthMiddleware:
    """Sets ``scope["user"]`` from an access JWT when one is given; otherwise leaves the user
    the session cookie established (``AuthMiddlewareStack`` runs first)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        raw = token_from_scope(scope)
        scope = dict(scope)
        scope["token_exp"] = None
        if raw is not None:
            try:
                scope["user"], scope["token_exp"] = await user_for_token(raw)
            except TokenError as exc:
                scope["user"] = AnonymousUser()
                scope["auth_error"] = str(exc)
        else:
            user = scope.get("user")
            if user is not None and hasattr(user, "_wrapped"):
                # Resolve the lazy session user now, off the event loop, once.
                scope["user"] = await _resolve(user)
        return await self.app(scope, receive, send)


@database_sync_to_async
def _resolve(lazy_user):
    user = lazy_user._wrapped if lazy_user._wrapped is not None else lazy_user
    if getattr(user, "is_active", False):
        return user
    return AnonymousUser()


def WebsocketAuthStack(app):
    """Session cookie first (for the web app), then a JWT if the connection carries one."""
    return AuthMiddlewareStack(JwtAuthMiddleware(app))
