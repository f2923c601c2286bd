"""``typing:update`` through the gateway: a session's typing changes go out at most once per
``TYPING_BROADCAST_INTERVAL_MS`` per worker, with what cancels out left out."""

import pytest
from channels.db import database_sync_to_async

from chat import event_types
from chat.services.sessions import session_create

from .conftest import frames_for, next_event, request

pytestmark = [pytest.mark.django_db(transaction=True)]


def typing_frames(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["event"].startswith("typing:")]


@pytest.fixture
def room_of(alice):
    def make(*members):
        return database_sync_to_async(
            lambda: session_create(
                creator=alice, title="general", member_ids=[m.pk for m in members]
            )
        )()

    return make


@pytest.fixture
async def joined(ws_connect):
    """Connect each user and join them to ``room``."""

    async def connect(room, *users):
        sockets = []
        for user in users:
            ws = await ws_connect(user)
            await request(ws, "session:join", {"sessionId": str(room.pk)})
            sockets.append(ws)
        for ws in sockets:
            await frames_for(ws, 0.2)  # the user:joined of the others
        return sockets

    return connect


async def test_a_start_from_someone_already_typing_sends_nothing(
    joined, room_of, alice, bob, settings
):
    settings.TYPING_BROADCAST_INTERVAL_MS = 100
    room = await room_of(bob)
    a, b = await joined(room, alice, bob)
    await request(a, "typing:start", {"sessionId": str(room.pk)})
    first = await next_event(b, "typing:update")

    await request(a, "typing:start", {"sessionId": str(room.pk)}, ref="again")

    assert first["data"]["started"] == [{"id": alice.pk, "username": "alice"}]
    assert typing_frames(await frames_for(b, 0.5)) == []


async def test_a_start_and_a_stop_inside_one_interval_send_nothing(
    joined, room_of, alice, bob, settings
):
    settings.TYPING_BROADCAST_INTERVAL_MS = 300
    room = await room_of(bob)
    a, b = await joined(room, alice, bob)

    await request(a, "typing:start", {"sessionId": str(room.pk)})
    await request(a, "typing:stop", {"sessionId": str(room.pk)}, ref="stop")

    assert typing_frames(await frames_for(b, 0.8)) == []


@pytest.fixture
def typists(make_user, bob):
    return [bob, *(make_user(f"typist{i}") for i in range(4))]


async def test_many_typists_in_one_interval_make_one_frame(
    joined, room_of, typists, alice, settings
):
    settings.TYPING_BROADCAST_INTERVAL_MS = 300
    room = await room_of(*typists)
    a, *sockets = await joined(room, alice, *typists)

    for ws in sockets:
        await request(ws, "typing:start", {"sessionId": str(room.pk)})

    frames = typing_frames(await frames_for(a, 0.8))
    assert len(frames) == 1
    assert frames[0]["data"] == event_types.typing_update(
        session_id=room.pk,
        started=[{"id": u.pk, "username": u.username} for u in typists],
        stopped=[],
    )


async def test_leaving_stops_typing_for_the_others(joined, room_of, alice, bob, settings):
    settings.TYPING_BROADCAST_INTERVAL_MS = 100
    room = await room_of(bob)
    a, b = await joined(room, alice, bob)
    await request(a, "typing:start", {"sessionId": str(room.pk)})
    await next_event(b, "typing:update")

    await request(a, "session:leave", {"sessionId": str(room.pk)}, ref="leave")

    stop = await next_event(b, "typing:update")
    assert stop["data"]["stopped"] == [{"id": alice.pk, "username": "alice"}]
    assert stop["data"]["started"] == []


async def test_a_disconnect_stops_typing_for_the_others(joined, room_of, alice, bob, settings):
    settings.TYPING_BROADCAST_INTERVAL_MS = 100
    room = await room_of(bob)
    a, b = await joined(room, alice, bob)
    await request(a, "typing:start", {"sessionId": str(room.pk)})
    await next_event(b, "typing:update")

    await a.disconnect()

    stop = await next_event(b, "typing:update")
    assert stop["data"]["stopped"] == [{"id": alice.pk, "username": "alice"}]
