"""An ASGI guard that stops oversized HTTP bodies before Django reads them.

Django's ASGI handler reads the whole request body (spooling large ones to disk) before any
view runs, so a view-level size check comes too late to spare the disk (TRAPS). This guard
answers 413 at once when ``Content-Length`` is over the limit, and, for bodies sent without
one, stops reading as soon as the running count passes it: the application then sees the
client as gone and sends nothing, and the guard's 413 is the reply.

The limit is ``ATTACHMENT_MAX_BYTES`` plus room for a multipart envelope: no other request
body comes near it.
"""

from __future__ import annotations

import orjson
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from .errors import DomainError

ENVELOPE_ALLOWANCE = 64 * 1024


def body_limit() -> int:
    return settings.ATTACHMENT_MAX_BYTES + ENVELOPE_ALLOWANCE


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send) -> None:
    error = DomainError(
        "PAYLOAD_TOO_LARGE",
        "The request body is too large: attachments can be at most "
        f"{filesizeformat(settings.ATTACHMENT_MAX_BYTES)}.",
        details={"maxBytes": settings.ATTACHMENT_MAX_BYTES},
    )
    body = orjson.dumps(error.as_data())
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitGuard:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = body_limit()
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            return await _send_413(send)
        received = 0
        refused = False

        async def counting_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await _send_413(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        return await self.app(scope, counting_receive, guarded_send)
