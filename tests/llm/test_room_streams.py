"""Answers streamed into a room over the /ws/chat/ gateway, against the Ollama emulator:
what every member sees, stopping, leaving, joining mid-stream, failures and the limit."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat.models import Message
from chat.services.sessions import session_create
from llm.models import Stream

from ..chat.conftest import request
from .streams import chunks_of, frames_until_end, streams_finished

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
async def room(alice, bob):
    return await database_sync_to_async(
        lambda: session_create(creator=alice, title="general", member_ids=[bob.pk])
    )()


@pytest.fixture(autouse=True)
async def no_stream_left_running():
    yield
    await streams_finished()


async def joined(ws_connect, user, room):
    ws = await ws_connect(user)
    reply = await request(ws, "session:join", {"sessionId": str(room.pk)}, ref="join")
    assert reply["event"] == "ack", reply
    return ws


@database_sync_to_async
def saved(message_id) -> Message:
    return Message.objects.get(pk=message_id)


@database_sync_to_async
def stream_row(stream_id) -> Stream:
    return Stream.objects.get(pk=stream_id)


async def test_two_listeners_see_the_same_answer_and_it_is_saved(
    ws_connect, ollama_emulator_settings, room, alice, bob
):
    ollama_emulator_settings.configure(reply="The answer is forty two, of course.", delay_ms=5)
    a, b = await joined(ws_connect, alice, room), await joined(ws_connect, bob, room)

    ack = await request(a, "stream:request", {"sessionId": str(room.pk), "prompt": "question?"})
    assert ack["event"] == "ack", ack
    stream_id = ack["data"]["streamId"]
    seen_by_a = await frames_until_end(a, stream_id)
    seen_by_b = await frames_until_end(b, stream_id)
    await streams_finished()

    message = await saved(ack["data"]["messageId"])
    for frames in (seen_by_a, seen_by_b):
        chunks = chunks_of(frames, stream_id)
        assert "".join(c["delta"] for c in chunks) == message.content
        assert [c["index"] for c in chunks] == list(range(len(chunks)))
        assert frames[-1]["event"] == "stream:complete"
    assert message.content == "The answer is forty two, of course."
    assert message.role == "assistant" and message.author_id is None
    assert message.metadata["status"] == "completed"
    assert message.metadata["streamId"] == stream_id
    row = await stream_row(stream_id)
    assert row.status == "completed" and row.tokens_generated == 7
