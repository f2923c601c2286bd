"""The WebSocket origin check (``chatproject.origins``, CONTRACT section 3): each
``CORS_ORIGIN`` entry exactly, the site's own origin, or no ``Origin`` at all; anything else
is refused with HTTP 403 before the credentials are looked at."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from chatproject.asgi import application
from chatproject.origins import origin_allowed

pytestmark = [pytest.mark.django_db(transaction=True)]

CORS = ["http://localhost:5173", "https://app.example.com"]


@pytest.fixture(autouse=True)
def hosts(settings):
    settings.CORS_ORIGIN = CORS
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "chat.example.com"]


def scope(origin: str | None = None, host: str | None = None, scheme: str = "ws") -> dict:
    headers = []
    if host is not None:
        headers.append((b"host", host.encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize("origin", CORS)
def test_each_cors_origin_is_allowed(origin):
    assert origin_allowed(scope(origin, host="127.0.0.1:8000"))


def test_a_cors_origin_with_its_default_port_spelled_out_is_the_same_origin():
    assert origin_allowed(scope("https://app.example.com:443"))


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:5174",  # another port of a CORS host
        "http://app.example.com",  # another scheme of a CORS host
        "https://evil.app.example.com",  # a subdomain
        "http://127.0.0.1:9999",  # another port of an allowed host
        "https://evil.example",
        "null",
        "not an origin",
        "http://localhost:5173/path",
        "http://localhost:notaport",
    ],
)
def test_anything_else_is_refused(origin):
    assert not origin_allowed(scope(origin, host="127.0.0.1:8000"))


def test_no_origin_is_a_non_browser_client_and_allowed():
    assert origin_allowed(scope(None, host="127.0.0.1:8000"))


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://127.0.0.1:9999", "127.0.0.1:9999", "ws"),
        ("http://chat.example.com", "chat.example.com", "ws"),
        ("http://chat.example.com", "chat.example.com:80", "ws"),
        ("https://chat.example.com", "chat.example.com", "wss"),
    ],
)
def test_the_sites_own_origin_is_allowed(origin, host, scheme):
    assert origin_allowed(scope(origin, host=host, scheme=scheme))


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("https://chat.example.com", "chat.example.com", "ws"),  # the page is not where we are
        ("http://chat.example.com:8080", "chat.example.com", "ws"),
        ("http://rebound.example", "rebound.example", "ws"),  # a Host Django doesn't serve
    ],
)
def test_an_origin_that_only_resembles_the_site_is_refused(origin, host, scheme):
    assert not origin_allowed(scope(origin, host=host, scheme=scheme))


# -- through the whole application -------------------------------------------------------------


async def connects(alice, headers) -> bool:
    ws = WebsocketCommunicator(
        application, f"/ws/chat/?token={AccessToken.for_user(alice)}", headers=headers
    )
    accepted, _ = await ws.connect(timeout=5)
    await ws.disconnect()
    return accepted


async def test_a_foreign_origin_is_refused_before_credentials_are_looked_at(alice):
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", b"https://evil.example")]
    assert not await connects(alice, headers)


async def test_another_port_of_an_allowed_host_is_refused(alice):
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", b"http://127.0.0.1:9999")]
    assert not await connects(alice, headers)


async def test_the_sites_own_origin_connects(alice):
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", b"http://127.0.0.1:8000")]
    assert await connects(alice, headers)


async def test_a_cors_origin_connects(alice):
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", b"http://localhost:5173")]
    assert await connects(alice, headers)


async def _inner(scope, receive, send):
    """An application that does nothing."""


def test_the_check_hands_over_to_the_application_without_staying_on_the_socket():
    """An allowed handshake gets the inner application's own coroutine: no frame of the
    check stays suspended for as long as the socket is open (docs/benchmarks.md, idle
    connections), and routers still take it for a single-callable ASGI application."""
    from asgiref.compatibility import guarantee_single_callable

    from chatproject.origins import OriginCheck

    check = OriginCheck(_inner)
    handed = check(scope("http://localhost:5173"), None, None)
    try:
        assert handed.cr_code is _inner.__code__
        assert guarantee_single_callable(check) is check
    finally:
        handed.close()
