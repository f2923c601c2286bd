"""Uploads at the same moment, through a real daphne worker: every one is stored.

On SQLite (the embedded default, and any sqlite:// DATABASE_URL) simultaneous writers used to
meet "database is locked" (503) when a read transaction turned into a write; the settings'
SQLite options (WAL, IMMEDIATE transactions, a busy timeout) make them wait their turn.
"""

from __future__ import annotations

import threading

import pytest

from tests.chat.test_attachments import png_bytes

pytestmark = pytest.mark.e2e

AT_ONCE = 4
ROUNDS = 3


def test_simultaneous_uploads_to_one_message_are_all_stored(platform):
    alice = platform.user("alice")
    room = platform.room(alice)
    with platform.api(alice) as http:
        message_id = http.post(
            "/api/chat/messages", json={"sessionId": room, "content": "the photos"}
        ).json()["id"]
    # Big enough (about 1 MB) that one upload's writes are still going when the next begins.
    image = png_bytes(600, 500)
    statuses: list[tuple[int, str]] = []

    def upload(name: str, start: threading.Barrier) -> None:
        with platform.api(alice) as http:
            start.wait()
            response = http.post(
                f"/api/chat/messages/{message_id}/attachments",
                files={"file": (name, image, "image/png")},
                timeout=60,
            )
        statuses.append((response.status_code, response.text[:200]))

    for round_ in range(ROUNDS):
        start = threading.Barrier(AT_ONCE)
        threads = [
            threading.Thread(target=upload, args=(f"photo-{round_}-{i}.png", start))
            for i in range(AT_ONCE)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert [code for code, _ in statuses] == [201] * AT_ONCE * ROUNDS, statuses
    with platform.api(alice) as http:
        stored = http.get(f"/api/chat/messages/{message_id}/attachments").json()
    assert len(stored) == AT_ONCE * ROUNDS
