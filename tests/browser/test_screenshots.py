"""The main screens, drawn in Chromium: the session list, a room in use (reactions, a
thread, an image, code), the assistant streaming an answer (code highlighted, a table), the
upload errors, and the room on a phone (its drawer open, too).

Every run checks that the screens render without a script error. With
``UPDATE_SCREENSHOTS=1`` the pictures are written to ``docs/screenshots/`` (the README
shows them); otherwise to a temporary folder.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.test_room import answer, ask

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "pw-Secret-123"
NOTES = b"Release notes, v2.3\n" * 4000 + b"\x00\xff"
BIG = b"\x00\x00\x00\x18ftypmp42" + bytes(11 * 1024 * 1024)


@pytest.fixture
def shots(tmp_path) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return tmp_path


def named_user(web, name: str) -> dict:
    """A user called ``name`` if the name is free in this run, else ``name`` + a suffix."""
    with httpx.Client(base_url=web.worker(0).url, timeout=10) as http:
        for candidate in (name, f"{name}-{uuid.uuid4().hex[:4]}"):
            created = http.post(
                "/api/auth/register", json={"username": candidate, "password": PASSWORD}
            )
            if created.status_code == 201:
                tokens = http.post(
                    "/api/auth/token", json={"username": candidate, "password": PASSWORD}
                ).json()
                return {**created.json(), **tokens}
    raise AssertionError(f"could not register {name}")


def post(web, user, path, body):
    with web.api(user) as http:
        response = http.post(path, json=body)
        assert response.status_code in (200, 201), response.text
        return response.json()


def room_with_history(web, alice, bob, carol, title="release-planning") -> str:
    room = post(
        web, alice, "/api/chat/sessions", {"title": title, "memberIds": [bob["id"], carol["id"]]}
    )["id"]

    def say(user, text, **extra):
        return post(web, user, "/api/chat/messages", {"sessionId": room, "content": text, **extra})

    first = say(alice, "Morning! Are we shipping **v2.3** today?")
    post(web, bob, f"/api/chat/messages/{first['id']}/reactions", {"emoji": "👍"})
    post(web, carol, f"/api/chat/messages/{first['id']}/reactions", {"emoji": "👍"})
    ci = say(bob, "CI is green on `main`. The migration ran on staging in 41 s.")
    post(web, alice, f"/api/chat/messages/{ci['id']}/reactions", {"emoji": "🎉"})
    say(
        bob,
        "Checklist before tagging:\n- changelog\n- docs version bump\n- announce in #general",
    )
    say(carol, "Here's the new dashboard, for the notes:")
    with web.api(carol) as http:
        shot = http.post(
            "/api/chat/messages", json={"sessionId": room, "content": "dashboard.png"}
        ).json()
        http.post(
            f"/api/chat/messages/{shot['id']}/attachments",
            files={"file": ("dashboard.png", dashboard_png(), "image/png")},
        )
    thread = say(alice, "Who runs the release?")
    say(bob, "I can, after lunch.", parentMessageId=thread["id"])
    say(carol, "I'll review the notes meanwhile.", parentMessageId=thread["id"])
    deploy = say(alice, 'Deploy with:\n```sh\n./scripts/run --tag v2.3 && echo "tagged $TAG"\n```')
    for user, emoji in ((bob, "✅"), (carol, "✅"), (carol, "👀")):
        post(web, user, f"/api/chat/messages/{deploy['id']}/reactions", {"emoji": emoji})
    return room


def dashboard_png() -> bytes:
    """A small chart, drawn as a PNG without any imaging library."""
    import struct
    import zlib

    width, height = 360, 160
    bars = [40, 70, 55, 95, 120, 85, 135]
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            color = (248, 250, 252)
            slot, offset = divmod(x - 20, 48)
            if (
                0 <= slot < len(bars)
                and 6 <= offset < 38
                and height - 10 - bars[slot] <= y < height - 10
            ):
                color = (99, 102, 241) if slot % 2 else (139, 92, 246)
            if y == height - 10:
                color = (203, 213, 225)
            row += bytes(color)
        rows.append(bytes(row))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def test_the_main_screens(web, people, ollama, shots):
    alice, bob, carol = (named_user(web, n) for n in ("alice", "bob", "carol"))
    room = room_with_history(web, alice, bob, carol)
    other = post(web, bob, "/api/chat/sessions", {"title": "design", "memberIds": [alice["id"]]})
    post(
        web, bob, "/api/chat/messages", {"sessionId": other["id"], "content": "New mockups are up"}
    )
    post(web, carol, "/api/chat/sessions", {"title": "random", "memberIds": [alice["id"]]})

    b = people(bob)
    b.open_room(room)
    a = people(alice)
    expect(a.page.locator(".session-row")).to_have_count(3)
    a.page.screenshot(path=shots / "session-list.png")

    a.open_room(room)
    a.page.wait_for_function(
        "() => [...document.querySelectorAll('#messages img')].every((i) => i.complete)"
    )
    a.page.evaluate("document.querySelector('#timeline').scrollTop = 1e9")
    b.page.locator("#composer .composer-input").type("Tagging now")
    expect(a.page.locator("#typing")).to_contain_text("is typing")
    a.page.screenshot(path=shots / "room.png")

    a.message("Who runs the release?").locator(".msg-replies").click()
    expect(a.page.locator("#panel .msg")).to_have_count(3)
    a.page.mouse.move(640, 790)  # away from the messages: no hover toolbar in the picture
    a.page.screenshot(path=shots / "thread.png")
    a.page.locator("#panel-close").click()

    ollama.configure(
        reply=(
            "Here is the plan for **v2.3**:\n\n"
            "| step | who | when |\n|---|---|---|\n"
            "| Tag from `main` once CI is green | Bob | after lunch |\n"
            "| Changelog and docs version | Carol | today |\n\n"
            "To tag it:\n\n"
            "```python\n"
            "def tag(version: str) -> None:\n"
            '    run(["git", "tag", f"v{version}"])  # then push the tag\n'
            "```\n\n"
            "Announce it in #general with a link to the notes."
        ),
        delay_ms=60,
    )
    b.page.evaluate("document.querySelector('#timeline').scrollTop = 1e9")
    ask(a, "Summarise the release plan for the notes")
    b.page.wait_for_function(
        "() => (document.querySelector('#messages .msg.assistant .msg-content')"
        "?.textContent.includes('then push'))"
    )
    expect(answer(b).locator(".btn-stop")).to_be_visible()
    b.page.screenshot(path=shots / "assistant-streaming.png")
    expect(answer(a).locator(".stream-bar")).to_have_count(0, timeout=30_000)

    upload_errors(a, shots)

    narrow = a.page.context.new_page()
    narrow.set_viewport_size({"width": 390, "height": 780})
    narrow.goto(f"{a.base}/rooms/{room}/")
    narrow.wait_for_selector("#room[data-joined=true]")
    expect(narrow.locator("#conn-state")).to_have_attribute("data-state", "open")
    narrow.screenshot(path=shots / "room-mobile.png")
    narrow.locator("#sidebar-toggle").click()
    expect(narrow.locator("#sidebar-close")).to_be_focused()
    narrow.screenshot(path=shots / "room-mobile-drawer.png")
    narrow.close()


def upload_errors(person, shots: Path) -> None:
    """A file that failed after its message went out (kept on the message, with Attach
    again and Remove), and one refused as it is picked (over the limit)."""
    page = person.page
    page.locator("#composer .mode-btn[data-mode=message]").click()
    page.locator("#composer input[type=file]").set_input_files(
        # Text as far as the browser looks, then a byte no text has: the server refuses it.
        [{"name": "meeting-notes.txt", "mimeType": "text/plain", "buffer": NOTES}]
    )
    person.say("The notes from this morning")
    failure = person.message("The notes from this morning").locator(".upload-error")
    expect(failure).to_contain_text("wasn't attached")
    page.locator("#composer input[type=file]").set_input_files(
        [{"name": "demo-recording.mp4", "mimeType": "video/mp4", "buffer": BIG}]
    )
    expect(page.locator("#composer .composer-error")).to_contain_text("over the 10 MB limit")
    page.evaluate("document.querySelector('#timeline').scrollTop = 1e9")
    page.screenshot(path=shots / "upload-error.png")
