"""A bare ASGI application for ``test_daphne_close_codes``: accepts a WebSocket and closes
it with the code in its query string. ``CLOSE_CODES_PATCH=1`` installs
``chatproject.daphne_close_codes`` first, as ``chatproject.asgi`` does."""

import os

from chatproject import daphne_close_codes

if os.environ.get("CLOSE_CODES_PATCH") == "1":
    daphne_close_codes.install()


async def application(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": int(scope["query_string"])})
    await receive()
