"""A 100,000-message session exported through a real daphne worker: the whole of it arrives,
and the worker's memory stays flat while it streams.

The session is written in bulk (``tests.e2e.export_seed``). While the client reads the
export as it streams, a thread samples the worker's resident memory (``VmRSS`` in
``/proc/<pid>/status``). The export's JSON is far larger than the bound: a worker that held
the session, or the whole body, before sending it would pass the bound several times over;
one that streams pages holds one page at a time. A slow reader is tried on uvicorn, which
waits for the socket; daphne does not (README, "Export").
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

MESSAGES = 100_000
# The most the worker's memory may grow during the download. The JSON body is larger than
# this; a worker holding it, or the rows it came from, grows several times beyond it.
GROWTH_MAX_MB = 40


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


class MemorySampler(threading.Thread):
    """Reads a process's resident memory every few milliseconds until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0.0
        self.samples = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self.samples += 1
            time.sleep(0.01)

    def stop(self) -> float:
        self.halt.set()
        self.join()
        return self.peak


def seed(platform, owner: dict, count: int) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.export_seed", str(owner["id"]), str(count)],
        cwd=ROOT, env=platform.env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def download(
    url: str, user: dict, session_id: str, fmt: str, *, pause: float = 0
) -> tuple[httpx.Response, bytes]:
    """The export, read as it streams; with ``pause``, a slow client: 64 KiB, then a rest."""
    parts = []
    with (
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {user['access']}"}) as http,
        http.stream(
            "GET", f"/api/chat/sessions/{session_id}/export?format={fmt}", timeout=120
        ) as response,
    ):
        assert response.status_code == 200, response.read()[:300]
        for part in response.iter_bytes(64 * 1024 if pause else None):
            parts.append(part)
            if pause:
                time.sleep(pause)
    return response, b"".join(parts)


@pytest.fixture(scope="module")
def sessions(platform):
    """A member, a small session (to warm a worker up) and the large one."""
    owner = platform.user("exporter")
    return owner, seed(platform, owner, 2_000), seed(platform, owner, MESSAGES)


def growth_while_exporting(
    url: str, pid: int, sessions, *, pause: float = 0
) -> tuple[float, httpx.Response, bytes]:
    """How much the worker's memory grew, over its warmed-up size, while exporting the
    large session; the response and its body."""
    owner, small, large = sessions
    # Warm up: the code paths, the connection pool and the allocator's first arenas.
    for fmt in ("json", "md"):
        download(url, owner, small, fmt)
    baseline = rss_mb(pid)
    sampler = MemorySampler(pid)
    sampler.start()
    try:
        response, body = download(url, owner, large, "json", pause=pause)
    finally:
        peak = sampler.stop()
    assert sampler.samples > 20, "too few memory samples to judge"
    return peak - baseline, response, body


def test_a_large_export_streams_whole_in_bounded_memory(platform, sessions):
    worker = platform.worker(0)
    growth, response, body = growth_while_exporting(worker.url, worker.process.pid, sessions)

    assert growth < GROWTH_MAX_MB, f"daphne grew {growth:.1f} MB streaming the export"
    assert response.headers["content-disposition"].startswith('attachment; filename="export-e2e-')
    assert len(body) > GROWTH_MAX_MB * 2**20, "the export should be larger than the bound"
    data = json.loads(body)
    messages = data["messages"]
    assert len(messages) == MESSAGES
    assert sorted(m["seq"] for m in messages) == list(range(1, MESSAGES + 1))
    # Each block of ten: its first root, that root's three replies, then six more roots.
    assert [m["seq"] for m in messages[:10]] == [1, 8, 9, 10, 2, 3, 4, 5, 6, 7]
    tombstones = [m for m in messages if m["isDeleted"]]
    assert len(tombstones) == MESSAGES // 100
    assert all(m["content"] == "" for m in tombstones)
    answers = [m for m in messages if m["role"] == "assistant"]
    assert answers and all(m["model"] == "llama3.2" for m in answers)
    assert sum(len(m["attachments"]) for m in messages) == MESSAGES // 1000


def test_a_slow_reader_costs_uvicorn_no_memory(uvicorn_worker, sessions):
    """uvicorn waits for the socket to drain before taking the next part, so a client far
    slower than the export holds the worker back instead of filling its memory. (daphne
    writes without waiting: there a slow client's backlog sits in the worker, README.)"""
    growth, _, body = growth_while_exporting(
        uvicorn_worker.url, uvicorn_worker.process.pid, sessions, pause=0.015
    )

    assert growth < GROWTH_MAX_MB, f"uvicorn grew {growth:.1f} MB for a slow reader"
    assert len(json.loads(body)["messages"]) == MESSAGES
