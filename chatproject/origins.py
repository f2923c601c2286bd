"""Which browser origins may open a WebSocket: ``CORS_ORIGIN`` and the ``ALLOWED_HOSTS``.

Browsers always send ``Origin`` on a WebSocket handshake; a handshake without one comes
from a non-browser client (a script, a native app), which CSRF-style checks don't concern.
A handshake from any other origin is denied before the consumer runs: HTTP 403
(``chatproject.entry``).
"""

from __future__ import annotations

from urllib.parse import urlparse

from django.conf import settings
from django.http.request import split_domain_port, validate_host


def origin_allowed(origin: str | None) -> bool:
    if origin is None:
        return True
    if origin.rstrip("/") in {o.rstrip("/") for o in settings.CORS_ORIGIN}:
        return True
    parsed = urlparse(origin)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return False
    host, _ = split_domain_port(parsed.netloc)
    return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)


def scope_origin_allowed(scope) -> bool:
    """Whether the handshake in ``scope`` comes from an allowed origin (or none)."""
    origin = None
    for name, value in scope.get("headers", []):
        if name == b"origin":
            origin = value.decode("latin1")
    return origin_allowed(origin)
