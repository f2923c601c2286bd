"""Files in the room, in real Chromium: what can't be attached is refused when it is picked,
in words, and an upload that fails after its message went out stays on the message for its
sender, across a reload, with Remove and Attach again."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_room import PNG

pytestmark = pytest.mark.e2e

LIMIT = 10 * 1024 * 1024  # ATTACHMENT_MAX_BYTES's default, which the test platform keeps


def pick(person, *files):
    person.page.locator("#composer input[type=file]").set_input_files(list(files))


def composer_error(person):
    return person.page.locator("#composer .composer-error")


def test_a_file_over_the_limit_is_refused_when_picked_in_words(pair):
    a, _, _ = pair

    pick(a, {"name": "video.mov", "mimeType": "video/quicktime", "buffer": b"\0" * (LIMIT + 1)})

    expect(composer_error(a)).to_contain_text("“video.mov” is over the 10 MB limit.")
    expect(a.page.locator("#composer .chip")).to_have_count(0)
    assert not re.search(r"\d{6,}", composer_error(a).inner_text())  # no raw byte counts


def test_a_program_named_as_an_image_is_refused_when_picked(pair):
    a, b, _ = pair
    program = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\0" * 512
    image = {"name": "red.png", "mimeType": "image/png", "buffer": PNG}

    pick(a, {"name": "holiday.png", "mimeType": "image/png", "buffer": program}, image)

    expect(composer_error(a)).to_contain_text("“holiday.png” can't be attached")
    expect(composer_error(a)).to_contain_text("not from its name")
    chips = a.page.locator("#composer .chip")
    expect(chips).to_have_count(1)
    expect(chips).to_contain_text("red.png")
    a.say("only the real picture")
    expect(b.message("only the real picture").locator(".attachment-image img")).to_have_attribute(
        "alt", "red.png"
    )


def test_a_failed_upload_stays_on_the_message_across_a_reload(pair, tmp_path):
    a, b, _ = pair
    # Text for as far as the browser looks, then a byte no text has: the server reads the
    # whole file and refuses it after the message went out.
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"release notes\n" * 8000 + b"\x00\xff")
    image = tmp_path / "red.png"
    image.write_bytes(PNG)

    pick(a, str(notes))
    expect(a.page.locator("#composer .chip")).to_contain_text("notes.txt")
    a.say("the notes, attached")
    failure = a.message("the notes, attached").locator(".upload-error")
    expect(failure).to_contain_text("notes.txt")
    expect(failure).to_contain_text("wasn't attached: this type of file can't be attached")
    expect(b.message("the notes, attached")).to_be_visible()
    expect(b.message("the notes, attached").locator(".upload-error")).to_have_count(0)

    a.page.reload()
    a.page.wait_for_selector("#room[data-joined=true]")
    failure = a.message("the notes, attached").locator(".upload-error")
    expect(failure).to_contain_text("notes.txt")

    with a.page.expect_file_chooser() as chooser:
        failure.get_by_role("button", name="Attach again…").click()
    chooser.value.set_files(str(image))

    expect(a.message("the notes, attached").locator(".upload-error")).to_have_count(0)
    img = b.message("the notes, attached").locator(".attachment-image img")
    expect(img).to_have_attribute("alt", "red.png")
    a.page.reload()
    a.page.wait_for_selector("#room[data-joined=true]")
    expect(a.message("the notes, attached").locator(".upload-error")).to_have_count(0)


def test_remove_takes_a_failed_upload_off_for_good(pair, tmp_path):
    a, _, _ = pair
    notes = tmp_path / "broken.txt"
    notes.write_bytes(b"x" * 70_000 + b"\x00")

    pick(a, str(notes))
    expect(a.page.locator("#composer .chip")).to_contain_text("broken.txt")
    a.page.locator("#composer .composer-input").press("Enter")  # the file alone, no text
    failure = a.page.locator("#messages .msg .upload-error", has_text="broken.txt")
    expect(failure).to_be_visible()
    # The message's text is the file's name: the failure says it once.
    expect(a.page.locator("#messages .msg-content", has_text="broken.txt")).to_have_count(0)

    failure.get_by_role("button", name="Remove").click()
    expect(failure).to_have_count(0)
    a.page.reload()
    a.page.wait_for_selector("#room[data-joined=true]")
    expect(a.page.locator("#messages .upload-error")).to_have_count(0)
    expect(a.page.locator("#messages .msg-content", has_text="broken.txt")).to_have_count(1)
