"""An answer's details survive a reload: who asked, the model, who stopped it and why it
failed read the same in a page that watched it live and in one loaded afterwards."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_room import answer, ask

pytestmark = pytest.mark.e2e


def details(person) -> dict:
    """What the last answer shows besides its text."""
    bubble = answer(person)
    return {
        "model": bubble.locator(".msg-header .msg-model").all_inner_texts(),
        "status": bubble.locator(".msg-statuses").inner_text().strip(),
    }


def test_a_reload_mid_answer_still_says_who_asked_and_which_model(pair, ollama):
    a, b, _ = pair
    ollama.configure(num_tokens=400, delay_ms=40)

    ask(a, "Tell me a long story")
    expect(answer(b).locator(".stream-bar")).to_contain_text(f"Answering {a.name}…")
    expect(answer(b).locator(".msg-model")).to_have_text("llama3.2")
    live = details(b)

    b.page.reload()
    b.page.wait_for_selector("#room[data-joined=true]")

    expect(answer(b).locator(".stream-bar")).to_be_visible()
    assert details(b) == live == {"model": ["llama3.2"], "status": f"Answering {a.name}…\nStop"}


def test_a_reload_after_a_stop_still_says_who_stopped_it(pair, ollama):
    a, b, _ = pair
    ollama.configure(num_tokens=400, delay_ms=40)

    ask(a, "Tell me a long story")
    answer(b).locator(".btn-stop").click()
    expect(answer(a).locator(".msg-status")).to_have_text(f"Stopped by {b.name}.")
    live = details(a)

    a.page.reload()
    a.page.wait_for_selector("#room[data-joined=true]")

    expect(answer(a).locator(".msg-status")).to_have_text(f"Stopped by {b.name}.")
    assert details(a) == live


def test_a_reload_after_a_failure_still_gives_its_reason(pair, ollama):
    a, b, _ = pair
    ollama.configure(failure="http_503", error="server busy, try later")

    ask(a, "Are you there?")
    error = answer(b).locator(".msg-status-error")
    expect(error).to_contain_text("The assistant is unavailable:")
    live = details(b)

    b.page.reload()
    b.page.wait_for_selector("#room[data-joined=true]")

    expect(error).to_have_text(live["status"])
    assert details(b) == live
    assert live["status"] == (
        "The assistant is unavailable: The language model is busy or unavailable; try again soon."
    )
