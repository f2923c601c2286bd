"""Pins in real Chromium: a message pinned from its menu in one window appears in the other
window's pins panel, live, and unpinning takes it away; a click on a pin scrolls the
timeline to its message. With ``UPDATE_SCREENSHOTS=1`` the panel is drawn into
``docs/screenshots/pins-panel.png`` (``tests/browser/test_screenshots.py``'s mechanism)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_screenshots import named_user, post, room_with_history, shots  # noqa: F401

pytestmark = pytest.mark.e2e


def open_pins(person):
    person.page.locator("#pins-toggle").click()
    expect(person.page.locator("#panel-title")).to_have_text("Pinned messages")
    return person.page.locator("#panel .pin-item")


def test_a_pin_in_one_window_appears_live_in_the_others_panel(pair):
    a, b, _ = pair
    a.say("the plan: ship on Friday")
    b.say("sounds good")
    expect(b.message("the plan")).to_be_visible()
    pins_b = open_pins(b)
    expect(b.page.locator("#panel .empty-note")).to_contain_text("No pinned messages")

    mine = a.message("the plan")
    mine.hover()
    mine.locator("[data-action=pin]").click()

    expect(pins_b).to_have_count(1)
    expect(pins_b.first).to_contain_text("the plan: ship on Friday")
    expect(pins_b.first).to_contain_text(f"Pinned by {a.name}")
    expect(b.page.locator("#pins-count")).to_have_text("1")
    expect(b.message("the plan")).to_have_class(re.compile(r"\bpinned\b"))
    expect(b.message("the plan").locator(".msg-pinned")).to_be_visible()

    mine.hover()
    mine.locator("[data-action=unpin]").click()

    expect(pins_b).to_have_count(0)
    expect(b.page.locator("#pins-count")).to_be_hidden()
    expect(b.message("the plan")).not_to_have_class(re.compile(r"\bpinned\b"))


def test_pins_load_with_the_room_and_a_click_scrolls_to_the_message(web, people):
    alice, bob = web.user("alice"), web.user("bob")
    room = web.room(alice, bob)
    first = post(web, alice, "/api/chat/messages", {"sessionId": room, "content": "pin me, old"})
    # All alice's (nothing unread to scroll to), tall enough to push the first out of view.
    for n in range(25):
        filler = {"sessionId": room, "content": f"filler {n}\n\nwith a second paragraph"}
        post(web, alice, "/api/chat/messages", filler)
    post(web, bob, f"/api/chat/messages/{first['id']}/pin", {})
    reader = people(alice)
    reader.open_room(room)
    expect(reader.page.locator("#pins-count")).to_have_text("1")
    old = reader.message("pin me, old")
    expect(old).not_to_be_in_viewport()

    pins = open_pins(reader)
    expect(pins).to_have_count(1)
    pins.first.locator(".pin-open").click()

    expect(old).to_be_in_viewport()
    expect(old).to_have_class(re.compile(r"\bflash\b"))


def test_deleting_a_pinned_message_takes_it_off_the_panel(pair):
    a, b, _ = pair
    a.say("a pinned mistake")
    mine = a.message("a pinned mistake")
    mine.hover()
    mine.locator("[data-action=pin]").click()
    pins_b = open_pins(b)
    expect(pins_b).to_have_count(1)

    mine.hover()
    mine.locator("[data-action=delete]").click()
    a.page.locator("#popover button", has_text="Delete").click()

    expect(pins_b).to_have_count(0)


def test_screenshot_of_the_pins_panel(web, people, shots):  # noqa: F811
    alice, bob, carol = (named_user(web, n) for n in ("alice", "bob", "carol"))
    room = room_with_history(web, alice, bob, carol, title="release-planning")
    with web.api(alice) as http:
        page = http.get(f"/api/chat/sessions/{room}/messages").json()["messages"]
    for who, start in ((alice, "Deploy with:"), (carol, "CI is green"), (bob, "Checklist")):
        message_id = next(m["id"] for m in page if m["content"].startswith(start))
        post(web, who, f"/api/chat/messages/{message_id}/pin", {})
    a = people(alice)
    a.open_room(room)
    pins = open_pins(a)
    expect(pins).to_have_count(3)
    a.page.mouse.move(640, 790)
    a.page.screenshot(path=shots / "pins-panel.png")
