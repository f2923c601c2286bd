"""Pytest fixtures for the Ollama emulator.

One server serves the whole test session (starting uvicorn per test would cost time);
``ollama_emulator`` resets its script and log around every test, so tests stay independent.
Use it from any conftest with ``from llm.emulator.pytest_plugin import *`` or by listing
``"llm.emulator.pytest_plugin"`` in the root conftest's ``pytest_plugins``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import EmulatorServer

__all__ = ["ollama_emulator", "ollama_emulator_server", "ollama_emulator_settings"]


@pytest.fixture(scope="session")
def ollama_emulator_server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def ollama_emulator(ollama_emulator_server: EmulatorServer) -> Iterator[EmulatorServer]:
    """The running emulator with the default script and an empty log."""
    ollama_emulator_server.reset()
    yield ollama_emulator_server
    ollama_emulator_server.reset()


@pytest.fixture
def ollama_emulator_settings(ollama_emulator: EmulatorServer, settings) -> EmulatorServer:
    """The emulator, with Django's ``OLLAMA_URL`` pointing at it for this test."""
    settings.OLLAMA_URL = ollama_emulator.url
    return ollama_emulator
