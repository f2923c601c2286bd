"""``EmulatorServer``: the Ollama emulator served by uvicorn on 127.0.0.1 in a background
thread, for tests (and anything else in-process that needs a real Ollama URL).

    with EmulatorServer() as ollama:
        ollama.configure(tokens=["Hel", "lo"], delay_ms=20)
        ChatOllama(base_url=ollama.url, model="llama3.2")
        ...
        ollama.wait_for("complete")

The server runs its own event loop in its own thread, so it keeps serving while a test's
loop is blocked or torn down; state is shared through the thread-safe ``OllamaEmulator``.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from .app import OllamaEmulator
from .script import Script


class EmulatorServer:
    """Start with ``start()`` (or ``with``), stop with ``stop()``; ``port=0`` picks a free one."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, script: Script | None = None
    ) -> None:
        self.host = host
        self.requested_port = port
        self.app = OllamaEmulator(script)
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the emulator is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmulatorServer:
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        # Binding here, not in uvicorn, gives the real port before the thread starts and
        # leaves no window in which another process could take it.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            loop="asyncio",
            lifespan="on",
            ws="none",
            access_log=False,
            log_level="warning",
            # Leave the host application's logging alone.
            log_config=None,
            # Streams still running at stop() are cut after this long.
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"ollama-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                self._cleanup()
                raise RuntimeError("the Ollama emulator failed to start")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the Ollama emulator did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self._server is not None:
            self.app.close()
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._server = None
        self._thread = None
        self.port = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the emulator's state, for tests ----------------------------------------------

    @property
    def script(self) -> Script:
        return self.app.script

    @script.setter
    def script(self, script: Script) -> None:
        self.app.script = script

    def configure(self, **changes: Any) -> Script:
        """Merge fields into the script (see ``Script`` for them)."""
        return self.app.configure(**changes)

    def reset(self) -> None:
        self.app.reset()

    @property
    def log(self) -> list[dict[str, Any]]:
        return self.app.log

    def events(self, event: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return self.app.events(event, **match)

    def requests(self) -> list[dict[str, Any]]:
        return self.app.events("request")

    def wait_for(self, event: str, within: float = 5.0, **match: Any) -> dict[str, Any]:
        return self.app.wait_for(event, within, **match)

    async def await_event(self, event: str, within: float = 5.0, **match: Any) -> dict[str, Any]:
        return await self.app.await_event(event, within, **match)
