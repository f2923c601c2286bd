"""Real server processes for the reliability tests, and private Redis / PostgreSQL instances
to break on purpose.

- ``rel_platform`` (one per run): a database of its own on ``DATABASE_URL`` (or a SQLite file
  on the embedded default), migrated once, an Ollama emulator, and daphne workers exactly as
  production runs them: two on the shared Redis when ``REDIS_URL`` is set, one otherwise.
  Users and rooms are made in bulk by one ``manage.py shell`` process (``seed``): hashing a
  password per user through ``/api/auth/register`` would cost minutes for a hundred users.
- ``private_redis``: a ``redis-server`` on a free loopback port that a test may kill and
  restart; nobody else uses it.
- ``private_postgres``: a PostgreSQL cluster made by ``initdb`` in a temporary folder, on a
  free port, run as the ``postgres`` user; a test may restart or crash it.

The shared PostgreSQL and Redis are never stopped, restarted or flushed here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from llm.emulator import EmulatorServer
from tests.e2e.conftest import (
    ROOT,
    Worker,
    _database_for_run,
    free_port,
    start_worker,
    stop_process,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")

# Runs inside the platform's environment (``manage.py shell``): users with one shared
# password hash, access tokens minted directly, rooms made by the service.
SEED_CODE = """
import json, os
from django.contrib.auth.hashers import make_password
from rest_framework_simplejwt.tokens import AccessToken
from accounts.models import User
from chat.services.sessions import session_create
spec = json.loads(os.environ["SEED_SPEC"])
password = make_password("pw-Secret-123")
staff = set(spec.get("staff", []))
users = User.objects.bulk_create([
    User(username=f"{spec['prefix']}{i}", password=password, is_staff=i in staff)
    for i in range(spec["users"])
])
users = list(User.objects.filter(username__startswith=spec["prefix"]).order_by("id"))
by_index = {int(u.username[len(spec["prefix"]):]): u for u in users}
rooms = []
for members in spec["rooms"]:
    owner = by_index[members[0]]
    session = session_create(
        creator=owner, title=spec.get("title", "reliability"),
        member_ids=[by_index[i].pk for i in members[1:]],
    )
    rooms.append(str(session.pk))
out = {
    "users": [
        {"id": by_index[i].pk, "username": by_index[i].username,
         "access": str(AccessToken.for_user(by_index[i]))}
        for i in range(spec["users"])
    ],
    "rooms": rooms,
}
print("SEED:" + json.dumps(out))
"""


def worker_env(**overrides: str) -> dict[str, str]:
    """The environment of a worker: this process's, less pytest's, plus test settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "DJANGO_SETTINGS"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="chatproject.settings.local",
        AUTH_RATE="off",
        REALTIME_PREFIX=f"chat-rel-{uuid.uuid4().hex[:8]}",
        E2E_LOG_DIR=tempfile.mkdtemp(prefix="chat-rel-logs-"),
        MEDIA_ROOT=tempfile.mkdtemp(prefix="chat-rel-media-"),
        # Long enough for any test here: expiry is tested elsewhere.
        JWT_ACCESS_SECONDS="3600",
        STREAM_DELAY="20",
        LOG_LEVEL="INFO",
    )
    env.update(overrides)
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=env, check=True, timeout=240,
    )  # fmt: skip


@dataclass
class Seeded:
    users: list[dict]
    rooms: list[str]


@dataclass
class RelPlatform:
    """Workers on one database (and one Redis, if any), with helpers to act on them."""

    env: dict[str, str]
    ollama: EmulatorServer | None = None
    workers: list[Worker] = field(default_factory=list)
    _seeds: int = 0

    @property
    def shared(self) -> bool:
        """Whether the workers share Redis, so several can serve one platform."""
        return bool(self.env.get("REDIS_URL"))

    @property
    def log_dir(self) -> Path:
        return Path(self.env["E2E_LOG_DIR"])

    def add_worker(self) -> Worker:
        worker = start_worker(self.env, within=60)
        self.workers.append(worker)
        return worker

    def url(self, index: int) -> str:
        return self.workers[index % len(self.workers)].url

    def ws_url(self, index: int, path: str = "/ws/chat/") -> str:
        return self.url(index).replace("http://", "ws://") + path

    def kill(self, worker: Worker) -> None:
        """SIGKILL: no close frames, no cleanup, as a crashed or OOM-killed process."""
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(timeout=10)

    def stop(self) -> None:
        for worker in self.workers:
            stop_process(worker.process)

    def seed(self, users: int, rooms: list[list[int]], *, staff=()) -> Seeded:
        """``users`` new users with access tokens, and rooms whose first member owns them."""
        self._seeds += 1
        prefix = f"r{uuid.uuid4().hex[:6]}{self._seeds}x"
        spec = {"prefix": prefix, "users": users, "rooms": rooms, "staff": list(staff)}
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SEED_CODE],
            cwd=ROOT, env={**self.env, "SEED_SPEC": json.dumps(spec)},
            check=True, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        line = next(x for x in done.stdout.splitlines() if x.startswith("SEED:"))
        data = json.loads(line[len("SEED:") :])
        return Seeded(users=data["users"], rooms=data["rooms"])

    def api(self, user: dict | None, index: int = 0, timeout: float = 30) -> httpx.Client:
        headers = {"Authorization": f"Bearer {user['access']}"} if user else {}
        return httpx.Client(base_url=self.url(index), headers=headers, timeout=timeout)

    def live_index(self) -> int:
        """The index of a worker that is still running."""
        return next(i for i, w in enumerate(self.workers) if w.process.poll() is None)

    def history(self, user: dict, room: str, index: int | None = None) -> list[dict]:
        """Every top-level message of a room, in seq order, read through REST."""
        index = self.live_index() if index is None else index
        messages: list[dict] = []
        with self.api(user, index) as http:
            while True:
                after = messages[-1]["seq"] if messages else 0
                response = http.get(
                    f"/api/chat/sessions/{room}/messages", params={"afterSeq": after, "limit": 200}
                )
                assert response.status_code == 200, response.text
                page = response.json()["messages"]
                if not page:
                    return messages
                messages.extend(page)

    def log_mark(self) -> dict[str, int]:
        return {path.name: path.stat().st_size for path in self.log_dir.glob("*.log")}

    def log_since(self, mark: dict[str, int] | None = None) -> str:
        """What the workers logged since ``mark`` (everything, without one)."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            with path.open("rb") as log:
                log.seek((mark or {}).get(path.name, 0))
                parts.append(log.read().decode(errors="replace"))
        return "".join(parts)


def tracebacks(log: str) -> list[str]:
    """The tracebacks in a worker log, each with the line before it (what was logged)."""
    lines = log.splitlines()
    return [
        "\n".join(lines[max(0, i - 1) : i + 12])
        for i, line in enumerate(lines)
        if "Traceback" in line
    ]


def make_platform(env: dict[str, str], workers: int, ollama: EmulatorServer | None) -> RelPlatform:
    platform = RelPlatform(env=env, ollama=ollama)
    try:
        for _ in range(workers):
            platform.add_worker()
    except BaseException:
        platform.stop()
        raise
    return platform


@pytest.fixture(scope="session")
def rel_platform():
    """The shared reliability platform: two workers on PostgreSQL + Redis, or one on the
    embedded default."""
    database_url, drop_database = _database_for_run()
    ollama = EmulatorServer().start()
    # A silent Ollama fails a stream after 3 s here (the stall test waits for it).
    env = worker_env(DATABASE_URL=database_url, OLLAMA_URL=ollama.url, OLLAMA_READ_TIMEOUT="3")
    try:
        migrate(env)
        platform = make_platform(env, 2 if env.get("REDIS_URL") else 1, ollama)
    except BaseException:
        ollama.stop()
        drop_database()
        raise
    yield platform
    platform.stop()
    ollama.stop()
    drop_database()


@pytest.fixture
def ollama(rel_platform):
    rel_platform.ollama.reset()
    yield rel_platform.ollama
    rel_platform.ollama.reset()


# --- private Redis ---------------------------------------------------------------------------


class PrivateRedis:
    """A ``redis-server`` only this test uses, on a fixed port across restarts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="chat-rel-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, within: float = 20) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", self.dir,
                "--logfile", str(Path(self.dir) / "redis.log"),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not start in {within} s")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_redis():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


# --- private PostgreSQL ----------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary folder, run as ``postgres`` (initdb refuses root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="chat-rel-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"

    def _as_postgres(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            command = ("runuser", "-u", "postgres", "--", *command)
        return subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--no-sync", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            "-o", options, action, *extra,
        )  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def restart(self, mode: str = "fast") -> None:
        self._ctl("restart", "-m", mode)

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def ready(self) -> bool:
        done = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            check=False,
        )
        return done.returncode == 0

    def execute(self, sql: str, database: str = "postgres") -> list[tuple]:
        import psycopg

        with psycopg.connect(self.database_url(database), autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres():
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 binaries are not in {PG_BIN}")
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        cluster.destroy()
        raise
    yield cluster
    cluster.destroy()
