"""Bots in the web app: a webhook's post appears live in an open room under the name it was
posted with and a "bot" badge; a person's message has no badge. With
``UPDATE_SCREENSHOTS=1`` the picture goes to ``docs/screenshots/`` (else a temporary
folder)."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_a_webhook_post_shows_the_bot_badge(web, pair, shots):
    a, b, room = pair
    with web.api(a.user) as http:
        hook = http.post(f"/api/chat/sessions/{room}/webhooks", json={"name": "CI"}).json()
    a.say("Is the build green?")
    expect(a.message("Is the build green?")).to_be_visible()
    posted = httpx.post(
        hook["url"],
        json={"content": "Build #128 passed on `main` in 4 min 12 s.", "username": "CI builds"},
        timeout=10,
    )
    assert posted.status_code == 201, posted.text
    for person in (a, b):
        posted_message = person.message("Build #128 passed")
        expect(posted_message.locator(".msg-author")).to_have_text("CI builds")
        expect(posted_message.locator(".tag-bot")).to_have_text("bot")
    expect(a.message("Is the build green?").locator(".tag-bot")).to_have_count(0)
    # Also after a reload: history renders isBot and metadata.webhook the same way.
    b.open_room(room)
    expect(b.message("Build #128 passed").locator(".tag-bot")).to_be_visible()
    a.page.mouse.move(640, 790)
    a.page.screenshot(path=shots / "room-webhook-bot.png")
