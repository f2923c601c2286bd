"""The room's "Export" menu in real Chromium: each choice downloads the session's history,
named after the room and the day, through the web app's session cookie."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.test_screenshots import named_user, room_with_history, shots  # noqa: F401

pytestmark = pytest.mark.e2e


def test_the_export_menu_downloads_markdown_and_json(web, people, shots):  # noqa: F811
    alice, bob, carol = (named_user(web, n) for n in ("alice", "bob", "carol"))
    room = room_with_history(web, alice, bob, carol, title="release-planning")
    person = people(alice)
    person.open_room(room)
    page = person.page

    menu = page.locator("#export-menu")
    menu.locator("summary").click()
    options = menu.get_by_role("menuitem")
    expect(options).to_have_count(2)
    page.screenshot(path=shots / "export-menu.png")

    with page.expect_download() as markdown_download:
        options.filter(has_text="Markdown").click()
    expect(menu).not_to_have_attribute("open", "")
    markdown = markdown_download.value
    assert markdown.suggested_filename.startswith("release-planning-")
    assert markdown.suggested_filename.endswith(".md")
    text = Path(markdown.path()).read_text(encoding="utf-8")
    assert text.startswith("# release-planning\n")
    assert "Who runs the release?" in text
    assert "> I can, after lunch." in text
    assert "/api/chat/attachments/" in text

    menu.locator("summary").click()
    with page.expect_download() as json_download:
        options.filter(has_text="JSON").click()
    assert json_download.value.suggested_filename.endswith(".json")
    data = json.loads(Path(json_download.value.path()).read_text(encoding="utf-8"))
    assert data["session"]["title"] == "release-planning"
    contents = [m["content"] for m in data["messages"]]
    thread = contents.index("Who runs the release?")
    assert contents[thread + 1 : thread + 3] == [
        "I can, after lunch.",
        "I'll review the notes meanwhile.",
    ]


def test_escape_closes_the_export_menu(web, people):
    alice = web.user("alice")
    room = web.room(alice)
    person = people(alice)
    person.open_room(room)
    menu = person.page.locator("#export-menu")

    menu.locator("summary").click()
    expect(menu.get_by_role("menuitem").first).to_be_visible()
    person.page.keyboard.press("Escape")
    expect(menu.get_by_role("menuitem").first).to_be_hidden()
    expect(menu.locator("summary")).to_be_focused()


def test_on_a_phone_the_drawer_offers_the_export(web, people, shots):  # noqa: F811
    alice = web.user("alice")
    room = web.room(alice)
    with web.api(alice) as http:
        http.post("/api/chat/messages", json={"sessionId": room, "content": "from a phone"})
    person = people(alice)
    page = person.page
    page.set_viewport_size({"width": 390, "height": 780})
    person.open_room(room)

    expect(page.locator("#export-menu")).to_be_hidden()
    page.locator("#sidebar-toggle").click()
    links = page.locator(".sidebar-export a")
    expect(links).to_have_count(2)
    expect(links.first).to_be_visible()
    page.screenshot(path=shots / "export-phone-drawer.png")
    with page.expect_download() as download:
        links.filter(has_text="Markdown").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert "from a phone" in text
