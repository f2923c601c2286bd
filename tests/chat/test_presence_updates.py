"""``presence:changes`` through the gateway: changes gathered per worker and flushed every
``PRESENCE_BROADCAST_INTERVAL_MS``, announced only if they still differ at the flush."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from chat.presence_updates import presence_record
from chat.services.sessions import session_create

from .conftest import frames_for, next_event, request

pytestmark = [pytest.mark.django_db(transaction=True)]


def presence_frames(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["event"] == "presence:changes"]


@pytest.fixture
def room_of(alice):
    def make(*members):
        return database_sync_to_async(
            lambda: session_create(
                creator=alice, title="general", member_ids=[m.pk for m in members]
            )
        )()

    return make


async def test_a_reload_inside_the_interval_announces_nothing(
    ws_connect, room_of, alice, bob, settings
):
    settings.PRESENCE_BROADCAST_INTERVAL_MS = 400
    room = await room_of(bob)
    a = await ws_connect(alice)
    await request(a, "session:join", {"sessionId": str(room.pk)})
    b = await ws_connect(bob)
    await next_event(a, "presence:changes")

    await b.disconnect()
    await ws_connect(bob)

    assert presence_frames(await frames_for(a, 1.0)) == []


async def test_an_offline_after_the_interval_is_announced_once(
    ws_connect, room_of, alice, bob, settings
):
    settings.PRESENCE_BROADCAST_INTERVAL_MS = 200
    room = await room_of(bob)
    a = await ws_connect(alice)
    await request(a, "session:join", {"sessionId": str(room.pk)})
    b = await ws_connect(bob)
    await next_event(a, "presence:changes")

    await b.disconnect()

    frames = presence_frames(await frames_for(a, 1.0))
    assert [f["data"]["changes"] for f in frames] == [
        [
            {
                "user": {"id": bob.pk, "username": "bob"},
                "status": "offline",
                "lastSeenAt": frames[0]["data"]["changes"][0]["lastSeenAt"],
            }
        ]
    ]
    assert frames[0]["data"]["changes"][0]["lastSeenAt"]
    bob_now = await database_sync_to_async(get_user_model().objects.get)(pk=bob.pk)
    assert bob_now.last_seen_at is not None


@pytest.fixture
def others(make_user):
    return [make_user(f"member{i}") for i in range(4)]


@pytest.fixture
def dave(make_user):
    return make_user("dave")


async def test_users_changing_in_one_interval_share_one_frame(
    ws_connect, room_of, others, alice, settings
):
    settings.PRESENCE_BROADCAST_INTERVAL_MS = 300
    room = await room_of(*others)
    a = await ws_connect(alice)
    await request(a, "session:join", {"sessionId": str(room.pk)})

    for user in others:
        await ws_connect(user)

    frames = presence_frames(await frames_for(a, 1.0))
    assert len(frames) == 1
    changes = frames[0]["data"]["changes"]
    assert sorted(c["user"]["id"] for c in changes) == sorted(u.pk for u in others)
    assert {c["status"] for c in changes} == {"online"}


async def test_entries_no_longer_true_are_left_out_of_the_frame(
    ws_connect, room_of, dave, alice, bob
):
    """A frame about two users where one of them came back meanwhile: only the other is
    forwarded."""
    from accounts.serializers import render_user
    from chat import broadcaster, event_types
    from chat.events import group_for_session
    from chat.presence_updates import presence_message

    room = await room_of(bob, dave)
    a = await ws_connect(alice)
    await request(a, "session:join", {"sessionId": str(room.pk)})
    await ws_connect(bob)
    await frames_for(a, 1.5)

    changes = [
        event_types.presence_change(user=render_user(u), status="offline", last_seen_at=None)
        for u in (bob, dave)
    ]
    await broadcaster.send(group_for_session(room.pk), presence_message(changes))

    frame = await next_event(a, "presence:changes")
    assert [c["user"]["id"] for c in frame["data"]["changes"]] == [dave.pk]


def test_a_flush_costs_one_write_and_one_read_whatever_the_users(
    db, make_user, alice, django_assert_num_queries
):
    users = [make_user() for _ in range(6)]
    for user in users:
        session_create(creator=alice, title="x", member_ids=[user.pk])
    ids = [u.pk for u in users]

    with django_assert_num_queries(2):
        by_session = presence_record(offline=ids[:3], changed=ids)

    assert len(by_session) == 6
    statuses = {c["user"]["id"]: c["status"] for cs in by_session.values() for c in cs}
    assert statuses == {**dict.fromkeys(ids[:3], "offline"), **dict.fromkeys(ids[3:], "online")}
