"""``notification:new`` (to each member who should hear of a new message, on their user
group, whether or not they joined the session) and ``session:notify``, through the whole
ASGI stack."""

import pytest
from channels.db import database_sync_to_async

from chat import event_types
from chat.models import Membership
from chat.services.messages import message_send
from chat.services.sessions import session_create

from .conftest import frames_for, next_event, request

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def make_room(alice, bob, carol):
    return database_sync_to_async(
        lambda: session_create(creator=alice, title="general", member_ids=[bob.pk, carol.pk])
    )


def set_notify(room, user, notify):
    return database_sync_to_async(
        lambda: Membership.objects.filter(session=room, user=user).update(notify=notify)
    )()


def notifications(frames):
    return [f for f in frames if f["event"] == event_types.NOTIFICATION_NEW]


async def test_a_mention_notifies_the_member_named_who_has_not_joined(
    ws_connect, make_room, alice, bob, carol
):
    room = await make_room()
    author = await ws_connect(alice)
    named = await ws_connect(bob)
    other = await ws_connect(carol)

    ack = await request(author, "message:send", {"sessionId": str(room.pk), "content": "look @bob"})
    frame = await next_event(named, event_types.NOTIFICATION_NEW)

    assert ack["event"] == "ack"
    assert frame["data"] == event_types.notification_new(
        session_id=room.pk, session_title="general", message=ack["data"], mentioned=True
    )
    assert "seq" not in frame
    assert notifications(await frames_for(other, 0.3)) == []  # carol: mentions only
    assert notifications(await frames_for(author, 0.3)) == []


async def test_notify_all_hears_every_message_and_none_hears_nothing(
    ws_connect, make_room, alice, bob, carol
):
    room = await make_room()
    await set_notify(room, bob, "all")
    await set_notify(room, carol, "none")
    author = await ws_connect(alice)
    everything = await ws_connect(bob)
    nothing = await ws_connect(carol)

    await request(author, "message:send", {"sessionId": str(room.pk), "content": "plain"})
    await request(author, "message:send", {"sessionId": str(room.pk), "content": "@carol @bob"})

    heard = notifications(await frames_for(everything, 0.5))
    assert [(f["data"]["message"]["content"], f["data"]["mentioned"]) for f in heard] == [
        ("plain", False),
        ("@carol @bob", True),
    ]
    assert notifications(await frames_for(nothing, 0.3)) == []


async def test_a_rest_send_notifies_too(ws_connect, make_room, alice, bob):
    room = await make_room()
    named = await ws_connect(bob)

    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="@BOB over REST"
    )
    frame = await next_event(named, event_types.NOTIFICATION_NEW)

    assert frame["data"]["message"]["id"] == str(message.pk)
    assert frame["data"]["mentioned"] is True


async def test_own_mentions_notify_nobody(ws_connect, make_room, alice):
    room = await make_room()
    author = await ws_connect(alice)

    await request(author, "message:send", {"sessionId": str(room.pk), "content": "me @alice"})

    assert notifications(await frames_for(author, 0.3)) == []


async def test_session_notify_sets_the_members_setting(ws_connect, make_room, bob):
    room = await make_room()
    ws = await ws_connect(bob)

    ack = await request(ws, "session:notify", {"sessionId": str(room.pk), "notify": "none"})
    bad = await request(ws, "session:notify", {"sessionId": str(room.pk), "notify": "x"}, "r2")

    assert ack["event"] == "ack"
    assert ack["data"] == {"sessionId": str(room.pk), "notify": "none"}
    assert bad["event"] == "error" and bad["data"]["code"] == "VALIDATION_ERROR"
    notify = await database_sync_to_async(
        lambda: Membership.objects.get(session=room, user=bob).notify
    )()
    assert notify == "none"


async def test_session_notify_is_for_members(ws_connect, make_room, make_user):
    room = await make_room()
    stranger = await database_sync_to_async(make_user)()
    ws = await ws_connect(stranger)

    reply = await request(ws, "session:notify", {"sessionId": str(room.pk), "notify": "all"})

    assert reply["event"] == "error" and reply["data"]["code"] == "FORBIDDEN"
