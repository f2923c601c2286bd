"""Fixtures for the LLM tests: the Ollama emulator (``ollama_emulator``), shared by the
session and reset for every test (see ``llm.emulator.pytest_plugin``), and the gateway
fixtures of the chat tests."""

import pytest

from chat.state import get_state
from llm.emulator.pytest_plugin import (  # noqa: F401  (fixtures are found by name)
    ollama_emulator,
    ollama_emulator_server,
    ollama_emulator_settings,
)
from tests.chat.conftest import ws_app, ws_connect  # noqa: F401


@pytest.fixture(autouse=True)
def fresh_streams():
    """Stream slots and live records start empty (``reset`` clears them only in Redis)."""
    get_state().streams_reset()
    yield
    get_state().streams_reset()
