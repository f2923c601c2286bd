"""The room page in real Chromium: two people, each in a browser of their own, talking
through real server processes."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

# A 2x2 PNG, red.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


def test_two_people_chat_live(pair):
    a, b, _ = pair

    a.say("hello bob, **ready**?")
    expect(a.message("hello bob")).to_be_visible()  # shown at once, before the server answers
    expect(b.message("hello bob").locator("strong", has_text="ready")).to_be_visible()
    b.say("ready when you are")

    expect(a.message("ready when you are")).to_be_visible()
    expect(a.message("hello bob")).not_to_have_class(re.compile(r"\bpending\b"))
    texts = a.page.locator("#messages .msg .msg-content").all_inner_texts()
    assert texts == ["hello bob, ready?", "ready when you are"]


def test_shift_enter_makes_a_new_line_and_enter_sends(pair):
    a, b, _ = pair
    box = a.page.locator("#composer .composer-input")

    box.type("line one")
    box.press("Shift+Enter")
    box.type("line two")
    box.press("Enter")

    content = b.message("line one").locator(".msg-content")
    expect(content.locator("br")).to_have_count(1)
    expect(content).to_have_text("line oneline two")
    expect(box).to_have_value("")


def test_typing_shows_on_the_other_side_and_clears(pair):
    a, b, _ = pair
    box = a.page.locator("#composer .composer-input")

    box.type("I'm writing")
    expect(b.page.locator("#typing")).to_have_text(f"{a.name} is typing…")
    box.fill("")
    box.dispatch_event("input")

    expect(b.page.locator("#typing")).to_have_text("")


def test_typing_shows_on_the_other_side_and_clears_when_the_typist_sends(pair):
    a, b, _ = pair
    box = b.page.locator("#composer .composer-input")

    box.type("almost done")
    expect(a.page.locator("#typing")).to_have_text(f"{b.name} is typing…")
    expect(b.page.locator("#typing")).to_have_text("")  # nobody sees their own typing
    box.press("Enter")

    expect(a.message("almost done")).to_be_visible()
    expect(a.page.locator("#typing")).to_have_text("")
    a.page.wait_for_timeout(1500)  # the batched stop comes later: it must not bring it back
    expect(a.page.locator("#typing")).to_have_text("")


def test_a_reaction_and_an_edit_appear_on_the_other_side(pair):
    a, b, _ = pair
    a.say("the meeting is at 3")
    mine = a.message("the meeting is at 3")
    expect(b.message("the meeting is at 3")).to_be_visible()

    theirs = b.message("the meeting is at 3")
    theirs.hover()
    theirs.locator(".msg-actions [data-action=pick-emoji]").click()
    b.page.locator(".emoji-btn", has_text="🎉").click()
    reaction = mine.locator(".reaction", has_text="🎉")
    expect(reaction).to_contain_text("1")
    assert b.name in reaction.get_attribute("title")

    mine.hover()
    mine.locator("[data-action=edit]").click()
    editor = a.page.locator("#messages .msg.editing .edit-input")
    editor.fill("the meeting is at 4")
    editor.press("Enter")

    edited = b.message("the meeting is at 4")
    expect(edited.locator(".msg-edited")).to_have_text("(edited)")
    expect(edited.locator(".reaction", has_text="🎉")).to_have_class(re.compile(r"\bmine\b"))


def test_deleting_leaves_a_tombstone_on_both_sides(pair):
    a, b, _ = pair
    a.say("oops, wrong room")
    mine = a.message("oops, wrong room")
    expect(b.message("oops, wrong room")).to_be_visible()

    mine.hover()
    mine.locator("[data-action=delete]").click()
    a.page.locator(".popover .btn-danger").click()

    expect(b.page.locator("#messages .msg.deleted")).to_have_text(
        re.compile("This message was deleted.")
    )
    expect(b.page.get_by_text("oops, wrong room")).to_have_count(0)


def test_an_uploaded_image_previews_for_both(pair, tmp_path):
    a, b, _ = pair
    image = tmp_path / "red.png"
    image.write_bytes(PNG)

    a.page.locator("#composer input[type=file]").set_input_files(str(image))
    expect(a.page.locator("#composer .chip")).to_contain_text("red.png")
    a.say("a red square")

    img = b.message("a red square").locator(".attachment-image img")
    expect(img).to_have_attribute("alt", "red.png")
    b.page.wait_for_function(
        "(img) => img.complete && img.naturalWidth === 2", arg=img.element_handle()
    )
    download = b.message("a red square").locator("a.file-download")
    assert download.get_attribute("href").endswith("/download")
    expect(a.message("a red square").locator("progress")).to_have_count(0)


def test_a_message_with_markup_stays_text_and_runs_nothing(pair):
    a, b, _ = pair
    attacks = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script>",
        "[click me](javascript:alert(3))",
        "**<svg onload=alert(4)>**",
    ]
    for text in attacks:
        a.say(text)
    expect(b.page.locator("#messages .msg")).to_have_count(len(attacks))
    b.page.wait_for_timeout(500)

    contents = b.page.locator("#messages .msg-content")
    assert contents.all_inner_texts() == [
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script>",
        "[click me](javascript:alert(3))",
        "<svg onload=alert(4)>",
    ]
    for person in (a, b):
        assert (
            person.page.locator("#messages img, #messages script, #messages svg[onload]").count()
            == 0
        )
        assert person.page.locator("#messages a").count() == 0
        assert person.dialogs == []


def test_links_open_safely_and_only_for_http(pair):
    a, b, _ = pair
    a.say("docs at https://docs.djangoproject.com/en/5.2/ and [the notes](https://example.com/n)")

    links = b.message("docs at").locator(".msg-content a")
    expect(links).to_have_count(2)
    for i in range(2):
        assert links.nth(i).get_attribute("rel") == "noopener noreferrer nofollow"
        assert links.nth(i).get_attribute("href").startswith("https://")


def test_a_thread_reply_shows_in_the_thread_and_counts_on_the_parent(pair):
    a, b, _ = pair
    a.say("shall we ship?")
    theirs = b.message("shall we ship?")
    theirs.hover()
    theirs.locator(".msg-actions [data-action=thread]").click()
    reply_box = b.page.locator("#panel .composer-input")
    reply_box.fill("yes, after lunch")
    reply_box.press("Enter")

    expect(a.message("shall we ship?").locator(".msg-replies")).to_have_text("1 reply")
    expect(a.page.locator("#messages").get_by_text("yes, after lunch")).to_have_count(0)
    a.message("shall we ship?").locator(".msg-replies").click()
    expect(a.page.locator("#panel .msg", has_text="yes, after lunch")).to_be_visible()


def test_the_author_sees_who_has_seen_their_last_message(pair):
    a, b, _ = pair
    a.say("did you see this?")

    expect(a.message("did you see this?").locator(".msg-seen")).to_have_text(f"Seen by {b.name}")


def set_visible(person, visible: bool) -> None:
    """Make the page think its tab is shown or hidden, as switching tabs does."""
    state = "visible" if visible else "hidden"
    person.page.evaluate(
        f"""() => {{
          Object.defineProperty(document, "visibilityState", {{value: "{state}",
                                                               configurable: true}});
          document.dispatchEvent(new Event("visibilitychange"));
        }}"""
    )


def test_a_message_read_in_another_tab_shows_seen_by_live_after_delivered(web, pair):
    a, b, _ = pair
    set_visible(b, False)
    a.say("are you there?")
    expect(b.message("are you there?")).to_be_visible()
    message_id = b.message("are you there?").get_attribute("data-id")

    # Hidden, bob's page says the message reached it, not that bob read it.
    with web.api(a.user) as http:
        for _ in range(50):
            receipts = http.get(f"/api/chat/messages/{message_id}/receipts").json()
            if receipts["deliveredTo"]:
                break
            a.page.wait_for_timeout(100)
    assert [u["username"] for u in receipts["deliveredTo"]] == [b.name]
    assert receipts["seenBy"] == []
    expect(a.message("are you there?").locator(".msg-seen")).to_have_count(0)

    set_visible(b, True)

    expect(a.message("are you there?").locator(".msg-seen")).to_have_text(f"Seen by {b.name}")


def test_search_finds_a_message_and_jumps_to_it(pair):
    a, b, _ = pair
    a.say("the launch code is pineapple")
    a.say("unrelated chatter")
    expect(b.message("unrelated chatter")).to_be_visible()

    b.page.fill("#search-input", "pineapple")
    b.page.press("#search-input", "Enter")

    hit = b.page.locator("#panel .search-hit")
    expect(hit).to_have_count(1)
    expect(hit.locator("mark")).to_have_text("pineapple")
    hit.click()
    expect(b.message("pineapple")).to_have_class(re.compile(r"\bflash\b"))


def test_presence_dots_follow_people_coming_and_going(web, people):
    alice, bob = web.user("alice"), web.user("bob")
    room = web.room(alice, bob)
    a = people(alice)
    a.open_room(room)
    bob_dot = a.page.locator(f"#member-list .member[data-user-id='{bob['id']}']")
    expect(bob_dot).to_have_class(re.compile(r"\boffline\b"))

    b = people(bob)
    expect(bob_dot).to_have_class(re.compile(r"\bonline\b"))
    b.page.context.close()

    expect(bob_dot).to_have_class(re.compile(r"\boffline\b"), timeout=20_000)


def test_the_unread_line_marks_what_arrived_while_away(web, people):
    alice, bob = web.user("alice"), web.user("bob")
    room = web.room(alice, bob)
    with web.api(alice) as http:
        for text in ["one", "two"]:
            http.post("/api/chat/messages", json={"sessionId": room, "content": text})

    b = people(bob)
    expect(b.page.locator(".session-row .badge-unread")).to_have_text("2")
    b.open_room(room)

    separator = b.page.locator("#messages .unread-sep")
    expect(separator).to_have_text("New messages")
    following = b.page.locator("#messages .unread-sep + .msg")
    expect(following).to_contain_text("one")


def test_messages_written_offline_are_sent_after_reconnecting(pair):
    a, b, _ = pair
    a.page.context.set_offline(True)
    a.page.evaluate("window.chatClient.ws && window.chatClient.ws.close()")
    expect(a.page.locator("#conn-state")).not_to_have_attribute("data-state", "open")

    a.say("sent while offline")
    expect(a.message("sent while offline")).to_have_class(re.compile(r"\bpending\b"))
    a.page.context.set_offline(False)

    expect(b.message("sent while offline")).to_have_count(1, timeout=30_000)
    expect(a.message("sent while offline")).not_to_have_class(re.compile(r"\bpending\b"))


# --- the assistant --------------------------------------------------------------------------

ANSWER = (
    "Here is the plan for **v2.3**:\n\n"
    "1. Tag the release from `main` once CI is green.\n"
    "2. Update the changelog and bump the docs version.\n"
    "3. Announce it with a link to the notes.\n\n"
    "Anything else?"
)


def ask(person, prompt: str) -> None:
    page = person.page
    page.locator("#composer .mode-btn[data-mode=assistant]").click()
    box = page.locator("#composer .composer-input")
    expect(box).to_have_attribute("placeholder", re.compile("Ask the assistant"))
    box.fill(prompt)
    box.press("Enter")


def answer(person):
    return person.page.locator("#messages .msg.assistant").last


def streamed_text(person) -> str:
    return answer(person).locator(".msg-content").inner_text()


def test_the_answer_streams_into_every_window(pair, ollama):
    a, b, _ = pair
    ollama.configure(reply=ANSWER, delay_ms=60)

    ask(a, "What is the release plan?")

    expect(b.message("What is the release plan?")).to_be_visible()
    for person in (a, b):
        expect(answer(person).locator(".stream-bar")).to_be_visible()
    # Token by token: seen part-way on the other side before it is complete.
    b.page.wait_for_function(
        "() => { const el = document.querySelector('#messages .msg.assistant .msg-content');"
        " return el && el.textContent.length > 10 && !el.textContent.includes('Anything else'); }"
    )
    for person in (a, b):
        expect(answer(person).locator(".stream-bar")).to_have_count(0, timeout=30_000)
        expect(answer(person).locator(".msg-content li")).to_have_count(3)
        expect(answer(person).locator(".msg-content strong")).to_have_text("v2.3")
    assert streamed_text(a) == streamed_text(b)
    assert streamed_text(b).endswith("Anything else?")


def test_any_member_can_stop_an_answer(pair, ollama):
    a, b, _ = pair
    ollama.configure(num_tokens=400, delay_ms=40)

    ask(a, "Tell me a long story")
    stop = answer(b).locator(".btn-stop")
    expect(stop).to_be_visible()
    b.page.wait_for_function(
        "() => (document.querySelector('#messages .msg.assistant .msg-content')"
        "?.textContent.length || 0) > 20"
    )
    stop.click()

    for person in (a, b):
        expect(answer(person).locator(".msg-status")).to_have_text(f"Stopped by {b.name}.")
        expect(answer(person).locator(".btn-stop")).to_have_count(0)
    ollama.wait_for("disconnect", within=10)
    kept = streamed_text(a)
    assert kept and kept == streamed_text(b)
    assert len(kept.split()) < 400


def test_a_reload_mid_answer_continues_the_same_bubble(pair, ollama):
    a, b, _ = pair
    words = [f"w{n}" for n in range(150)]
    ollama.configure(reply=" ".join(words), delay_ms=40)

    ask(a, "Count for me")
    b.page.wait_for_function(
        "() => (document.querySelector('#messages .msg.assistant .msg-content')"
        "?.textContent.length || 0) > 40"
    )
    b.page.reload()
    b.page.wait_for_selector("#room[data-joined=true]")

    # Resumed from the join's snapshot: the text so far, then only later chunks.
    expect(answer(b).locator(".stream-bar")).to_be_visible()
    samples = []
    for _ in range(5):
        samples.append(streamed_text(b))
        b.page.wait_for_timeout(150)
    expected = " ".join(words)
    for sample in samples:
        assert expected.startswith(sample.strip()), sample
    expect(answer(b).locator(".stream-bar")).to_have_count(0, timeout=30_000)
    assert streamed_text(b) == expected == streamed_text(a)


def test_an_unavailable_assistant_is_explained_in_words(pair, ollama):
    a, b, _ = pair
    ollama.configure(failure="http_503", error="server busy, try later")

    ask(a, "Are you there?")

    for person in (a, b):
        error = person.page.locator("#messages .msg.assistant .msg-status-error")
        expect(error).to_contain_text("The assistant is unavailable:")


def test_the_ask_form_offers_each_of_the_servers_models_once_and_uses_the_one_chosen(pair, ollama):
    a, b, _ = pair
    # The default model (OLLAMA_MODEL, "llama3.2") is the server's "llama3.2:latest".
    ollama.configure(models=["llama3.2", "llama3.2:latest", "qwen2.5"], reply="Short answer.")
    a.page.locator("#composer .mode-btn[data-mode=assistant]").click()
    model = a.page.locator("#composer select[data-kind=model]")
    expect(model.locator("option")).to_have_count(2)
    assert model.locator("option").all_inner_texts() == [
        "Default model (llama3.2:latest)",
        "qwen2.5:latest",
    ]

    model.select_option("qwen2.5:latest")
    box = a.page.locator("#composer .composer-input")
    box.fill("Which model are you?")
    box.press("Enter")

    expect(answer(b).locator(".msg-content")).to_have_text("Short answer.")
    assert ollama.requests()[-1]["model"] == "qwen2.5:latest"
    expect(answer(b).locator(".msg-model")).to_have_text("qwen2.5:latest")


def test_an_agent_chosen_answers_under_its_own_name(web, pair, ollama):
    a, b, _ = pair
    name = f"Release helper {uuid.uuid4().hex[:4]}"
    code = (
        "from llm.models import Agent; "
        f"Agent.objects.create(name={name!r}, system_prompt='You plan releases.', tools=[])"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=web.env, check=True
    )
    ollama.configure(reply="Ship it on Tuesday.")
    a.page.reload()
    a.page.wait_for_selector("#room[data-joined=true]")
    a.page.locator("#composer .mode-btn[data-mode=assistant]").click()
    a.page.locator("#composer select[data-kind=agent]").select_option(label=name)
    box = a.page.locator("#composer .composer-input")
    box.fill("When do we ship?")
    box.press("Enter")

    expect(answer(b).locator(".msg-content")).to_have_text("Ship it on Tuesday.")
    expect(answer(b).locator(".msg-author")).to_have_text(name)
    system = ollama.requests()[-1]["messages"][0]
    assert system["role"] == "system" and "You plan releases." in system["content"]


def test_the_tools_the_assistant_used_show_compactly(pair, ollama):
    a, b, _ = pair
    ollama.configure(
        tool_calls=[{"name": "calculator", "arguments": {"expression": "17 * 23"}}],
        reply="That is **391**.",
    )

    ask(a, "What is 17 * 23?")

    for person in (a, b):
        tool = answer(person).locator(".tool-call")
        expect(tool).to_contain_text("calculator(17 * 23)")
        expect(tool).to_contain_text("391")
        expect(answer(person).locator(".msg-content")).to_have_text("That is 391.")


def test_reading_older_messages_is_not_interrupted_by_new_ones(web, people):
    alice, bob = web.user("alice"), web.user("bob")
    room = web.room(alice, bob)
    # Two authors: one user may send 30 messages a minute, REST and WebSocket together.
    for author, start in ((alice, 0), (bob, 20)):
        with web.api(author) as http:
            for n in range(start, start + 20):
                sent = http.post(
                    "/api/chat/messages", json={"sessionId": room, "content": f"history {n}"}
                )
                assert sent.status_code == 201, sent.text
    a, b = people(alice), people(bob)
    a.open_room(room)
    b.open_room(room)
    timeline = b.page.locator("#timeline")
    timeline.evaluate("(el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
    b.page.wait_for_timeout(200)

    a.say("a new message while bob reads")

    pill = b.page.locator("#new-pill")
    expect(pill).to_have_text("1 new message ↓")
    assert timeline.evaluate("(el) => el.scrollTop") < 50
    pill.click()
    b.page.wait_for_function(
        "() => { const t = document.querySelector('#timeline');"
        " return t.scrollHeight - t.scrollTop - t.clientHeight < 48; }"
    )
    expect(pill).to_be_hidden()
    a.say("and one more")
    expect(b.message("and one more")).to_be_in_viewport()
    expect(pill).to_be_hidden()


def test_an_answer_too_long_for_one_frame_shows_whole_in_every_window(pair, ollama):
    # About 300 KB of UTF-8: the last chunk, stream:complete and the saved message's
    # message:edited come without the whole text (contentOmitted); the windows keep the
    # text of the deltas and then load the message over REST. No socket closes.
    a, b, _ = pair
    words = [f"{'漢字ü😀' * 12}{n}" for n in range(2000)]
    ollama.configure(reply=" ".join(words))
    for person in (a, b):
        person.page.evaluate(
            "() => { window.closes = 0;"
            " window.chatClient.on('disconnected', () => { window.closes += 1; }); }"
        )

    ask(a, "Write at length")

    whole = " ".join(words)
    for person in (a, b):
        expect(answer(person).locator(".stream-bar")).to_have_count(0, timeout=60_000)
        # JavaScript counts UTF-16 code units.
        person.page.wait_for_function(
            "(n) => ([...document.querySelectorAll('#messages .msg.assistant .msg-content')]"
            ".at(-1)?.textContent.trim().length || 0) >= n",
            arg=len(whole.encode("utf-16-le")) // 2,
        )
    assert streamed_text(a).strip() == streamed_text(b).strip() == whole
    for person in (a, b):
        assert person.page.evaluate("window.closes") == 0
