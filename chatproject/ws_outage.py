"""A clear refusal for a WebSocket opened while the database or Redis can't be reached.

Before a consumer runs, Channels subscribes its channel in the channel layer (Redis) and
the auth middleware looks the user up (database); either failing would end the handshake
with an HTTP 500 and a traceback. This middleware answers instead as the gateway does for
an outage after the handshake: the socket is accepted, gets one ``error`` frame (code
``INTERNAL``, the backend that is down, ``retryAfter``) and is closed with 4503, so a client
knows to reconnect in a moment. Any other failure passes through unchanged.
"""

from __future__ import annotations

import logging

import orjson

from .errors import outage_error

logger = logging.getLogger(__name__)

CLOSE_UNAVAILABLE = 4503


class OutageGuard:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        sent = {"websocket.accept": False, "websocket.close": False}

        async def tracking_send(message):
            if message["type"] in sent:
                sent[message["type"]] = True
            await send(message)

        try:
            return await self.app(scope, receive, tracking_send)
        except Exception as exc:
            outage = outage_error(exc)
            if outage is None or sent["websocket.close"]:
                raise
            logger.warning("WebSocket refused: %s (%s: %s)", outage.message,
                           type(exc).__name__, exc)  # fmt: skip
            if not sent["websocket.accept"]:
                await send({"type": "websocket.accept"})
            frame = {"event": "error", "ref": None, "data": outage.as_data()}
            await send({"type": "websocket.send", "text": orjson.dumps(frame).decode()})
            await send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})
