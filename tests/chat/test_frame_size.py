"""No frame over the cap (CONTRACT section 3, "Frame size"): events made to fit, attachment
``metadata`` bounded, the ``session:join`` replay and running answers filled by size, and a
frame that still would not fit never sent, its socket and the offline queue kept.

The cap is lowered here (``WS_SEND_MAX_BYTES``) so small rooms reach it; the end-to-end
tests (tests/e2e/test_frame_cap_e2e.py) use the real one on daphne.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from chat import event_types
from chat.events import group_for_session
from chat.extensions import active_stream_providers, register_active_streams
from chat.frame_size import fit_event_frame
from chat.join import session_join_snapshot
from chat.presence import presence_for_session
from chat.serializers import METADATA_MAX_BYTES, AttachmentUrlInput
from chat.services.attachments import attachment_add_url
from chat.services.messages import message_send
from chat.services.sessions import session_create
from chat.state import get_state
from chatproject.errors import DomainError

from .conftest import request

CAP = 16384


@pytest.fixture
def small_cap(settings):
    settings.WS_SEND_MAX_BYTES = CAP
    return CAP


def size(value) -> int:
    return len(orjson.dumps(value))


def message_frame(**message) -> dict:
    base = {"id": "m1", "role": "assistant", "content": "", "metadata": {}}
    return {"event": "message:edited", "data": {"message": {**base, **message}}, "seq": 7}


# --- single events --------------------------------------------------------------------------


def test_an_event_that_fits_is_left_as_it_is(small_cap):
    frame = message_frame(content="short")
    assert fit_event_frame(frame) is frame


def test_a_message_too_large_for_an_event_goes_without_its_text(small_cap):
    frame = message_frame(content="漢" * CAP, metadata={"status": "completed"})

    fitted = fit_event_frame(frame)["data"]["message"]

    assert "content" not in fitted and fitted["contentOmitted"] is True
    assert fitted["metadata"] == {"status": "completed"}
    assert size(fit_event_frame(frame)) <= CAP // 2


def test_a_message_with_huge_tool_results_keeps_only_its_metadata_in_a_few_words(small_cap):
    calls = [{"name": "search_messages", "args": {}, "result": "r" * CAP}]
    frame = message_frame(content="x", metadata={"status": "completed", "toolCalls": calls})

    fitted = fit_event_frame(frame)["data"]["message"]

    assert fitted["contentOmitted"] is True and fitted["metadataOmitted"] is True
    assert fitted["metadata"] == {"status": "completed"}


def test_an_event_that_cannot_be_made_to_fit_is_a_validation_error(small_cap):
    frame = {"event": "message:reaction:update", "data": {"reactions": ["x" * CAP]}, "seq": 1}

    with pytest.raises(DomainError) as refused:
        fit_event_frame(frame)

    assert refused.value.code == "VALIDATION_ERROR"


# --- attachment metadata ------------------------------------------------------------------


def link(metadata) -> dict:
    return {
        "fileName": "a.html",
        "fileUrl": "https://example.com/a",
        "mimeType": "text/html",
        "metadata": metadata,
    }


def nested(depth: int):
    value: dict = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("metadata", "valid"),
    [
        ({"title": "A page", "image": {"width": 1, "height": 2}}, True),
        ({f"key{n}": "v" * 1000 for n in range(300)}, False),
        ({"k": "v" * (METADATA_MAX_BYTES - 10)}, True),
        ({"k": "v" * METADATA_MAX_BYTES}, False),
        (nested(5), True),
        (nested(6), False),
        ({"list": [[[[[]]]]]}, False),
        ({"big": 2**70}, False),
    ],
    ids=["small", "300x1000", "just-under", "over", "depth-5", "depth-6", "lists", "bigint"],
)
def test_attachment_metadata_is_bounded_in_size_and_depth(metadata, valid):
    serializer = AttachmentUrlInput(data=link(metadata))

    assert serializer.is_valid() is valid, serializer.errors
    if not valid:
        assert set(serializer.errors) == {"metadata"}


@pytest.mark.django_db
def test_attachments_piled_on_one_message_past_an_event_are_refused_and_rolled_back(
    small_cap, alice
):
    room = session_create(creator=alice, title="r", member_ids=[])
    message = message_send(author=alice, session_id=room.pk, content="x")
    metadata = {"note": "n" * 4000}

    added = 0
    with pytest.raises(DomainError) as refused:
        for _ in range(10):
            attachment_add_url(
                user=alice,
                message_id=message.pk,
                file_name="a.html",
                file_url="https://example.com/a",
                mime_type="text/html",
                metadata=metadata,
            )
            added += 1

    assert refused.value.code == "VALIDATION_ERROR"
    assert 0 < added < 10
    assert message.attachments.count() == added


# --- gathering replies ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_join_replay_takes_what_fits_and_says_has_more(small_cap, alice, bob):
    room = session_create(creator=alice, title="r", member_ids=[bob.pk])
    for n in range(20):
        message_send(author=alice, session_id=room.pk, content=f"{n} " + "é" * 1500)

    seqs, pages, last_seq, has_more = [], [], 0, True
    while has_more:
        snapshot = session_join_snapshot(user=bob, session_id=room.pk, last_seq=last_seq)
        pages.append(size({"event": "ack", "ref": 1, "data": snapshot}))
        seqs += [frame["seq"] for frame in snapshot["missed"]]
        last_seq, has_more = seqs[-1], snapshot["hasMore"]

    assert seqs == list(range(1, 21))
    assert len(pages) > 2
    assert max(pages) <= CAP


@pytest.mark.django_db
def test_a_running_answers_text_too_large_for_the_join_reply_is_left_out(small_cap, alice):
    room = session_create(creator=alice, title="r", member_ids=[])
    message_send(author=alice, session_id=room.pk, content="before")

    def provider(session_id):
        short = {"streamId": "s1", "messageId": "m1", "content": "so far", "index": 0}
        long = {"streamId": "s2", "messageId": "m2", "content": "ü" * CAP, "index": 9}
        return [short, long] if session_id == room.pk else []

    register_active_streams(provider)
    try:
        snapshot = session_join_snapshot(user=alice, session_id=room.pk, last_seq=0)
    finally:
        active_stream_providers.remove(provider)

    short, long = snapshot["activeStreams"]
    assert short["content"] == "so far" and "contentOmitted" not in short
    assert "content" not in long and long["contentOmitted"] is True and long["index"] == 9
    assert [frame["seq"] for frame in snapshot["missed"]] == [1]
    assert size(snapshot) <= CAP


@pytest.mark.django_db
def test_a_room_too_large_for_the_join_reply_lists_the_members_that_fit(
    small_cap, alice, bob, django_user_model
):
    """Past what fits beside one event, the reply keeps the joining user and the members
    online first, says ``membersOmitted``, and still brings a missed event; REST lists all."""
    others = django_user_model.objects.bulk_create(
        django_user_model(username=f"member{n:03}") for n in range(80)
    )
    room = session_create(creator=alice, title="big", member_ids=[bob.pk, *(u.pk for u in others)])
    message_send(author=alice, session_id=room.pk, content="hello")
    async_to_sync(get_state().connection_open)(others[-1].pk, "conn-1")

    snapshot = session_join_snapshot(user=bob, session_id=room.pk, last_seq=0)

    assert size({"event": "ack", "ref": 1, "data": snapshot}) <= CAP
    assert snapshot["membersOmitted"] is True
    kept = [m["id"] for m in snapshot["members"]]
    assert 0 < len(kept) < 82
    assert kept[:2] == [bob.pk, others[-1].pk]
    assert [m["id"] for m in snapshot["session"]["members"]] == kept
    assert [p["user"]["id"] for p in snapshot["presence"]] == kept
    assert [frame["seq"] for frame in snapshot["missed"]] == [1]
    assert len(presence_for_session(session=room)) == 82


@pytest.mark.django_db
def test_a_room_that_fits_lists_every_member_without_saying_so(small_cap, alice, bob):
    room = session_create(creator=alice, title="r", member_ids=[bob.pk])
    snapshot = session_join_snapshot(user=bob, session_id=room.pk, last_seq=None)
    assert "membersOmitted" not in snapshot
    assert {m["id"] for m in snapshot["members"]} == {alice.pk, bob.pk}


# --- what can't be sent -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_frame_over_the_cap_is_not_sent_logged_once_and_the_socket_stays_open(
    small_cap, ws_connect, alice, bob, caplog
):
    room = await database_sync_to_async(session_create)(
        creator=alice, title="r", member_ids=[bob.pk]
    )
    a, b = await ws_connect(alice), await ws_connect(bob)
    for ws in (a, b):
        await request(ws, "session:join", {"sessionId": str(room.pk)})
    # As another process may broadcast (docs/websocket.md), past every check of ours.
    huge = orjson.dumps({"event": "custom", "data": {"x": "y" * CAP}}).decode()

    def over():
        return [r for r in caplog.records if "frame cap" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="chat"):
        await get_channel_layer().group_send(
            group_for_session(room.pk), {"type": "chat.frame", "text": huge}
        )
        # Through Redis the frame reaches the sockets a moment later: wait for both.
        for _ in range(100):
            if len(over()) >= 2:
                break
            await asyncio.sleep(0.05)
        replies = [await request(ws, "ping", ref="after") for ws in (a, b)]

    assert [reply["event"] for reply in replies] == ["ack", "ack"]
    assert len(over()) == 2, "one line for each socket that could not be sent the frame"


@pytest.mark.django_db(transaction=True)
async def test_an_oversized_queued_frame_is_dropped_and_the_rest_of_the_queue_delivered(
    small_cap, ws_connect, alice, caplog
):
    state = get_state()
    state.reset()
    small = [
        orjson.dumps({"event": event_types.MESSAGE_DELETED, "data": {"n": n}, "seq": n}).decode()
        for n in (1, 3)
    ]
    huge = orjson.dumps({"event": "message:edited", "data": {"x": "y" * CAP}}).decode()
    for text in (small[0], huge, small[1]):
        await state.queue_for_offline([alice.pk], text)

    with caplog.at_level(logging.WARNING, logger="chat"):
        ws = await ws_connect(alice)
        first, second = await ws.receive_from(timeout=5), await ws.receive_from(timeout=5)
        pong = await request(ws, "ping")

    assert [first, second] == small
    assert pong["event"] == "ack"
    assert len([r for r in caplog.records if "frame cap" in r.getMessage()]) == 1
    again = await ws_connect(alice)
    assert await again.receive_nothing(timeout=0.3), "the queue was cleared once delivered"
    state.reset()
