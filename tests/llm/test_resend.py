"""Edit and resend (``message:resend`` and ``POST /api/chat/messages/:id/resend``) against
the Ollama emulator: the prompt is edited with its history kept, its answer gets a new version
made from the edited text, and what can't be resent is refused before anything changes."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat.models import Message, MessageEdit
from chat.services.messages import message_send

from ..chat.conftest import request
from .sse import asgi_client, bearer
from .streams import frames_until_end, streams_finished, streams_stopped
from .versions import (
    answered,
    joined,
    last_request_messages,
    make_room,
    saved,
    send,
    versions_of,
)

pytestmark = [pytest.mark.django_db(transaction=True)]

SLOW = {"num_tokens": 400, "delay_ms": 20}


@pytest.fixture
async def room(alice, bob):
    return await make_room(alice, bob)


@pytest.fixture(autouse=True)
async def no_stream_left_running():
    yield
    await streams_stopped()


@database_sync_to_async
def edits_of(message_id) -> list[tuple[str, int]]:
    return list(
        MessageEdit.objects.filter(message_id=message_id).values_list(
            "previous_content", "editor_id"
        )
    )


async def test_resend_edits_the_prompt_and_answers_the_edited_text(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)
    first = await answered(a, room, "what is 2+2?")
    await frames_until_end(b, first["streamId"])

    reply = await send(
        a, "message:resend", {"messageId": first["userMessageId"], "content": "what is 3+3?"}
    )

    assert reply["event"] == "ack", reply
    ack = reply["data"]
    assert set(ack) == {"messageId", "answerMessageId", "streamId", "version"}
    assert (ack["messageId"], ack["answerMessageId"], ack["version"]) == (
        first["userMessageId"], first["messageId"], 2,
    )  # fmt: skip
    frames = await frames_until_end(b, ack["streamId"])
    await streams_finished()
    # The room saw the prompt edited (durable), then the new version streamed into the answer.
    edited = [
        f["data"]["message"]
        for f in frames
        if f["event"] == "message:edited" and f["data"]["message"]["id"] == first["userMessageId"]
    ]
    assert edited and edited[0]["content"] == "what is 3+3?" and edited[0]["isEdited"] is True
    events = [f["event"] for f in frames]
    assert events.index("message:edited") < events.index("stream:start")
    # The model got the edited text, and nothing of the first answer.
    sent = last_request_messages(ollama_emulator_settings)
    assert [m["content"] for m in sent[1:]] == ["alice: what is 3+3?"]
    answer = await saved(first["messageId"])
    assert answer.content == "Echo: alice: what is 3+3?"
    assert answer.metadata["version"] == 2
    prompt = await saved(first["userMessageId"])
    assert (prompt.content, prompt.is_edited) == ("what is 3+3?", True)
    assert await edits_of(first["userMessageId"]) == [("what is 2+2?", alice.pk)]
    rows = await versions_of(first["messageId"])
    assert [(r.version, r.content) for r in rows] == [
        (1, "Echo: alice: what is 2+2?"),
        (2, "Echo: alice: what is 3+3?"),
    ]


async def test_only_the_author_may_resend_and_only_a_prompt_with_an_answer(
    ws_connect, ollama_emulator_settings, room, alice, bob, carol
):
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)
    first = await answered(a, room, "mine")
    plain = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="no answer"
    )

    not_author = await send(
        b, "message:resend", {"messageId": first["userMessageId"], "content": "bob's"}
    )
    no_answer = await send(a, "message:resend", {"messageId": str(plain.pk), "content": "again"})
    outsider = await request(
        await ws_connect(carol),
        "message:resend",
        {"messageId": first["userMessageId"], "content": "x"},
    )

    assert not_author["data"]["code"] == "FORBIDDEN", not_author
    assert no_answer["data"]["code"] == "VALIDATION_ERROR", no_answer
    assert outsider["data"]["code"] == "FORBIDDEN", outsider
    assert (await saved(first["userMessageId"])).content == "mine"
    assert (await saved(plain.pk)).content == "no answer"
    assert len(await versions_of(first["messageId"])) == 1


async def test_a_resend_while_the_answer_streams_changes_nothing(
    ws_connect, ollama_emulator_settings, room, alice
):
    a = await joined(ws_connect, alice, room)
    ollama_emulator_settings.configure(**SLOW)
    asked = await send(a, "stream:request", {"sessionId": str(room.pk), "prompt": "original"})

    refused = await send(
        a,
        "message:resend",
        {"messageId": asked["data"]["userMessageId"], "content": "changed"},
        ref="resend",
    )

    assert refused["data"]["code"] == "STREAM_LIMIT", refused
    prompt = await saved(asked["data"]["userMessageId"])
    assert (prompt.content, prompt.is_edited) == ("original", False)
    assert await edits_of(prompt.pk) == []
    assert len(await versions_of(asked["data"]["messageId"])) == 1


async def test_rest_resend(ws_connect, ollama_emulator_settings, room, alice, bob):
    a = await joined(ws_connect, alice, room)
    first = await answered(a, room, "before")

    async with asgi_client() as http:
        response = await http.post(
            f"/api/chat/messages/{first['userMessageId']}/resend/",
            json={"content": "after"},
            headers=bearer(alice),
        )
        assert response.status_code == 201, response.text
        ack = response.json()
        await frames_until_end(a, ack["streamId"])
        await streams_finished()
        refused = await http.post(
            f"/api/chat/messages/{first['userMessageId']}/resend",
            json={"content": "bob's"},
            headers=bearer(bob),
        )
        invalid = await http.post(
            f"/api/chat/messages/{first['userMessageId']}/resend",
            json={},
            headers=bearer(alice),
        )

    assert (ack["messageId"], ack["answerMessageId"], ack["version"]) == (
        first["userMessageId"], first["messageId"], 2,
    )  # fmt: skip
    assert (await saved(first["messageId"])).content == "Echo: alice: after"
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    assert invalid.status_code == 400 and invalid.json()["code"] == "VALIDATION_ERROR"
    assert await database_sync_to_async(Message.objects.filter(session=room).count)() == 2
