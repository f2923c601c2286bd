"""``@assistant`` in Chromium: the composer completes the assistant after ``@`` (marked as
an agent, alongside members), the message is sent as a message, and the answer streams into
every window under it; an ``@assistant`` that can't start tells its sender alone. With
``UPDATE_SCREENSHOTS=1`` the completion and the answer are drawn into ``docs/screenshots/``."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_room import answer, streamed_text
from tests.browser.test_screenshots import post

pytestmark = pytest.mark.e2e

REPLY = "Sure: the release is on Friday, after the review."


def test_typing_at_ass_completes_the_assistant_and_its_answer_streams_in(pair, ollama, shots):
    a, b, _ = pair
    ollama.configure(reply=REPLY, delay_ms=40)

    box = a.page.locator("#composer .composer-input")
    box.type("@ass")
    choice = a.page.locator(".mention-complete li[data-kind=agent]")
    expect(choice.locator(".mention-choice-name")).to_have_text(["assistant"])
    expect(choice.locator(".mention-choice-tag")).to_have_text(["agent"])
    a.page.screenshot(path=shots / "at-assistant-complete.png")
    box.press("Enter")  # picks the completion, does not send
    expect(box).to_have_value("@assistant ")
    box.type("when is the release?")
    box.press("Enter")

    expect(b.message("@assistant when is the release?")).to_be_visible()
    expect(answer(b).locator(".stream-bar")).to_contain_text(f"Answering {a.name}…")
    expect(answer(b).locator(".msg-content")).to_have_text(REPLY)
    expect(answer(a).locator(".msg-content")).to_have_text(REPLY)
    assert streamed_text(b) == REPLY
    assert len(ollama.requests()) == 1
    a.page.screenshot(path=shots / "at-assistant-answered.png")


def test_an_at_assistant_that_can_t_start_is_told_to_its_sender_alone(web, pair, ollama):
    a, b, room = pair
    ollama.configure(num_tokens=3)
    # Spend the sender's stream:request budget (10 a minute) by asking over REST.
    for index in range(10):
        post(
            web, a.user, "/api/chat/messages", {"sessionId": room, "content": f"@assistant {index}"}
        )

    a.say("@assistant one too many")

    expect(a.page.locator(".toast", has_text="The assistant can't answer yet")).to_be_visible()
    expect(b.message("@assistant one too many")).to_be_visible()
    expect(b.page.locator(".toast", has_text="The assistant can't answer yet")).to_have_count(0)
