"""The ASGI application's front door: HTTP goes to Django; a WebSocket handshake is checked
(route, origin, credentials) and handed to its consumer.

Why one class in place of Channels' ``ProtocolTypeRouter`` around a stack of middlewares
(origin guard, outage guard, cookie, session and auth middlewares, a JWT middleware, the URL
router): an ASGI middleware stays suspended, a coroutine frame often holding a copy of the
scope of its own, for as long as the connection it let through is open. A worker holds
thousands of idle sockets, and that stack was about a third of what this project kept per
connection (docs/benchmarks.md, "Idle connections"). Here the checks run one after another
and return; while a socket is open only this coroutine and its consumer's are suspended, with
the server's scope as it came and the consumer's ``credentials`` (``accounts.auth``).
"""

from __future__ import annotations

import asyncio

from channels.security.websocket import WebsocketDenier

from accounts.auth import authenticate
from chat.broadcaster import bind_loop

from .errors import outage_error
from .origins import scope_origin_allowed
from .ws_outage import refuse_unavailable


class Application:
    """``websocket_routes``: Django URL patterns (``re_path``) whose views are consumers'
    ``as_asgi()`` applications; ``http``: the ASGI application for HTTP, if any."""

    def __init__(self, websocket_routes, *, http=None) -> None:
        self.http = http
        self.routes = [
            (route.pattern, route.callback.consumer_class, route.callback.consumer_initkwargs)
            for route in websocket_routes
        ]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            if scope["type"] == "http" and self.http is not None:
                return await self.http(scope, receive, send)
            raise ValueError(f"No application configured for scope type {scope['type']!r}")
        bind_loop()
        consumer = self._consumer(scope)
        if consumer is None or not scope_origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        try:
            # In a task of its own: asgiref copies the context variables set in the
            # database thread back into the awaiting task's context, which would keep
            # them as long as the connection.
            credentials = await asyncio.create_task(authenticate(scope))
        except Exception as exc:
            outage = outage_error(exc)
            if outage is None:
                raise
            return await refuse_unavailable(send, outage, exc)
        # Handed to the consumer, not added to the scope: daphne's scope fills its dict's
        # table, and one key more would double the table for every open socket.
        consumer.credentials = credentials
        return await consumer(scope, receive, send)

    def _consumer(self, scope):
        """A new consumer for the scope's path, or None if no route matches."""
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path:
            if not path.startswith(root_path):
                return None
            path = path[len(root_path) :]
        path = path.lstrip("/")
        for pattern, consumer_class, initkwargs in self.routes:
            if pattern.match(path):
                return consumer_class(**initkwargs)
        return None
