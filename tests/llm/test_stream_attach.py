"""``GET /api/chat/streams/:streamId/events``: attaching to a room stream from anywhere, live
or after its end, with and without ``Last-Event-ID``; members only; and how the follower
repairs what the channel layer drops."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from channels.db import database_sync_to_async

from chat.events import FRAME_MESSAGE_TYPE
from chat.models import Membership
from chat.services.assistant import assistant_message_create
from chat.services.messages import message_send
from chat.services.sessions import member_remove, session_create
from llm import event_types, sse_events
from llm.models import Stream
from llm.services import stream_follow
from llm.services.stream_follow import StreamFollower
from llm.services.streams import stream_request, stream_stop
from llm.stream_state import get_stream_state

from .sse import asgi_client, bearer, parse_sse
from .streams import WITHIN_S, streams_finished, streams_stopped

pytestmark = [pytest.mark.django_db(transaction=True)]

SLOW = {"num_tokens": 300, "delay_ms": 15}


@pytest.fixture
async def room(alice, bob):
    return await database_sync_to_async(
        lambda: session_create(creator=alice, title="general", member_ids=[bob.pk])
    )()


@pytest.fixture(autouse=True)
async def no_stream_left_running():
    yield
    await streams_stopped()


@pytest.fixture(autouse=True)
def one_token_per_chunk(settings):
    settings.STREAM_DELAY = 0


async def attach(user, stream_id, last_event_id=None) -> tuple[int, list[dict]]:
    headers = bearer(user) if user is not None else {}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with asgi_client() as http:
        response = await asyncio.wait_for(
            http.get(f"/api/chat/streams/{stream_id}/events", headers=headers), WITHIN_S
        )
    if not response.headers["content-type"].startswith("text/event-stream"):
        return response.status_code, [response.json()]
    return response.status_code, parse_sse(response.content)


def text_of(events) -> str:
    return "".join(e["data"]["delta"] for e in events if e["event"] == "chunk")


def assert_well_numbered(events, first_after: int = -1) -> None:
    """Chunk ids increase, each is the index in its data, the final event carries the last."""
    *parts, final = events
    ids = [int(e["id"]) for e in parts]
    assert all(e["event"] == "chunk" for e in parts)
    assert ids == sorted(set(ids)) and all(i > first_after for i in ids)
    assert [e["data"]["index"] for e in parts] == ids
    if parts:
        assert int(final["id"]) == ids[-1]


async def started(room, user, prompt="go") -> dict:
    return await stream_request(user=user, session_id=room.pk, prompt=prompt)


@database_sync_to_async
def row(stream_id) -> Stream:
    return Stream.objects.select_related("message").get(pk=stream_id)


async def chunks_published(stream_id: str, at_least: int) -> None:
    async with asyncio.timeout(WITHIN_S):
        while True:
            snapshot = get_stream_state().stream_snapshot(stream_id)
            if snapshot and len(snapshot["deltas"]) >= at_least:
                return
            await asyncio.sleep(0.01)


# -- after the end ---------------------------------------------------------------------------


async def test_an_ended_stream_sends_its_text_and_complete_at_once(
    ollama_emulator_settings, room, alice, bob
):
    ollama_emulator_settings.configure(reply="one two three four five")
    ack = await started(room, alice)
    await streams_finished()
    saved = await row(ack["streamId"])

    status, events = await attach(bob, ack["streamId"])

    assert status == 200
    chunk, complete = events
    assert chunk["data"] == sse_events.chunk(
        stream_id=ack["streamId"],
        message_id=ack["messageId"],
        index=len(saved.chunk_ends) - 1,
        delta="one two three four five",
    )
    assert complete["event"] == "complete"
    assert complete["data"]["content"] == "one two three four five"
    assert complete["data"]["finishReason"] == "stop"
    assert complete["id"] == chunk["id"] == str(saved.chunks_sent - 1)


async def test_last_event_id_after_the_end_sends_exactly_the_rest(
    ollama_emulator_settings, room, alice
):
    ollama_emulator_settings.configure(reply="alpha beta gamma delta epsilon")
    ack = await started(room, alice)
    await streams_finished()
    saved = await row(ack["streamId"])
    content = saved.message.content

    for seen in range(-1, len(saved.chunk_ends) + 1):
        _, events = await attach(alice, ack["streamId"], last_event_id=seen)
        start = saved.chunk_ends[seen] if 0 <= seen < len(saved.chunk_ends) else 0
        expected = content[start:] if seen < len(saved.chunk_ends) else ""
        assert text_of(events) == expected, seen
        assert events[-1]["event"] == "complete"


async def test_a_stopped_stream_ends_with_stopped(ollama_emulator_settings, room, alice, bob):
    ollama_emulator_settings.configure(**SLOW)
    ack = await started(room, alice)
    await chunks_published(ack["streamId"], 3)
    await stream_stop(user=bob, stream_id=ack["streamId"])
    await streams_finished()

    _, events = await attach(alice, ack["streamId"])

    final = events[-1]
    assert final["event"] == "stopped"
    assert final["data"]["stoppedBy"] == {"id": bob.pk, "username": "bob"}
    assert (
        text_of(events) == final["data"]["content"] == (await row(ack["streamId"])).message.content
    )


async def test_a_failed_stream_ends_with_error(ollama_emulator_settings, room, alice):
    ack = await stream_request(
        user=alice, session_id=room.pk, prompt="go", config={"model": "missing"}
    )
    await streams_finished()

    _, events = await attach(alice, ack["streamId"])

    assert events[-1]["event"] == "error"
    assert events[-1]["data"]["code"] == "INVALID_MODEL"


# -- live ------------------------------------------------------------------------------------


async def test_attaching_mid_stream_sends_the_text_so_far_then_each_chunk(
    ollama_emulator_settings, room, alice, bob
):
    ollama_emulator_settings.configure(num_tokens=60, delay_ms=15)
    ack = await started(room, alice)
    await chunks_published(ack["streamId"], 5)

    status, events = await attach(bob, ack["streamId"])

    assert status == 200
    assert_well_numbered(events)
    so_far, *live = [e for e in events if e["event"] == "chunk"]
    assert int(so_far["id"]) >= 4 and live
    assert [int(e["id"]) for e in live] == list(
        range(int(so_far["id"]) + 1, int(live[-1]["id"]) + 1)
    )
    final = events[-1]
    assert final["event"] == "complete"
    assert (
        text_of(events) == final["data"]["content"] == (await row(ack["streamId"])).message.content
    )


async def test_reconnecting_mid_stream_with_last_event_id_continues_after_it(
    ollama_emulator_settings, room, alice
):
    ollama_emulator_settings.configure(num_tokens=60, delay_ms=15)
    ack = await started(room, alice)
    await chunks_published(ack["streamId"], 6)

    _, events = await attach(alice, ack["streamId"], last_event_id=3)

    assert_well_numbered(events, first_after=3)
    saved = await row(ack["streamId"])
    assert text_of(events) == saved.message.content[saved.chunk_ends[3] :]


async def test_it_works_by_polling_alone_when_the_channel_layer_delivers_nothing(
    ollama_emulator_settings, room, alice, monkeypatch
):
    class Silent:
        async def new_channel(self):
            return "silent"

        async def group_add(self, group, channel):
            pass

        async def group_discard(self, group, channel):
            pass

        async def receive(self, channel):
            await asyncio.Event().wait()

    monkeypatch.setattr(stream_follow, "get_channel_layer", Silent)
    monkeypatch.setattr(stream_follow, "POLL_S", 0.05)
    ollama_emulator_settings.configure(num_tokens=40, delay_ms=10)
    ack = await started(room, alice)
    await chunks_published(ack["streamId"], 2)

    _, events = await attach(alice, ack["streamId"])

    assert_well_numbered(events)
    assert events[-1]["event"] == "complete"
    assert text_of(events) == events[-1]["data"]["content"]


# -- who may attach --------------------------------------------------------------------------


async def test_only_members_may_attach(ollama_emulator_settings, room, alice, carol):
    ack = await started(room, alice)
    await streams_finished()

    assert (await attach(None, ack["streamId"]))[0] == 401
    assert (await attach(carol, ack["streamId"]))[0] == 403
    status, (error,) = await attach(alice, uuid.uuid4())
    assert (status, error["code"]) == (404, "NOT_FOUND")


async def follow_until_removed(room, alice, bob, remove) -> tuple[list[dict], Stream]:
    """Bob follows a long answer; once he has a few chunks ``remove()`` takes him out of the
    room. His events, and the stream's row when they ended."""
    ack = await started(room, alice)
    await chunks_published(ack["streamId"], 3)
    following = asyncio.create_task(attach(bob, ack["streamId"]))
    await asyncio.sleep(0.3)
    await database_sync_to_async(remove)()
    _, events = await following
    return events, await row(ack["streamId"])


async def test_a_member_removed_while_following_gets_an_error_and_no_more(
    ollama_emulator_settings, room, alice, bob
):
    ollama_emulator_settings.configure(**SLOW)

    events, stream = await follow_until_removed(
        room, alice, bob, lambda: member_remove(user=alice, session_id=room.pk, user_id=bob.pk)
    )

    final = events[-1]
    assert (final["event"], final["data"]["code"]) == ("error", "FORBIDDEN")
    assert stream.status == "pending", "the answer goes on for the others"
    assert_well_numbered(events)


async def test_membership_is_read_again_in_case_the_removal_message_is_lost(
    ollama_emulator_settings, room, alice, bob, monkeypatch
):
    monkeypatch.setattr(stream_follow, "MEMBER_CHECK_S", 0.2)
    ollama_emulator_settings.configure(**SLOW)

    # Deleting the row tells nobody: as if the channel layer dropped ``session.removed``.
    events, stream = await follow_until_removed(
        room, alice, bob, lambda: Membership.objects.filter(session=room, user=bob).delete()
    )

    assert (events[-1]["event"], events[-1]["data"]["code"]) == ("error", "FORBIDDEN")
    assert stream.status == "pending"


# -- the follower on its own -------------------------------------------------------------


@database_sync_to_async
def pending_stream(room, user) -> Stream:
    prompt = message_send(author=user, session_id=room.pk, content="hi")
    answer = assistant_message_create(session_id=room.pk)
    return Stream.objects.create(
        session=room, message=answer, user_message=prompt, requested_by=user, model="llama3.2"
    )


def chunk_frame(stream: Stream, index: int, delta: str) -> dict:
    frame = {
        "event": event_types.STREAM_CHUNK,
        "data": event_types.stream_chunk(
            stream_id=stream.pk, session_id=stream.session_id, message_id=stream.message_id,
            index=index, delta=delta, tokens=index + 1, is_complete=False, content=None,
        ),
    }  # fmt: skip
    return {"type": FRAME_MESSAGE_TYPE, "text": orjson.dumps(frame).decode()}


async def publish(stream: Stream, *deltas: str) -> None:
    for delta in deltas:
        await get_stream_state().stream_publish(
            stream.session_id, str(stream.pk), meta={"streamId": str(stream.pk)}, delta=delta,
            ttl=60,
        )  # fmt: skip


async def test_a_dropped_chunk_is_taken_from_the_shared_state(room, alice):
    stream = await pending_stream(room, alice)
    await publish(stream, "a", "b", "c")
    follower = StreamFollower(stream, user=alice, last_index=0)

    events, ended = await follower.on_message(chunk_frame(stream, 2, "c"))
    late, _ = await follower.on_message(chunk_frame(stream, 1, "b"))

    (event,) = parse_sse(b"".join(events))
    assert not ended and late == []
    assert (event["id"], event["data"]["delta"]) == ("2", "bc")


async def test_a_stream_whose_worker_died_is_failed_and_ends_the_follow(room, alice, monkeypatch):
    monkeypatch.setattr(stream_follow, "POLL_S", 0.02)
    stream = await pending_stream(room, alice)
    await publish(stream, "a", "b")

    async with asyncio.timeout(WITHIN_S):
        events = [event async for event in StreamFollower(stream, user=alice).events()]

    chunk, error = parse_sse(b"".join(events))
    assert (chunk["id"], chunk["data"]["delta"]) == ("1", "ab")
    assert (error["id"], error["event"], error["data"]["code"]) == ("1", "error", "INTERNAL")
    saved = await row(stream.pk)
    assert (saved.status, saved.message.content) == ("failed", "ab")


async def test_the_follower_gives_its_channel_and_group_back(
    ollama_emulator_settings, room, alice, monkeypatch
):
    real = stream_follow.get_channel_layer()
    calls: list[tuple[str, str]] = []

    class Spy:
        async def new_channel(self):
            return await real.new_channel()

        async def group_add(self, group, channel):
            calls.append(("add", channel))
            await real.group_add(group, channel)

        async def group_discard(self, group, channel):
            calls.append(("discard", channel))
            await real.group_discard(group, channel)

        async def receive(self, channel):
            try:
                return await real.receive(channel)
            except asyncio.CancelledError:
                calls.append(("dropped", channel))
                raise

    monkeypatch.setattr(stream_follow, "get_channel_layer", Spy)
    ollama_emulator_settings.configure(num_tokens=20, delay_ms=10)
    ack = await started(room, alice)
    await chunks_published(ack["streamId"], 2)

    _, events = await attach(alice, ack["streamId"])

    assert events[-1]["event"] == "complete"
    kinds = [kind for kind, _ in calls]
    assert len({channel for _, channel in calls}) == 1
    assert kinds[0] == "add" and kinds[-2:] == ["discard", "dropped"]
