"""Fixtures for the LLM tests: the Ollama emulator (``ollama_emulator``), shared by the
session and reset for every test (see ``llm.emulator.pytest_plugin``), the gateway
fixtures of the chat tests, and a room-stream helper."""

from llm.emulator.pytest_plugin import (  # noqa: F401  (fixtures are found by name)
    ollama_emulator,
    ollama_emulator_server,
    ollama_emulator_settings,
)
from tests.chat.conftest import fresh_state, ws_app, ws_connect  # noqa: F401
