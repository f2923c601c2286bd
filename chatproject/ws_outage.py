"""A clear answer for a WebSocket whose application meets a database or Redis outage.

Before a consumer's first hook runs, the handshake looks the user up (database) and Channels
makes the consumer's channel in the channel layer (Redis, for the pub/sub layer); either
failing would end the handshake with an HTTP 500 and a traceback. A handler failing on an
open socket would end it with a bare 1011. Both are answered instead as the gateway answers
an outage: the socket is accepted (if it was not yet), gets one ``error`` frame (code
``INTERNAL``, the backend that is down, ``retryAfter``) and is closed with 4503, so a client
knows to reconnect in a moment.
"""

from __future__ import annotations

import logging

import orjson

from .errors import DomainError, outage_error

logger = logging.getLogger(__name__)

CLOSE_UNAVAILABLE = 4503


def outage_frames(outage: DomainError) -> list[dict]:
    """The ASGI messages that tell an accepted socket about ``outage`` and close it."""
    frame = {"event": "error", "ref": None, "data": outage.as_data()}
    return [
        {"type": "websocket.send", "text": orjson.dumps(frame).decode()},
        {"type": "websocket.close", "code": CLOSE_UNAVAILABLE},
    ]


class OutageAnswer:
    """Runs a WebSocket application with a ``send`` that notes whether the socket was
    accepted and closed, so that an outage escaping the application can be answered on it
    (``answer``), once, in the state it is in."""

    __slots__ = ("_send", "accepted", "closed")

    def __init__(self, send) -> None:
        self._send = send
        self.accepted = False
        self.closed = False

    async def send(self, message) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            self.accepted = True
        elif kind == "websocket.close":
            self.closed = True
        await self._send(message)

    async def answer(self, exc: BaseException) -> bool:
        """Answer ``exc`` if it is an outage and the socket is not closed yet: True if
        answered, False if the caller must raise it."""
        outage = outage_error(exc)
        if outage is None or self.closed:
            return False
        logger.warning("WebSocket ended: %s (%s: %s)", outage.message, type(exc).__name__, exc)
        if not self.accepted:
            await self.send({"type": "websocket.accept"})
        for message in outage_frames(outage):
            await self.send(message)
        return True
