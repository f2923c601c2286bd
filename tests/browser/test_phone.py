"""The room on a phone-sized screen (390 px wide) in real Chromium: the sidebar is a drawer
that closes every way a person tries, and the header keeps the room's title and the
connection state."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 780}


@pytest.fixture
def phone(web, people):
    """alice's room, opened in a phone-sized page, in a session titled like a real one."""
    alice, bob = web.user("alice"), web.user("bob")
    with web.api(alice) as http:
        room = http.post(
            "/api/chat/sessions", json={"title": "release-planning", "memberIds": [bob["id"]]}
        ).json()["id"]
    person = people(alice)
    page = person.page.context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_viewport_size(PHONE)
    page.goto(f"{person.base}/rooms/{room}/")
    page.wait_for_selector("#room[data-joined=true]")
    yield page
    assert errors == []


def drawer_open(page) -> None:
    page.locator("#sidebar-toggle").click()
    expect(page.locator("#sidebar")).to_be_visible()
    expect(page.locator("#sidebar-toggle")).to_have_attribute("aria-expanded", "true")


def expect_closed(page) -> None:
    expect(page.locator("#sidebar")).to_be_hidden()
    expect(page.locator("#sidebar-toggle")).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#sidebar-toggle")).to_be_focused()


def test_the_drawer_closes_with_its_button_a_tap_outside_and_escape(phone):
    drawer_open(phone)
    expect(phone.locator("#sidebar-close")).to_be_focused()
    phone.locator("#sidebar-close").click()
    expect_closed(phone)

    drawer_open(phone)
    phone.mouse.click(PHONE["width"] - 20, PHONE["height"] // 2)  # beside the drawer
    expect_closed(phone)

    drawer_open(phone)
    phone.keyboard.press("Escape")
    expect_closed(phone)


def test_the_header_keeps_the_title_and_shows_the_connection(phone):
    title = phone.locator("#room-title")
    expect(title).to_contain_text("release-planning")
    fits = title.evaluate("(el) => el.scrollWidth <= el.clientWidth")
    assert fits, "the title is cut although the header has room for it"

    state = phone.locator("#conn-state")
    expect(state).to_be_visible()
    expect(state).to_have_attribute("data-state", "open")
    expect(state).to_have_attribute("title", "Live")
    dot = state.evaluate("(el) => el.getBoundingClientRect().width")
    assert 6 <= dot <= 24  # the dot alone; its label is for screen readers
    expect(phone.locator("#search-input")).to_be_visible()
