"""Real server processes for end-to-end tests.

The ``servers`` fixture migrates a database of its own and starts daphne workers on free
loopback ports, exactly as production runs them (``chatproject.asgi:application``). With
``DATABASE_URL`` and ``REDIS_URL`` set it starts two workers on one PostgreSQL database and
one Redis; on the embedded default, one worker on a SQLite file. Tests talk to them only
over HTTP and WebSocket.

The workers' ``OLLAMA_URL`` is an Ollama emulator running in the test process
(``platform.ollama``): tests script its answers and read what the workers did to it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx
import pytest
import websockets

from llm.emulator import EmulatorServer

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_for_run() -> tuple[str, callable]:
    """A database URL only this test run uses, and how to drop it afterwards. It is named
    after the database ``DATABASE_URL`` names, so runs sharing a server keep to their own."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        path = Path(tempfile.mkdtemp(prefix="chat-e2e-")) / "db.sqlite3"
        return f"sqlite:///{path}", lambda: None
    import psycopg

    parsed = urlparse(base)
    name = f"{parsed.path.strip('/') or 'chat'}_e2e_{uuid.uuid4().hex[:10]}"
    admin = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunparse(parsed._replace(path=f"/{name}")), drop


@dataclass
class Worker:
    url: str
    process: subprocess.Popen

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws/chat/"


class Platform:
    """The running workers and a few helpers to act as users through them."""

    def __init__(
        self, workers: list[Worker], env: dict[str, str], ollama: EmulatorServer | None = None
    ) -> None:
        self.workers = workers
        self.env = env
        self.ollama = ollama
        self._names = 0

    @property
    def shared(self) -> bool:
        """Whether the workers share Redis (so cross-worker behaviour can be tested)."""
        return len(self.workers) > 1

    def worker(self, index: int) -> Worker:
        return self.workers[index % len(self.workers)]

    def user(self, prefix: str = "u") -> dict:
        """Register a new user through the API; returns {id, username, access, refresh}."""
        self._names += 1
        name = f"{prefix}{self._names}{uuid.uuid4().hex[:6]}"
        with httpx.Client(base_url=self.worker(0).url, timeout=10) as http:
            created = http.post(
                "/api/auth/register", json={"username": name, "password": "pw-Secret-123"}
            )
            assert created.status_code == 201, created.text
            tokens = http.post(
                "/api/auth/token", json={"username": name, "password": "pw-Secret-123"}
            ).json()
        return {**created.json(), **tokens}

    def api(self, user: dict, index: int = 0) -> httpx.Client:
        return httpx.Client(
            base_url=self.worker(index).url,
            headers={"Authorization": f"Bearer {user['access']}"},
            timeout=10,
        )

    def room(self, owner: dict, *members: dict) -> str:
        with self.api(owner) as http:
            response = http.post(
                "/api/chat/sessions",
                json={"title": "e2e", "memberIds": [m["id"] for m in members]},
            )
            assert response.status_code == 201, response.text
            return response.json()["id"]

    async def connect(self, user: dict, index: int = 0, **kwargs):
        """An open socket on worker ``index`` that has read its ``connection:success``."""
        ws = await websockets.connect(
            f"{self.worker(index).ws_url}?token={user['access']}", max_size=2**22, **kwargs
        )
        first = json.loads(await ws.recv())
        assert first["event"] == "connection:success", first
        return ws


def server_command(server: str, port: int) -> list[str]:
    """How production serves the app (README): daphne, or uvicorn, with the 64 KiB limit.

    Both servers' own caps sit above 64 KiB so the application's check is what answers an
    oversized frame with 1009 (see ``chatproject.daphne_close_codes``).
    """
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--ws-max-size", "262144", "--no-access-log", "chatproject.asgi:application",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "daphne", "--bind", "127.0.0.1", "--port", str(port),
        "--websocket-max-message-size", "262144", "chatproject.asgi:application",
    ]  # fmt: skip


def start_worker(
    env: dict[str, str], server: str = "daphne", *, port: int | None = None, within: float = 30
) -> Worker:
    """A worker on a free (or the given: a restart on the same address) loopback port, once
    it answers HTTP. Its log is appended to, so a restarted worker keeps its history."""
    port = port or free_port()
    log = open(Path(env["E2E_LOG_DIR"]) / f"{server}-{port}.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        server_command(server, port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{server} exited with {process.returncode}: see {log.name}")
        try:
            if httpx.get(f"{url}/api/auth/me", timeout=2).status_code == 401:
                return Worker(url=url, process=process)
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{server} on {port} did not start in {within} s: see {log.name}")


@contextmanager
def running_platform(tag: str) -> Iterator[Platform]:
    """A fresh database, migrated; an Ollama emulator; one worker, or two when ``REDIS_URL``
    lets them share state. Everything is stopped and dropped on exit."""
    database_url, drop_database = _database_for_run()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "DJANGO_SETTINGS"))
    }
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="chatproject.settings.local",
        AUTH_RATE="off",
        REALTIME_PREFIX=f"chat-{tag}-{uuid.uuid4().hex[:8]}",
        E2E_LOG_DIR=tempfile.mkdtemp(prefix=f"chat-{tag}-logs-"),
        MEDIA_ROOT=tempfile.mkdtemp(prefix=f"chat-{tag}-media-"),
        STREAM_DELAY="20",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    ollama = EmulatorServer().start()
    env["OLLAMA_URL"] = ollama.url
    workers: list[Worker] = []
    try:
        workers.extend(start_worker(env) for _ in range(2 if env.get("REDIS_URL") else 1))
        yield Platform(workers, env, ollama)
    finally:
        for worker in workers:
            stop_worker(worker)
        ollama.stop()
        drop_database()
        shutil.rmtree(env["MEDIA_ROOT"], ignore_errors=True)


@pytest.fixture(scope="session")
def platform():
    with running_platform("e2e") as running:
        yield running


@pytest.fixture
def ollama(platform):
    """The platform's Ollama emulator, reset before and after a test."""
    platform.ollama.reset()
    yield platform.ollama
    platform.ollama.reset()


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a process we started (if it still runs), killing it after 10 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def stop_worker(worker: Worker) -> None:
    stop_process(worker.process)


@pytest.fixture
def uvicorn_worker(platform):
    """One more worker, served by uvicorn, on the same database (and Redis, if any)."""
    worker = start_worker(platform.env, "uvicorn")
    yield worker
    stop_worker(worker)


@pytest.fixture
def two_workers(platform):
    if not platform.shared:
        pytest.skip("cross-worker behaviour needs REDIS_URL (one worker on the embedded default)")
    return platform
