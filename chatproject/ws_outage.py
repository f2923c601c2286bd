"""A clear refusal for a WebSocket opened while the database or Redis can't be reached.

Before a consumer runs, the handshake looks the user up (database), and the consumer then
subscribes its channel in the channel layer (Redis); either failing would end the handshake
with an HTTP 500 and a traceback. Both answer instead as the gateway does for an outage
after the handshake: the socket is accepted, gets one ``error`` frame (code ``INTERNAL``,
the backend that is down, ``retryAfter``) and is closed with 4503, so a client knows to
reconnect in a moment.
"""

from __future__ import annotations

import logging

import orjson

from .errors import DomainError

logger = logging.getLogger(__name__)

CLOSE_UNAVAILABLE = 4503


async def refuse_unavailable(send, outage: DomainError, exc: BaseException) -> None:
    """Refuse a socket not yet accepted, for the outage ``outage_error(exc)`` named."""
    logger.warning("WebSocket refused: %s (%s: %s)", outage.message, type(exc).__name__, exc)
    await send({"type": "websocket.accept"})
    frame = {"event": "error", "ref": None, "data": outage.as_data()}
    await send({"type": "websocket.send", "text": orjson.dumps(frame).decode()})
    await send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})
