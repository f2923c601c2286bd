"""The WebSocket auth middleware (``accounts.middleware``): what it puts in the scope for
each kind of credential, and what a client sees through the whole ASGI application
(``chatproject.asgi``): who may connect, and what everyone else gets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.middleware import WebsocketAuthMiddleware
from chatproject.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True)]


class ScopeRecorder:
    """An ASGI application that accepts, keeps the scope it was given, and closes."""

    def __init__(self) -> None:
        self.scope = None

    async def __call__(self, scope, receive, send):
        self.scope = scope
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})


async def scope_for(path: str = "/ws/chat/", headers=()) -> dict:
    """The scope the middleware hands to the application behind it."""
    recorder = ScopeRecorder()
    ws = WebsocketCommunicator(WebsocketAuthMiddleware(recorder), path, headers=list(headers))
    await ws.connect(timeout=5)
    await ws.disconnect()
    return recorder.scope


async def handshake(path: str = "/ws/chat/", headers=()):
    """(accepted, first frame or None, close code or None), closing the socket after."""
    ws = WebsocketCommunicator(application, path, headers=list(headers))
    accepted, _ = await ws.connect(timeout=5)
    first, close = None, None
    if accepted:
        first = await ws.receive_json_from(timeout=5)
        if first["event"] == "error":
            close = (await ws.receive_output(timeout=5))["code"]
    await ws.disconnect()
    return accepted, first, close


def token_path(token) -> str:
    return f"/ws/chat/?token={token}"


def bearer(token) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {token}".encode())


@database_sync_to_async
def session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


@database_sync_to_async
def deactivate(user) -> None:
    user.is_active = False
    user.save(update_fields=["is_active"])


def expired_token(user) -> AccessToken:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=-1))
    return token


def assert_unauthorized(outcome) -> None:
    accepted, first, close = outcome
    assert accepted, "a refused credential is told so over an accepted socket"
    assert first["event"] == "error" and first["data"]["code"] == "UNAUTHORIZED", first
    assert close == 4401


# -- the scope -------------------------------------------------------------------------------


async def test_a_query_token_sets_the_user_and_its_expiry(alice):
    token = AccessToken.for_user(alice)
    scope = await scope_for(token_path(token))
    assert scope["user"] == alice
    assert scope["token_exp"] == token["exp"] and scope["auth_error"] is None


async def test_an_authorization_header_sets_the_user(alice):
    token = AccessToken.for_user(alice)
    scope = await scope_for(headers=[bearer(token)])
    assert scope["user"] == alice and scope["token_exp"] == token["exp"]


async def test_a_session_cookie_sets_the_user_with_no_expiry(alice):
    scope = await scope_for(headers=[await session_cookie(alice)])
    assert scope["user"] == alice
    assert scope["token_exp"] is None and scope["auth_error"] is None


async def test_no_credentials_is_an_anonymous_user_with_no_error():
    scope = await scope_for()
    assert isinstance(scope["user"], AnonymousUser) and scope["auth_error"] is None


async def test_a_bad_token_is_an_anonymous_user_and_says_why():
    scope = await scope_for(token_path("not-a-jwt"))
    assert isinstance(scope["user"], AnonymousUser) and scope["auth_error"]


async def test_an_expired_token_is_an_anonymous_user_and_says_why(alice):
    scope = await scope_for(headers=[bearer(expired_token(alice))])
    assert isinstance(scope["user"], AnonymousUser)
    assert "expired" in scope["auth_error"].lower()


# -- through the whole application -------------------------------------------------------------


async def test_a_query_token_authenticates(alice):
    _, first, _ = await handshake(token_path(AccessToken.for_user(alice)))
    assert first["event"] == "connection:success" and first["data"]["userId"] == alice.pk


async def test_an_authorization_header_authenticates(alice):
    _, first, _ = await handshake(headers=[bearer(AccessToken.for_user(alice))])
    assert first["event"] == "connection:success" and first["data"]["userId"] == alice.pk


async def test_the_web_apps_session_cookie_authenticates(alice):
    _, first, _ = await handshake(headers=[await session_cookie(alice)])
    assert first["event"] == "connection:success" and first["data"]["userId"] == alice.pk


async def test_a_token_wins_over_a_session_cookie(alice, bob):
    headers = [await session_cookie(bob)]
    _, first, _ = await handshake(token_path(AccessToken.for_user(alice)), headers)
    assert first["data"]["userId"] == alice.pk


async def test_an_expired_token_is_unauthorized(alice):
    assert_unauthorized(await handshake(token_path(expired_token(alice))))


async def test_a_bad_token_is_unauthorized_even_with_a_valid_session(alice):
    assert_unauthorized(await handshake(token_path("not-a-jwt"), [await session_cookie(alice)]))


async def test_a_refresh_token_is_not_an_access_token(alice):
    refresh = await database_sync_to_async(RefreshToken.for_user)(alice)
    assert_unauthorized(await handshake(token_path(refresh)))


async def test_a_deactivated_users_token_is_unauthorized(alice):
    token = AccessToken.for_user(alice)
    await deactivate(alice)
    assert_unauthorized(await handshake(token_path(token)))


async def test_a_deactivated_users_session_is_unauthorized(alice):
    cookie = await session_cookie(alice)
    await deactivate(alice)
    assert_unauthorized(await handshake(headers=[cookie]))


async def test_an_unknown_session_is_unauthorized():
    assert_unauthorized(await handshake(headers=[(b"cookie", b"sessionid=nosuchsession")]))


async def test_no_credentials_is_unauthorized():
    assert_unauthorized(await handshake())


async def test_an_unknown_path_is_refused(alice):
    accepted, _, _ = await handshake(f"/ws/nowhere/?token={AccessToken.for_user(alice)}")
    assert not accepted


async def test_the_ai_door_shares_the_handshake(alice):
    _, first, _ = await handshake(f"/ws/ai/?token={AccessToken.for_user(alice)}")
    assert first["event"] == "connection:success" and first["data"]["userId"] == alice.pk


# -- a backend that can't be reached: an error frame and 4503, never an HTTP 500 ------------

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def assert_unavailable(outcome) -> None:
    accepted, first, close = outcome
    assert accepted
    assert first["event"] == "error" and first["data"]["code"] == "INTERNAL", first
    assert first["data"]["retryAfter"] == 1
    assert close == 4503


async def test_a_channel_layer_unreachable_at_the_handshake_gets_4503(settings, alice):
    # The pub/sub layer subscribes the consumer's channel before any consumer hook runs.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": UNREACHABLE_REDIS}]},
        }
    }
    assert_unavailable(await handshake(token_path(AccessToken.for_user(alice))))


async def test_a_database_unreachable_at_the_handshake_gets_4503(settings):
    # The session store is the database here, and it is down (``down_session_store``).
    settings.SESSION_ENGINE = "tests.accounts.down_session_store"
    assert_unavailable(await handshake(headers=[(b"cookie", b"sessionid=anysession")]))
