"""Grounded answers in real Chromium: an uploaded file shows "Indexing…" then "Indexed" live
in the other member's window, a broken PDF shows why it couldn't be indexed, and the
assistant's answer lists the file it was given under its text, linking to the download.
With ``UPDATE_SCREENSHOTS=1`` the room is drawn into ``docs/screenshots/grounded-answer.png``
(``tests/browser/test_screenshots.py``'s mechanism)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_room import answer, ask
from tests.browser.test_screenshots import named_user, post, shots  # noqa: F401
from tests.llm.grounding_files import pdf_bytes

pytestmark = pytest.mark.e2e

CHECKLIST = pdf_bytes(
    [
        "Launch checklist for Friday",
        "1. Fuel the stage before noon.",
        "2. The rocket engine exhaust is hotter than three thousand kelvin:",
        "   keep the pad crew behind the blast wall.",
        "3. Announce the window in #launch.",
    ]
)
BROKEN = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> not really a pdf\n" * 6


def upload(web, user, message_id: str, name: str, data: bytes) -> dict:
    with web.api(user) as http:
        response = http.post(
            f"/api/chat/messages/{message_id}/attachments",
            files={"file": (name, data, "application/octet-stream")},
        )
    assert response.status_code == 201, response.text
    return response.json()


def test_indexing_status_and_citations_under_the_answer(web, people, ollama, shots):  # noqa: F811
    alice, bob = named_user(web, "alice"), named_user(web, "bob")
    room = post(web, alice, "/api/chat/sessions", {"title": "launch", "memberIds": [bob["id"]]})[
        "id"
    ]
    a, b = people(alice), people(bob)
    a.open_room(room)
    b.open_room(room)
    ollama.configure(embed_delay_ms=1500, reply="About 3,000 K: keep behind the blast wall.")
    message = post(
        web, alice, "/api/chat/messages", {"sessionId": room, "content": "The launch checklist"}
    )
    upload(web, alice, message["id"], "launch-checklist.pdf", CHECKLIST)

    status = b.message("The launch checklist").locator(".index-status")
    expect(status).to_have_text("Indexing…")
    expect(status).to_have_text("Indexed", timeout=20_000)
    expect(a.message("The launch checklist").locator(".index-status")).to_have_text("Indexed")

    ollama.configure(embed_delay_ms=0)
    broken = post(web, alice, "/api/chat/messages", {"sessionId": room, "content": "Old notes"})
    upload(web, alice, broken["id"], "old-notes.pdf", BROKEN)
    failed = b.message("Old notes").locator(".index-failed")
    expect(failed).to_contain_text("Couldn't index: The PDF could not be read", timeout=20_000)

    ask(a, "How hot is the rocket engine exhaust?")

    for person in (a, b):
        cited = answer(person).locator(".msg-citations .citation")
        expect(cited).to_have_count(1, timeout=20_000)
        expect(cited).to_contain_text("launch-checklist.pdf")
        expect(cited).to_have_attribute(
            "href", re.compile(r"^/api/chat/attachments/[0-9a-f-]+/download$")
        )
    expect(answer(b)).to_contain_text("blast wall")
    # The link downloads the file the answer cites.
    with a.page.expect_download() as download:
        answer(a).locator(".citation").click()
    assert download.value.suggested_filename == "launch-checklist.pdf"

    a.page.evaluate("document.querySelector('#timeline').scrollTop = 1e9")
    a.page.evaluate("document.activeElement && document.activeElement.blur()")
    a.page.mouse.move(640, 790)  # away from the messages: no hover toolbar in the picture
    a.page.screenshot(path=shots / "grounded-answer.png")
