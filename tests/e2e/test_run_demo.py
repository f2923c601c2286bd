"""README command 1 with ``--demo``: ``scripts/run --demo`` serves the platform with the
Ollama emulator beside it, so a newcomer's assistant answers with no Ollama installed, and
both stop together."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, free_port

pytestmark = pytest.mark.e2e

PASSWORD = "pw-Secret-123"
# The first run may install run.lock into .venv (the tests' venv holds test.lock).
STARTUP_S = 300


def wait_for_text(log: Path, text: str, process: subprocess.Popen, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        out = log.read_text(errors="replace")
        if text in out:
            return out
        assert process.poll() is None, f"scripts/run exited with {process.returncode}:\n{out}"
        time.sleep(0.5)
    raise AssertionError(f"no {text!r} within {within} s:\n{log.read_text(errors='replace')}")


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def test_run_demo_serves_an_assistant_that_answers_and_stops_with_the_server():
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="chat-demo-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_"))}
    env.pop("REDIS_URL", None)
    env.pop("OLLAMA_URL", None)
    env.update(DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}", PORT=str(port))
    log = work / "run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "run"), "--demo"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        printed = wait_for_text(log, "Chat is up:", process, STARTUP_S)
        assert f"web app     http://127.0.0.1:{port}/signup/" in printed
        ollama_url = re.search(r"the Ollama emulator at (http://127\.0\.0\.1:\d+)", printed)[1]

        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            created = http.post("/api/auth/register", json={"username": "newcomer",
                                                            "password": PASSWORD})  # fmt: skip
            assert created.status_code == 201, created.text
            token = http.post(
                "/api/auth/token", json={"username": "newcomer", "password": PASSWORD}
            ).json()["access"]
            answer = http.post(
                "/api/llm/query",
                json={"prompt": "hello from the README"},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert answer.status_code == 200, answer.text
        assert "hello from the README" in answer.json()["content"]
        assert answer.json()["model"].startswith("llama3.2")
        assert not refused(ollama_url)
    finally:
        # A TERM to the script itself, as a service manager would send it.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (refused(ollama_url) and refused(base)):
        time.sleep(0.2)
    assert refused(ollama_url), "the emulator outlived scripts/run"
    assert refused(base), "the server outlived scripts/run"
