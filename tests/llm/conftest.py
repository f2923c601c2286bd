"""Fixtures for the LLM tests: the Ollama emulator (``ollama_emulator``), shared by the
session and reset for every test (see ``llm.emulator.pytest_plugin``), the gateway
fixtures of the chat tests, and a ``/ws/ai/`` socket (``ai_connect``)."""

import socket

import pytest
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from llm.emulator.pytest_plugin import (  # noqa: F401  (fixtures are found by name)
    ollama_emulator,
    ollama_emulator_server,
    ollama_emulator_settings,
)
from tests.chat.conftest import ws_app, ws_connect  # noqa: F401


@pytest.fixture
def ollama_down(settings) -> str:
    """``OLLAMA_URL`` pointing at a port nothing listens on; the URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings.OLLAMA_URL = url
    return url


@pytest.fixture
async def ai_connect(ws_app):  # noqa: F811  (the fixture, by name)
    """Open a ``/ws/ai/`` socket as ``user`` and read its ``connection:success``."""
    opened: list[WebsocketCommunicator] = []

    async def connect(user=None, *, expect_success=True):
        path = f"/ws/ai/?token={AccessToken.for_user(user)}" if user is not None else "/ws/ai/"
        communicator = WebsocketCommunicator(ws_app, path)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        opened.append(communicator)
        if expect_success:
            first = await communicator.receive_json_from(timeout=5)
            assert first["event"] == "connection:success", first
        return communicator

    yield connect
    for communicator in opened:
        await communicator.disconnect()
