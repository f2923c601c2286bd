"""Fixtures for gateway tests: connect a user to ``/ws/chat/`` through the whole ASGI
application (``chatproject.asgi``: origin check, auth middleware, routes) with Channels'
``WebsocketCommunicator``."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from chatproject.asgi import application


@pytest.fixture
def ws_app():
    return application


@pytest.fixture
async def ws_connect(ws_app):
    """Open a socket as ``user`` and read its ``connection:success``. Closes all at the end."""
    opened: list[WebsocketCommunicator] = []

    async def connect(user=None, *, token: str | None = None, headers=None, expect_success=True):
        if token is None and user is not None:
            token = str(AccessToken.for_user(user))
        path = f"/ws/chat/?token={token}" if token else "/ws/chat/"
        communicator = WebsocketCommunicator(ws_app, path, headers=headers or [])
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        opened.append(communicator)
        if expect_success:
            first = await communicator.receive_json_from(timeout=5)
            assert first["event"] == "connection:success", first
            communicator.connection_success = first
        return communicator

    yield connect
    for communicator in opened:
        await communicator.disconnect()


async def request(communicator, event: str, data=None, ref="r1", *, skip=()):
    """Send a frame and return the reply to it, skipping broadcasts in between."""
    await communicator.send_json_to({"event": event, "data": data or {}, "ref": ref})
    while True:
        frame = await communicator.receive_json_from(timeout=5)
        if frame["event"] in ("ack", "error") and frame.get("ref") == ref:
            return frame


async def next_event(communicator, event: str):
    """The next frame named ``event``, skipping others."""
    while True:
        frame = await communicator.receive_json_from(timeout=5)
        if frame["event"] == event:
            return frame


async def frames_for(communicator, seconds: float) -> list[dict]:
    """Every frame that arrives within ``seconds``."""
    frames = []
    while not await communicator.receive_nothing(timeout=seconds):
        frames.append(await communicator.receive_json_from(timeout=1))
    return frames
