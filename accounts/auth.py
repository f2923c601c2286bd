"""WebSocket authentication: who is on the other end of a socket.

A connection authenticates with an access JWT (``?token=`` or ``Authorization: Bearer``), a
bot's API token (``Authorization: Token cbt_...``, in the header only: never the URL, where
access logs would keep a token that does not expire) or, for the web app, the Django session
cookie. ``authenticate`` answers with the user (anonymous
when neither says who), the token's expiry, after which the consumer closes the connection
unless it was refreshed, and for a bad or expired token why it was refused: the consumer
then accepts, says ``UNAUTHORIZED`` and closes with 4401, as the contract asks.
``accounts.middleware.WebsocketAuthMiddleware`` puts the answer in the scope.

One middleware rather than Channels' ``AuthMiddlewareStack`` plus a JWT middleware: a
token-authenticated socket needs no session at all, and a cookie-authenticated one needs its
session only once, to find its user (Channels' ``get_user``, as Django does for a request).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from urllib.parse import parse_qs

from channels.auth import get_user
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http import parse_cookie
from knox.settings import knox_settings
from rest_framework import exceptions
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from .bot_auth import BotTokenAuthentication


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who a handshake authenticated as: ``user`` (anonymous if nobody), ``token_exp``
    (epoch seconds, None for a session or a bot token), ``error`` (why a token was refused)
    and ``bot_token_id`` (the ``token_id`` of the bot token used, whose deletion closes
    the socket)."""

    user: object
    token_exp: int | None = None
    error: str | None = None
    bot_token_id: str | None = None


def authorization_from_scope(scope, scheme: str) -> str | None:
    """The credentials of an ``Authorization: <scheme> ...`` header (``scheme`` lower case),
    if any."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            given, _, credentials = value.decode("latin1").partition(" ")
            if given.lower() == scheme and credentials:
                return credentials.strip()
    return None


def token_from_scope(scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    if query.get("token"):
        return query["token"][0]
    return authorization_from_scope(scope, "bearer")


def bot_token_from_scope(scope) -> str | None:
    """The token of an ``Authorization: Token ...`` header (knox's prefix), if any."""
    return authorization_from_scope(scope, knox_settings.AUTH_HEADER_PREFIX.lower())


def session_key_from_scope(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1")).get(settings.SESSION_COOKIE_NAME)
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


@database_sync_to_async
def bot_for_token(raw: str):
    """The active bot a bot token names, and the token's ``token_id``; knox checks it, as
    on REST. Raises ``AuthenticationFailed`` for an unknown token or an inactive bot."""
    user, token = BotTokenAuthentication().authenticate_credentials(raw.encode())
    return user, str(token.token_id)


async def user_for_session(session_key: str):
    """The active user a session cookie is logged in as, or an anonymous user. Channels'
    ``get_user`` does what Django's does for a request (the session's auth hash checked,
    a stale session flushed); the session itself is not kept."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = await get_user({"session": store})
    return user if getattr(user, "is_active", False) else AnonymousUser()


async def authenticate(scope) -> Credentials:
    """Who the handshake in ``scope`` is: a token wins over a session cookie. A bot token
    in the query string is an access token that fails to parse: UNAUTHORIZED."""
    raw = token_from_scope(scope)
    if raw is not None:
        try:
            user, expires = await user_for_token(raw)
        except TokenError as exc:
            return Credentials(AnonymousUser(), error=str(exc))
        return Credentials(user, token_exp=expires)
    raw = bot_token_from_scope(scope)
    if raw is not None:
        try:
            user, token_id = await bot_for_token(raw)
        except exceptions.AuthenticationFailed as exc:
            return Credentials(AnonymousUser(), error=f"The bot token can't be used: {exc.detail}")
        return Credentials(user, bot_token_id=token_id)
    session_key = session_key_from_scope(scope)
    if session_key:
        return Credentials(await user_for_session(session_key))
    return Credentials(AnonymousUser())
