"""Edit history in real Chromium: "(edited)" on a message opens its versions, oldest first
and the current one last, in the other person's window too. With ``UPDATE_SCREENSHOTS=1``
the view is drawn into ``docs/screenshots/edit-history.png``."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_screenshots import named_user, post, room_with_history, shots  # noqa: F401

pytestmark = pytest.mark.e2e


def edit(person, old: str, new: str) -> None:
    message = person.message(old)
    message.hover()
    message.locator("[data-action=edit]").click()
    editor = person.page.locator("#messages .msg.editing .edit-input")
    editor.fill(new)
    editor.press("Enter")
    expect(person.message(new.replace("**", ""))).to_be_visible()


def test_edited_opens_the_versions(pair):
    a, b, _ = pair
    a.say("meet at 3")
    edit(a, "meet at 3", "meet at 4")
    edit(a, "meet at 4", "meet at **5**, room B")

    edited = b.message("meet at 5").locator(".msg-edited")
    expect(edited).to_have_text("(edited)")
    edited.click()

    expect(b.page.locator("#panel-title")).to_have_text("Edit history")
    versions = b.page.locator("#panel .version")
    expect(versions).to_have_count(3)
    assert versions.locator(".msg-content").all_inner_texts() == [
        "meet at 3",
        "meet at 4",
        "meet at 5, room B",
    ]
    expect(versions.nth(0)).to_contain_text("Original")
    expect(versions.nth(1)).to_contain_text("Edit 1")
    expect(versions.nth(1)).to_contain_text(f"by {a.name}")
    expect(versions.nth(2)).to_contain_text("Current")
    expect(versions.nth(2).locator("strong", has_text="5")).to_be_visible()


def test_a_grouped_message_keeps_its_edited_mark(pair):
    a, b, _ = pair
    a.say("first of two")
    a.say("second of two")
    edit(a, "second of two", "second of two, fixed")

    grouped = b.message("second of two, fixed")
    expect(grouped.locator(".msg-edited")).to_be_visible()
    expect(grouped.locator(".msg-author")).to_be_hidden()


def test_screenshot_of_the_edit_history(web, people, shots):  # noqa: F811
    alice, bob, carol = (named_user(web, n) for n in ("alice", "bob", "carol"))
    room = room_with_history(web, alice, bob, carol, title="release-planning")
    message = post(
        web, bob, "/api/chat/messages", {"sessionId": room, "content": "Release at 15:00"}
    )
    with web.api(bob) as http:
        for text in ("Release at 16:00 (CI was slow)", "Release at **16:30**, after the docs"):
            edited = http.put(f"/api/chat/messages/{message['id']}", json={"content": text})
            assert edited.is_success, edited.text
    a = people(alice)
    a.open_room(room)
    a.message("after the docs").locator(".msg-edited").click()
    expect(a.page.locator("#panel .version")).to_have_count(3)
    # No hover or focus toolbar over the messages in the picture.
    a.page.evaluate("document.activeElement.blur()")
    a.page.mouse.move(640, 790)
    a.page.screenshot(path=shots / "edit-history.png")
