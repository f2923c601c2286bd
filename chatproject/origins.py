"""Which browser origins may open a WebSocket (CONTRACT section 3), checked before anything
else: ``OriginCheck``, the outermost WebSocket middleware (``chatproject.asgi``).

Allowed are each ``CORS_ORIGIN`` entry exactly (scheme, host and port) and the site's own
origin: the scheme, host and port the handshake itself came to (its ``Host`` header, with
``ws`` read as ``http`` and ``wss`` as ``https``). A handshake with no ``Origin`` at all comes
from a non-browser client (a script, a native app), which cross-site checks don't concern,
and is allowed. Anything else is refused with HTTP 403 (Channels' ``WebsocketDenier``): a
page on another port of an allowed host is another origin.

The site's own origin counts only for a ``Host`` in ``ALLOWED_HOSTS``, the hosts Django
serves: otherwise a page on a name an attacker points at this server (DNS rebinding) would
be "the site" to itself. Behind a proxy that terminates TLS, let the server read the
forwarded scheme (daphne ``--proxy-headers``, uvicorn ``--proxy-headers``) or list the
public origin in ``CORS_ORIGIN``.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlparse

from asgiref.sync import markcoroutinefunction
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}
# The origin a page has when it opens a socket to the URL it was served from.
PAGE_SCHEMES = {"ws": "http", "wss": "https"}
# Django's own fallback when DEBUG is on and ALLOWED_HOSTS is empty (HttpRequest.get_host).
DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Origin | None:
        """``scheme://host[:port]`` with the scheme's default port filled in; None for
        anything else (``null``, another scheme, a path, a bad port)."""
        try:
            parsed = urlparse(text.strip())
            port = parsed.port
        except ValueError:
            return None
        scheme = parsed.scheme.lower()
        if (
            scheme not in DEFAULT_PORTS
            or not parsed.hostname
            or parsed.path not in ("", "/")
            or parsed.query
            or parsed.fragment
            or parsed.username is not None
        ):
            return None
        return cls(scheme, parsed.hostname, port or DEFAULT_PORTS[scheme])


def header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin1")
    return None


def site_origin(scope) -> Origin | None:
    """The origin of the handshake's own URL, if its ``Host`` is one Django serves."""
    host = header(scope, b"host")
    scheme = PAGE_SCHEMES.get(scope.get("scheme", "ws"))
    if not host or scheme is None:
        return None
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS or (DEBUG_HOSTS if settings.DEBUG else [])
    if not domain or not validate_host(domain, allowed):
        return None
    return Origin.parse(f"{scheme}://{host}")


def origin_allowed(scope) -> bool:
    """Whether the handshake in ``scope`` comes from an allowed origin, or from none."""
    text = header(scope, b"origin")
    if text is None:
        return True
    origin = Origin.parse(text)
    if origin is None:
        return False
    if origin == site_origin(scope):
        return True
    return origin in {Origin.parse(entry) for entry in settings.CORS_ORIGIN}


class OriginCheck(BaseMiddleware):
    """Refuses a WebSocket handshake from a disallowed origin with HTTP 403, before the
    credentials are looked at."""

    @markcoroutinefunction
    def __call__(self, scope, receive, send):
        """The inner application's coroutine (or the refusal's), returned rather than
        awaited: awaited, this call's frame would stay suspended for as long as the socket
        is open, in every open socket, with nothing left to do (docs/benchmarks.md, idle
        connections). Marked a coroutine function (asgiref's ``markcoroutinefunction``, as
        Django marks such middleware) so routers and servers take it for the single-callable
        ASGI application it is."""
        if not origin_allowed(scope):
            return WebsocketDenier()(scope, receive, send)
        return self.inner(scope, receive, send)
