"""An Ollama emulator: a real HTTP server speaking Ollama's API with scriptable answers and
failures, and a log of what clients did (including hanging up mid-stream).

- ``OllamaEmulator`` (``app.py``): the dependency-free ASGI app;
- ``Script`` / ``ToolCall`` (``script.py``): what it says and how it fails;
- ``EmulatorServer`` (``server.py``): uvicorn on 127.0.0.1 in a background thread, for tests;
- ``python manage.py ollama_emulator``: the same app in the foreground, for offline demos.
"""

from .app import OllamaEmulator
from .script import FAILURES, Script, ToolCall
from .server import EmulatorServer

__all__ = ["FAILURES", "EmulatorServer", "OllamaEmulator", "Script", "ToolCall"]
