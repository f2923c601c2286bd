"""How the room lays things out, measured in real Chromium: attachments keep their own size,
the editor shows every line, floating bars leave "Seen by" readable, search snippets keep
their lines, code is highlighted with a Copy button, emoji come from the shipped font."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_room import answer, ask
from tests.browser.test_screenshots import dashboard_png

pytestmark = pytest.mark.e2e

PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)


def box(locator) -> dict:
    return locator.bounding_box()


def overlaps(one: dict, other: dict) -> bool:
    return not (
        one["x"] + one["width"] <= other["x"]
        or other["x"] + other["width"] <= one["x"]
        or one["y"] + one["height"] <= other["y"]
        or other["y"] + other["height"] <= one["y"]
    )


def test_an_image_and_a_pdf_in_one_message_keep_their_own_heights(pair):
    a, b, _ = pair
    a.page.locator("#composer input[type=file]").set_input_files(
        [
            {"name": "chart.png", "mimeType": "image/png", "buffer": dashboard_png()},
            {"name": "report.pdf", "mimeType": "application/pdf", "buffer": PDF},
        ]
    )
    a.say("the chart and the report")

    message = b.message("the chart and the report")
    expect(message.locator(".attachment")).to_have_count(2)
    image = message.locator(".attachment-image")
    pdf = message.locator(".attachment", has_text="report.pdf")
    b.page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0",
        arg=image.locator("img").element_handle(),
    )
    # The card is as tall as its one line of name and size, not as the image beside it.
    assert box(pdf)["height"] < 70 < box(image)["height"]


def test_the_editor_shows_every_line_of_the_message(pair):
    a, _, _ = pair
    box_ = a.page.locator("#composer .composer-input")
    box_.fill("first line\nsecond line\nthird line")
    box_.press("Enter")
    mine = a.message("first line")
    expect(mine).not_to_have_class(re.compile(r"\bpending\b"))

    mine.hover()
    mine.locator("[data-action=edit]").click()
    editor = a.page.locator("#messages .msg.editing .edit-input")
    expect(editor).to_be_focused()

    sizes = editor.evaluate(
        "(el) => ({scroll: el.scrollHeight, client: el.clientHeight, top: el.scrollTop})"
    )
    assert sizes["top"] == 0 and sizes["scroll"] <= sizes["client"], sizes
    editor.press("Shift+Enter")
    editor.type("fourth line")
    sizes = editor.evaluate("(el) => ({scroll: el.scrollHeight, client: el.clientHeight})")
    assert sizes["scroll"] <= sizes["client"], sizes


def test_the_toolbar_and_the_emoji_picker_leave_seen_by_readable(pair):
    a, b, _ = pair
    a.say("did everyone read the plan?")
    seen = a.message("did everyone read the plan?").locator(".msg-seen")
    expect(seen).to_have_text(f"Seen by {b.name}")
    b.say("yes")
    expect(a.message("yes")).to_be_visible()
    a.say("great")  # my last message now: "Seen by" moves to it once bob reads it
    seen = a.message("great").locator(".msg-seen")
    expect(seen).to_have_text(f"Seen by {b.name}")
    b.say("ok")
    following = a.message("ok")
    expect(following).to_be_visible()
    a.page.evaluate("document.querySelector('#timeline').scrollTop = 1e9")

    following.hover()
    toolbar = following.locator(".msg-actions")
    expect(toolbar).to_be_visible()
    assert not overlaps(box(toolbar), box(seen))

    toolbar.locator("[data-action=pick-emoji]").click()
    picker = a.page.locator("#popover")
    expect(picker).to_be_visible()
    assert not overlaps(box(picker), box(seen))


def test_search_snippets_keep_their_lines_and_a_closed_search_leaves_no_query(pair):
    a, b, _ = pair
    a.say("Checklist:\n- tests green\n- changelog")
    expect(b.message("Checklist")).to_be_visible()

    b.page.fill("#search-input", "changelog")
    b.page.press("#search-input", "Enter")
    snippet = b.page.locator("#panel .search-snippet")
    expect(snippet).to_have_count(1)
    assert snippet.inner_text().split("\n") == ["Checklist:", "tests green", "changelog"]

    b.page.locator("#panel-close").click()
    expect(b.page.locator("#panel")).to_be_hidden()
    expect(b.page.locator("#search-input")).to_have_value("")


CODE_ANSWER = (
    "Run this:\n\n"
    "```python\n"
    "def ship(tag):\n"
    '    return "released " + tag  # done\n'
    "```\n\n"
    "| step | who |\n|---|---|\n| tag | bob |\n\n"
    "## Afterwards\n"
    "Announce it."
)


def test_code_in_an_answer_is_highlighted_with_a_copy_button(pair, ollama):
    a, b, _ = pair
    b.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    ollama.configure(reply=CODE_ANSWER)

    ask(a, "How do I ship?")

    content = answer(b).locator(".msg-content")
    expect(answer(b).locator(".stream-bar")).to_have_count(0, timeout=30_000)
    block = content.locator(".code-block")
    expect(block.locator(".code-lang")).to_have_text("python")
    expect(block.locator(".token.keyword").first).to_have_text("def")
    expect(block.locator(".token.string")).to_have_text('"released "')
    expect(block.locator(".token.comment")).to_have_text("# done")
    color = block.locator(".token.keyword").first.evaluate("(el) => getComputedStyle(el).color")
    plain = block.locator("code").evaluate("(el) => getComputedStyle(el).color")
    assert color != plain
    # Prism only tokenizes: it was told (data-manual) never to rewrite the page itself.
    assert b.page.evaluate("Prism.manual") is True
    expect(content.locator("table td")).to_have_count(2)
    expect(content.locator("h4")).to_have_text("Afterwards")

    block.locator(".code-copy").click()
    expect(block.locator(".code-copy")).to_have_text("Copied")
    copied = b.page.evaluate("navigator.clipboard.readText()")
    assert copied == 'def ship(tag):\n    return "released " + tag  # done'


def test_reactions_and_the_picker_draw_emoji_with_the_shipped_font(pair):
    a, b, _ = pair
    a.say("emoji check")
    theirs = b.message("emoji check")
    theirs.hover()
    theirs.locator(".msg-actions [data-action=pick-emoji]").click()
    b.page.locator(".emoji-btn", has_text="🎉").click()
    expect(a.message("emoji check").locator(".reaction", has_text="🎉")).to_be_visible()

    # The machine running this has no colour emoji font: the glyphs come from Twemoji.
    for person in (a, b):
        loaded = person.page.evaluate(
            """async () => {
                await document.fonts.ready;
                return [...document.fonts]
                  .filter((f) => f.family.replace(/"/g, '') === 'Twemoji')
                  .map((f) => f.status);
            }"""
        )
        assert "loaded" in loaded, loaded
