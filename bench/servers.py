"""Real server processes for benchmarks: a fresh database, migrations, daphne workers.

The same shape as the end-to-end fixtures (tests/e2e/conftest.py): workers serve
``chatproject.asgi:application`` with daphne on free loopback ports, exactly as production
runs them, and are driven only over HTTP and WebSocket. Kept here rather than imported from
the test suite so a benchmark does not depend on pytest fixtures.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_MODULE = "bench.settings_bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_database(
    postgres_url: str | None, *, prefix: str = "chat_bench_"
) -> tuple[str, Callable[[], None]]:
    """A database only this run uses (PostgreSQL if ``postgres_url``, else a SQLite file)
    and how to drop it afterwards. ``prefix`` starts its name, so that an operator sharing
    the server can tell whose it is."""
    if not postgres_url:
        folder = tempfile.mkdtemp(prefix="chat-bench-")
        return f"sqlite:///{folder}/db.sqlite3", lambda: shutil.rmtree(folder, ignore_errors=True)
    import psycopg

    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    parsed = urlparse(postgres_url)
    admin = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunparse(parsed._replace(path=f"/{name}")), drop


def worker_env(*, database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of a worker: this process's, minus anything that would point it at
    another database, Redis or settings module, plus the given configuration."""
    skip = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "CHANNEL_LAYER", "PYTEST_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(skip)}
    env.update(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE=SETTINGS_MODULE, **extra)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip


@dataclass
class Worker:
    url: str
    process: subprocess.Popen
    log: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws/chat/"


def server_command(port: int) -> list[str]:
    """daphne as production runs it (README), with the same frame cap as the e2e workers."""
    return [
        sys.executable, "-m", "daphne", "--bind", "127.0.0.1", "--port", str(port),
        "--websocket-max-message-size", "262144", "chatproject.asgi:application",
    ]  # fmt: skip


def uvicorn_command(port: int) -> list[str]:
    """uvicorn, which the platform must also work with (CONTRACT section 1), one process."""
    return [
        sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
        "--ws-max-size", "262144", "--no-access-log", "chatproject.asgi:application",
    ]  # fmt: skip


def start_worker(
    env: dict[str, str],
    log_dir: Path,
    command: Callable[[int], list[str]] = server_command,
    tree: Path = ROOT,
) -> Worker:
    """A server process on a free loopback port (daphne unless ``command`` says otherwise),
    once it answers HTTP. ``tree``: the checkout it runs, with that checkout's ``.venv`` if
    it has one (another commit of the platform, measured in the same run)."""
    port = free_port()
    argv = command(port)
    name = argv[2]  # [python, -m, name, ...]
    if tree != ROOT and (tree / ".venv" / "bin" / "python").exists():
        argv = [str(tree / ".venv" / "bin" / "python"), *argv[1:]]
    log_path = log_dir / f"{name}-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}: see {log_path}")
        try:
            if httpx.get(f"{url}/api/auth/me", timeout=1).status_code == 401:
                return Worker(url=url, process=process, log=log_path)
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{name} on {port} did not start in 90 s: see {log_path}")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far (Linux /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def postgres_backends(database: str) -> list[int]:
    """Pids of the PostgreSQL backends serving ``database`` on this machine (their process
    titles name it: ``postgres: 15/main: user database 127.0.0.1(port) state``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            pids.append(int(entry.name))
    return pids


def rss_kib(pid: int) -> int:
    """Resident memory of a process now, in KiB (``VmRSS`` of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def raise_fd_limit(needed: int) -> int:
    """Let this process (and the processes it starts afterwards, which inherit the limit)
    hold at least ``needed`` open files; the soft limit now in force. The hard limit is
    raised too when it is lower and this process may (root)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    try:
        if hard != resource.RLIM_INFINITY and hard < needed:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    except (ValueError, OSError) as exc:
        raise SystemExit(
            f"cannot raise the open-file limit to {needed} (soft {soft}, hard {hard}): {exc}"
        ) from exc
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def write_section(path: Path, heading: str, text: str) -> None:
    """Put ``text``, a markdown section that starts with the line ``heading`` (``## ...``),
    in ``path``: in place of the section with that heading if there is one (up to the next
    ``## ``), else at the end. Other sections are left as they are."""
    if path.exists():
        lines = path.read_text().splitlines()
    else:
        lines = ["# Benchmarks", "", "One section per benchmark, each with the command that "
                 "produced its numbers.", ""]  # fmt: skip
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", *text.rstrip("\n").splitlines()]
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = lines[end:]
        lines = [*lines[:start], *text.rstrip("\n").splitlines(), *([""] if tail else []), *tail]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip("\n") + "\n")


def add_service_options(parser, *, redis: bool = True) -> None:
    """The options every benchmark shares: where PostgreSQL (and Redis) are, and where to
    write the results."""
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    if redis:
        parser.add_argument(
            "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        )
    parser.add_argument("--write", type=Path, help="put the results in this markdown file")
