"""Versions of an answer in real Chromium: "Regenerate" in one window streams a new version
into the same bubble in the other too, the switcher ("2 / 2" between two arrows) browses
the versions (each with its model and who asked), and "Edit and resend" on a prompt edits
it and answers it again. With ``UPDATE_SCREENSHOTS=1`` the switcher is drawn into
``docs/screenshots/answer-versions.png``."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_room import answer, ask
from tests.browser.test_screenshots import named_user, shots  # noqa: F401

pytestmark = pytest.mark.e2e


def answered(person, prompt: str, reply: str, ollama) -> None:
    ollama.configure(reply=reply, delay_ms=5)
    ask(person, prompt)
    shown = reply.replace("**", "")  # as the markdown renders it
    expect(answer(person).locator(".msg-content")).to_have_text(shown, timeout=30_000)
    expect(answer(person).locator(".stream-bar")).to_have_count(0, timeout=30_000)


def regenerate(person) -> None:
    bubble = answer(person)
    bubble.hover()
    bubble.locator("[data-action=regenerate]").click()


def test_regenerate_streams_into_the_same_bubble_and_the_switcher_browses(pair, ollama):
    a, b, _ = pair
    answered(a, "which release?", "The first answer: v2.3.", ollama)
    expect(answer(b).locator(".msg-content")).to_have_text("The first answer: v2.3.")
    expect(answer(b).locator(".answer-versions")).to_have_count(0)

    ollama.configure(reply="The second answer, v2.4, regenerated.", delay_ms=60)
    regenerate(b)

    # Both windows watch the new version stream into the same bubble.
    for person in (a, b):
        expect(answer(person).locator(".stream-bar")).to_be_visible()
        expect(person.page.locator("#messages .msg.assistant")).to_have_count(1)
    for person in (a, b):
        expect(answer(person).locator(".msg-content")).to_have_text(
            "The second answer, v2.4, regenerated.", timeout=30_000
        )
        switcher = answer(person).locator(".answer-versions")
        expect(switcher.locator(".version-count")).to_have_text("2 / 2")
        expect(switcher).to_contain_text(f"asked by {b.name}")

    switcher = answer(a).locator(".answer-versions")
    switcher.locator("[data-action=version-prev]").click()
    expect(switcher.locator(".version-count")).to_have_text("1 / 2")
    expect(answer(a).locator(".msg-content")).to_have_text("The first answer: v2.3.")
    expect(switcher).to_contain_text(f"asked by {a.name}")
    expect(switcher.locator("[data-action=version-prev]")).to_be_disabled()
    # Browsing is one person's view: the other window still shows the newest version.
    expect(answer(b).locator(".msg-content")).to_have_text("The second answer, v2.4, regenerated.")
    switcher.locator("[data-action=version-next]").click()
    expect(answer(a).locator(".msg-content")).to_have_text("The second answer, v2.4, regenerated.")

    # A reload keeps the versions.
    b.page.reload()
    b.page.wait_for_selector("#room[data-joined=true]")
    expect(answer(b).locator(".version-count")).to_have_text("2 / 2")


def test_edit_and_resend_answers_the_edited_prompt(pair, ollama):
    a, b, _ = pair
    answered(a, "what is 2+2?", "Four.", ollama)
    prompt = a.message("what is 2+2?")
    expect(b.message("what is 2+2?").locator("[data-action=resend]")).to_have_count(0)
    ollama.configure(reply=None, delay_ms=5)

    prompt.hover()
    prompt.locator("[data-action=resend]").click()
    editor = a.page.locator("#messages .msg.editing .edit-input")
    expect(a.page.locator("#messages .msg.editing [data-action=edit-save]")).to_have_text("Resend")
    editor.fill("what is 3+3?")
    editor.press("Enter")

    for person in (a, b):
        expect(person.message("what is 3+3?").locator(".msg-edited")).to_be_visible()
        expect(answer(person).locator(".msg-content")).to_have_text(
            f"Echo: {a.name}: what is 3+3?", timeout=30_000
        )
        expect(answer(person).locator(".version-count")).to_have_text("2 / 2")


def test_screenshot_of_the_versions(web, people, ollama, shots):  # noqa: F811
    alice, bob = named_user(web, "alice"), named_user(web, "bob")
    room = web.room(alice, bob)
    a, b = people(alice), people(bob, worker=1)
    a.open_room(room)
    b.open_room(room)
    a.say("Can we ship v2.3 on Friday?")
    answered(
        a,
        "Summarise what is left before the v2.3 release.",
        "Two things are left: **tag the release** once CI is green, and update the changelog.",
        ollama,
    )
    ollama.configure(
        reply=(
            "Before v2.3 ships:\n\n"
            "1. Tag the release from `main` once CI is green.\n"
            "2. Update the changelog and bump the docs version.\n"
            "3. Announce it with a link to the notes."
        ),
        delay_ms=5,
    )
    regenerate(b)
    expect(answer(a).locator(".version-count")).to_have_text("2 / 2", timeout=30_000)
    answer(a).locator("[data-action=version-prev]").click()
    expect(answer(a).locator(".version-count")).to_have_text("1 / 2")
    answer(a).locator("[data-action=version-next]").click()
    expect(answer(a).locator(".version-count")).to_have_text("2 / 2")
    a.page.evaluate("document.activeElement.blur()")
    a.page.mouse.move(640, 790)
    a.page.screenshot(path=shots / "answer-versions.png")
