"""Streams whose worker died (SIGKILL: no ending saved, its slot left to expire) are ended as
failed wherever they are looked at: a status read, a ``session:join``, ``manage.py
sweep_streams``. The text so far is kept from the live record, the answer message ends as
any failed answer does, and the room gets ``stream:error``."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.management import CommandError, call_command

from chat.models import Message
from chat.services.assistant import assistant_message_create
from chat.services.messages import message_send
from llm import event_types
from llm.models import Stream
from llm.services.answer_versions import answer_version_start
from llm.services.stream_sweeper import ORPHAN_CODE, ORPHAN_MESSAGE
from llm.stream_state import get_stream_state
from tests.chat.conftest import frames_for

from .streams import request_seeing

pytestmark = pytest.mark.django_db(transaction=True)

DELTAS = ["Once ", "upon ", "a time"]


def left_running(room, user, *, deltas=DELTAS, slot: bool = False) -> Stream:
    """A stream as a worker leaves it when killed mid-answer: the row not ended, the live
    record with its text so far, and the slot held only if ``slot`` (else it expired)."""
    prompt = message_send(author=user, session_id=room.pk, content="tell me a story")
    answer = assistant_message_create(
        session_id=room.pk, metadata={"status": Stream.Status.STREAMING}
    )
    stream = Stream.objects.create(
        session=room, message=answer, user_message=prompt, requested_by=user, model="llama3.2"
    )
    answer.metadata["streamId"] = str(stream.pk)
    answer.save(update_fields=["metadata"])
    state = get_stream_state()
    for i, delta in enumerate(deltas):
        meta = {"streamId": str(stream.pk), "sessionId": str(room.pk),
                "messageId": str(answer.pk), "model": "llama3.2", "status": "streaming",
                "index": i, "tokens": i + 1, "chunks": i + 1, "bytes": (i + 1) * 150,
                "startedAt": stream.started_at.timestamp(),
                "firstTokenAt": stream.started_at.timestamp() + 0.2}  # fmt: skip
        async_to_sync(state.stream_publish)(room.pk, str(stream.pk), meta=meta, delta=delta,
                                            ttl=60)  # fmt: skip
    if slot:
        assert async_to_sync(state.stream_slot_acquire)(str(stream.pk), limit=10, ttl=60)
    return stream


def assert_failed_keeping_the_text(stream: Stream, text: str = "".join(DELTAS)) -> Stream:
    row = Stream.objects.select_related("message").get(pk=stream.pk)
    assert (row.status, row.error_code, row.finish_reason) == ("failed", ORPHAN_CODE, "error")
    assert row.completed_at is not None and row.first_token_at is not None
    assert (row.tokens_generated, row.chunks_sent) == (len(DELTAS), len(DELTAS))
    assert row.chunk_ends == [5, 10, 16] and row.bytes_sent == len(DELTAS) * 150
    message = row.message
    assert message.content == text and message.tokens == len(DELTAS)
    assert message.metadata == {
        "streamId": str(stream.pk),
        "status": "failed",
        "model": "llama3.2",
        "finishReason": "error",
        "toolCalls": [],
        "errorCode": ORPHAN_CODE,
        "errorMessage": ORPHAN_MESSAGE,
    }
    assert row.error_message == ORPHAN_MESSAGE
    return row


def stream_error_frame(stream: Stream) -> dict:
    return {
        "event": event_types.STREAM_ERROR,
        "data": event_types.stream_error(
            stream_id=stream.pk, session_id=stream.session_id, message_id=stream.message_id,
            code=ORPHAN_CODE, message=ORPHAN_MESSAGE,
        ),
    }  # fmt: skip


def test_a_status_read_fails_a_stream_whose_worker_died_and_keeps_its_text(
    client_for, room, alice, bob, listen
):
    stream = left_running(room, alice)
    drain = listen(room)

    status = client_for(bob).get(f"/api/chat/streams/{stream.pk}/status").json()

    assert (status["status"], status["progress"], status["tokensGenerated"]) == ("failed", 1.0, 3)
    assert status["completedAt"] is not None
    row = assert_failed_keeping_the_text(stream)
    frames = drain()
    edited = next(f for f in frames if f["event"] == "message:edited")
    assert edited["data"]["message"]["content"] == row.message.content
    assert edited["data"]["message"]["metadata"]["status"] == "failed"
    assert stream_error_frame(stream) in frames


def test_a_stream_whose_record_expired_too_ends_with_what_was_saved(client_for, room, alice):
    stream = left_running(room, alice, deltas=[])

    status = client_for(alice).get(f"/api/chat/streams/{stream.pk}/status").json()

    assert status["status"] == "failed"
    stream.message.refresh_from_db()
    assert stream.message.content == "" and stream.message.metadata["status"] == "failed"


def test_a_stream_whose_worker_holds_its_slot_is_left_running(client_for, room, alice, listen):
    stream = left_running(room, alice, slot=True)
    drain = listen(room)

    status = client_for(alice).get(f"/api/chat/streams/{stream.pk}/status").json()

    assert (status["status"], status["tokensGenerated"]) == ("streaming", 3)
    assert Stream.objects.get(pk=stream.pk).status == "pending"
    assert drain() == []


def test_a_sweep_after_the_worker_ended_the_stream_changes_nothing(client_for, room, alice):
    stream = left_running(room, alice)
    Stream.objects.filter(pk=stream.pk).update(status="completed", finish_reason="stop")

    status = client_for(alice).get(f"/api/chat/streams/{stream.pk}/status").json()

    assert status["status"] == "completed"
    assert Stream.objects.get(pk=stream.pk).error_code == ""


async def test_joining_the_session_fails_its_dead_streams_and_lists_only_live_ones(
    ws_connect, room, alice, bob
):
    dead = await database_sync_to_async(left_running)(room, alice)
    live = await database_sync_to_async(left_running)(room, alice, slot=True)
    ws = await ws_connect(bob)

    reply, before = await request_seeing(ws, "session:join", {"sessionId": str(room.pk)})

    assert [s["streamId"] for s in reply["data"]["activeStreams"]] == [str(live.pk)]
    await database_sync_to_async(assert_failed_keeping_the_text)(dead)
    frames = before + await frames_for(ws, 1.0)
    assert stream_error_frame(dead) in frames
    assert (await database_sync_to_async(Stream.objects.get)(pk=live.pk)).status == "pending"


@pytest.mark.skipif(not settings.REDIS_URL, reason="the command sweeps the shared state only")
def test_the_command_fails_every_dead_stream(room, alice, make_user):
    from chat.services.sessions import session_create

    other = session_create(creator=make_user(), title="elsewhere")
    dead = [left_running(room, alice), left_running(other, other.created_by)]
    live = left_running(room, alice, slot=True)

    call_command("sweep_streams")

    for stream in dead:
        assert_failed_keeping_the_text(stream)
    assert Stream.objects.get(pk=live.pk).status == "pending"


@pytest.mark.skipif(bool(settings.REDIS_URL), reason="the embedded default only")
def test_the_command_refuses_without_a_shared_state(room, alice):
    stream = left_running(room, alice)

    with pytest.raises(CommandError, match="REDIS_URL"):
        call_command("sweep_streams")

    assert Stream.objects.get(pk=stream.pk).status == "pending"


def test_a_regenerated_version_whose_worker_died_fails_and_the_shown_one_stays(
    client_for, room, alice, bob
):
    first = left_running(room, alice, deltas=[])
    Stream.objects.filter(pk=first.pk).update(status="completed", content="The first answer.")
    Message.objects.filter(pk=first.message_id).update(
        content="The first answer.",
        metadata={"streamId": str(first.pk), "status": "completed", "model": "llama3.2"},
    )
    second = Stream.objects.create(
        session=room, message_id=first.message_id, user_message_id=first.user_message_id,
        requested_by=bob, model="llama3.2", version=2,
    )  # fmt: skip
    answer = Message.objects.get(pk=first.message_id)
    answer.metadata = answer_version_start(message=answer, stream=second)
    answer.save(update_fields=["metadata"])

    status = client_for(bob).get(f"/api/chat/streams/{second.pk}/status").json()

    assert status["status"] == "failed"
    answer.refresh_from_db()
    assert answer.content == "The first answer."
    assert (answer.metadata["version"], answer.metadata["status"]) == (1, "completed")
    assert answer.metadata["streamId"] == str(first.pk)
    assert [v["status"] for v in answer.metadata["versions"]] == ["completed", "failed"]
    second.refresh_from_db()
    assert (second.status, second.content) == ("failed", "")
