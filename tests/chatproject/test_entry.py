"""The WebSocket handshake (``chatproject.entry``, ``accounts.auth``): who may connect, with
which credentials, and what everyone else gets, through the real ASGI application."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from chatproject.routing import websocket_application

pytestmark = [pytest.mark.django_db(transaction=True)]


async def handshake(path: str = "/ws/chat/", headers=()):
    """(accepted, first frame or None, close code or None), closing the socket after."""
    ws = WebsocketCommunicator(websocket_application(), path, headers=list(headers))
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


@database_sync_to_async
def session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


@database_sync_to_async
def deactivate(user) -> None:
    user.is_active = False
    user.save(update_fields=["is_active"])


def assert_unauthorized(outcome) -> None:
    accepted, first, close = outcome
    assert accepted, "a refused credential is told so over an accepted socket"
    assert first["event"] == "error" and first["data"]["code"] == "UNAUTHORIZED", first
    assert close == 4401


async def test_a_query_token_authenticates(alice):
    _, first, _ = await handshake(token_path(AccessToken.for_user(alice)))
    assert first["event"] == "connection:success" and first["data"]["userId"] == alice.pk


async def test_an_authorization_header_authenticates(alice):
    bearer = (b"authorization", f"Bearer {AccessToken.for_user(alice)}".encode())
    _, first, _ = await handshake(headers=[bearer])
    assert first["event"] == "connection:success" and first["data"]["userId"] == alice.pk


async def test_the_web_apps_session_cookie_authenticates(alice):
    _, first, _ = await handshake(headers=[await session_cookie(alice)])
    assert first["event"] == "connection:success" and first["data"]["userId"] == alice.pk


async def test_a_token_wins_over_a_session_cookie(alice, bob):
    headers = [await session_cookie(bob)]
    _, first, _ = await handshake(token_path(AccessToken.for_user(alice)), headers)
    assert first["data"]["userId"] == alice.pk


async def test_an_expired_token_is_unauthorized(alice):
    token = AccessToken.for_user(alice)
    token.set_exp(lifetime=timedelta(seconds=-1))
    assert_unauthorized(await handshake(token_path(token)))


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


async def test_no_origin_is_a_non_browser_client_and_may_connect(alice):
    _, first, _ = await handshake(token_path(AccessToken.for_user(alice)))
    assert first["event"] == "connection:success"


async def test_a_foreign_origin_is_refused_before_credentials_are_looked_at(alice):
    headers = [(b"origin", b"https://evil.example"), await session_cookie(alice)]
    accepted, _, _ = await handshake(token_path(AccessToken.for_user(alice)), headers)
    assert not accepted


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
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chatproject.pubsub_layer.MailboxPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": UNREACHABLE_REDIS}]},
        }
    }
    assert_unavailable(await handshake(token_path(AccessToken.for_user(alice))))
