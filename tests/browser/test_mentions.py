"""Mentions and notifications in Chromium: ``@`` completion in the composer, highlighted
mentions, and a mention reaching its reader live: the session list's "@N" badge counts up,
the tab title counts while the tab is hidden, and a browser ``Notification`` is shown.

The reader's browser context is granted the notifications permission. What the page
constructs as notifications is recorded by an init script of this test that wraps
``window.Notification`` (headless Chromium shows nothing on screen); the same script lets
the test say whether the tab is hidden (``document.hidden``), which headless Chromium
never is by itself.

With ``UPDATE_SCREENSHOTS=1`` the session list with its mention badge, the composer's
completion and a highlighted mention are written to ``docs/screenshots/mentions-*.png`` (as
``test_screenshots.py`` does); otherwise to a temporary folder.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_screenshots import named_user, post

pytestmark = pytest.mark.e2e

RECORD_NOTIFICATIONS = """
(() => {
  window.__notifications = [];
  window.__hidden = false;
  const Real = window.Notification;
  class Recorded extends Real {
    constructor(title, options = {}) {
      super(title, options);
      window.__notifications.push({ title, body: options.body || "", tag: options.tag || "" });
    }
  }
  window.Notification = Recorded;
  Object.defineProperty(document, "hidden", { configurable: true, get: () => window.__hidden });
  Object.defineProperty(document, "visibilityState", {
    configurable: true,
    get: () => (window.__hidden ? "hidden" : "visible"),
  });
})();
"""


def notifying(person) -> None:
    """Let ``person``'s page show notifications, recorded, and reload it with that."""
    context = person.page.context
    context.grant_permissions(["notifications"], origin=person.base)
    context.add_init_script(RECORD_NOTIFICATIONS)
    person.page.reload()


def set_hidden(page, hidden: bool) -> None:
    page.evaluate(
        "(hidden) => { window.__hidden = hidden;"
        " document.dispatchEvent(new Event('visibilitychange')); }",
        hidden,
    )


def notifications(page) -> list[dict]:
    return page.evaluate("window.__notifications")


def test_a_mention_reaches_the_session_list_live_with_a_badge_and_a_notification(
    web, people, shots
):
    alice, bob = named_user(web, "alice"), named_user(web, "bob")
    room = post(web, alice, "/api/chat/sessions", {"title": "launch", "memberIds": [bob["id"]]})
    other = post(web, alice, "/api/chat/sessions", {"title": "design", "memberIds": [bob["id"]]})
    post(web, alice, "/api/chat/messages", {"sessionId": other["id"], "content": "mockups up"})
    b = people(bob)
    notifying(b)
    row = b.page.locator(f'.session-row[data-session-id="{room["id"]}"]')
    expect(row.locator(".badge-mention")).to_be_hidden()
    b.page.wait_for_function("() => window.chatClient.state === 'open'")
    title = b.page.title()
    set_hidden(b.page, True)

    text = f"@{bob['username']} can you check the **launch** notes?"
    post(web, alice, "/api/chat/messages", {"sessionId": room["id"], "content": text})

    expect(row.locator(".badge-mention")).to_have_text("@1")
    expect(row.locator(".badge-unread")).to_have_text("1")
    b.page.wait_for_function("() => window.__notifications.length === 1")
    (shown,) = notifications(b.page)
    assert shown["title"] == f"{alice['username']} mentioned you in #launch"
    assert shown["body"] == f"@{bob['username']} can you check the launch notes?"
    expect(row.locator(".session-preview")).to_contain_text(f"{alice['username']}: @")
    assert b.page.title() == f"(1) {title}"

    set_hidden(b.page, False)
    assert b.page.title() == title
    b.page.mouse.move(900, 700)
    b.page.screenshot(path=shots / "mentions-badge.png")


def test_a_mention_typed_with_completion_notifies_the_reader_whose_room_is_hidden(
    web, people, shots
):
    alice, bob = web.user("alice"), web.user("bob")
    room = web.room(alice, bob)
    a, b = people(alice), people(bob)
    notifying(b)
    a.open_room(room)
    b.open_room(room)
    set_hidden(b.page, True)

    box = a.page.locator("#composer .composer-input")
    box.type(f"thanks @{bob['username'][:3]}")
    choices = a.page.locator(".mention-complete .mention-choice-name")
    expect(choices).to_have_text([bob["username"]])
    a.page.screenshot(path=shots / "mentions-complete.png")
    box.press("Enter")  # picks the name, does not send
    expect(box).to_have_value(f"thanks @{bob['username']} ")
    box.type("for the review")
    box.press("Escape")
    box.press("Enter")

    mine = b.message("for the review").locator(".mention-me")
    expect(mine).to_have_text(f"@{bob['username']}")
    expect(a.message("for the review").locator(".mention")).to_have_text(f"@{bob['username']}")
    b.page.wait_for_function("() => window.__notifications.length === 1")
    assert notifications(b.page)[0]["title"] == f"{alice['username']} mentioned you in #e2e"
    assert b.page.title().startswith("(1) ")
    set_hidden(b.page, False)
    b.page.screenshot(path=shots / "mentions-room.png")


def test_the_room_notify_control_turns_notifications_off(web, people):
    alice, bob = web.user("alice"), web.user("bob")
    room = web.room(alice, bob)
    b = people(bob)
    notifying(b)
    b.open_room(room)
    select = b.page.locator("#notify-select")
    expect(select).to_have_value("mentions")

    select.select_option("none")
    with web.api(bob) as http:
        b.page.wait_for_function(
            f"""async () => (await (await fetch('/api/chat/sessions/{room}/notifications'))
                .json()).notify === 'none'"""
        )
        assert http.get(f"/api/chat/sessions/{room}/notifications").json()["notify"] == "none"
    set_hidden(b.page, True)
    post(web, alice, "/api/chat/messages", {"sessionId": room, "content": f"@{bob['username']} hi"})

    expect(b.message(" hi")).to_be_visible()
    b.page.wait_for_timeout(500)
    assert notifications(b.page) == []


def test_the_mentions_page_links_to_the_message_in_its_room(web, people):
    alice, bob = web.user("alice"), web.user("bob")
    room = web.room(alice, bob)
    # The mention, then more than the room's first page (50) after it: 30 by alice, 25 by
    # bob (each within the send limit of 30 a minute).
    texts = [(alice, f"@{bob['username']} the old one")]
    texts += [(alice, f"filler {i}") for i in range(29)]
    texts += [(bob, f"later {i}") for i in range(25)]
    for user, text in texts:
        with web.api(user) as http:
            response = http.post("/api/chat/messages", json={"sessionId": room, "content": text})
            assert response.status_code == 201, response.text
    b = people(bob)

    b.page.click("text=Mentions")
    link = b.page.locator(".mention-link")
    expect(link).to_have_count(1)
    expect(link).to_contain_text("the old one")
    link.click()

    b.page.wait_for_selector("#room[data-joined=true]")
    message = b.message("the old one")
    expect(message).to_have_class(re.compile(r"\bflash\b"))
    expect(message.locator(".mention-me")).to_have_text(f"@{bob['username']}")
