"""Scrolling back through a room in real Chromium: older messages load by seq until the
room's first message, then "Load older messages" gives way to the room's beginning.

History's ``total`` is the size of the whole timeline, not what is left before the cursor,
so the page must find the start from a short page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_loading_older_messages_stops_at_the_start_of_the_room(web, people):
    authors = [web.user("alice"), web.user("bob"), web.user("carol")]
    room = web.room(*authors)
    # 60 messages: the room opens on the newest 50. Three authors, as one user may send 30
    # messages a minute.
    for i, author in enumerate(authors):
        with web.api(author) as http:
            for n in range(i * 20, i * 20 + 20):
                sent = http.post(
                    "/api/chat/messages", json={"sessionId": room, "content": f"history {n}"}
                )
                assert sent.status_code == 201, sent.text
    reader = people(authors[0])
    reader.open_room(room)

    # Scrolled to the top, the timeline asks for older messages (the unread line may have
    # taken it there already).
    timeline = reader.page.locator("#timeline")
    timeline.evaluate("(el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")

    expect(reader.page.locator("#messages .msg")).to_have_count(60)
    expect(reader.page.locator("#load-older")).to_be_hidden()
    expect(reader.page.locator("#timeline-start")).to_be_visible()
