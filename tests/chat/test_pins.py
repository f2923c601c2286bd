"""Pins: any member pins or unpins a message, through the service, REST and the gateway; each
change is a durable event replayed by seq; a message renders its pin (``pinnedAt``,
``pinnedBy``); deleting a pinned message takes its pin away."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import event_types
from chat.models import Membership, Pin, SessionEvent
from chat.selectors import message_get
from chat.serializers import render_message
from chat.services.messages import message_delete, message_send
from chat.services.pins import message_pin, message_unpin
from chat.services.sessions import session_create
from chatproject.errors import DomainError

from .conftest import next_event, request


def user_of(user) -> dict:
    return {"id": user.pk, "username": user.username}


# --- services ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_member_pins_a_message_and_the_room_gets_message_pinned(room, alice, bob, listen):
    message = message_send(author=alice, session_id=room.pk, content="the plan")
    drain = listen(room)

    change = message_pin(user=bob, message_id=message.pk)

    assert change.changed
    rendered = render_message(change.message)
    assert rendered["pinnedBy"] == user_of(bob) and rendered["pinnedAt"].endswith("Z")
    [frame] = drain()
    assert frame == {
        "event": "message:pinned",
        "data": event_types.message_pinned(
            session_id=room.pk,
            message_id=message.pk,
            pinned_by=user_of(bob),
            pinned_at=rendered["pinnedAt"],
            message=rendered,
        ),
        "seq": 2,
    }
    assert SessionEvent.objects.get(seq=2).frame == frame
    pin = Pin.objects.get()
    assert (pin.message_id, pin.session_id, pin.pinned_by_id) == (message.pk, room.pk, bob.pk)


@pytest.mark.django_db(transaction=True)
def test_pinning_twice_and_unpinning_an_unpinned_message_change_nothing(room, alice, bob, listen):
    message = message_send(author=alice, session_id=room.pk, content="once")
    assert not message_unpin(user=bob, message_id=message.pk).changed
    first = message_pin(user=alice, message_id=message.pk)
    drain = listen(room)

    again = message_pin(user=bob, message_id=message.pk)

    assert not again.changed
    assert render_message(again.message)["pinnedBy"] == user_of(alice), "the first pin stays"
    assert render_message(again.message)["pinnedAt"] == render_message(first.message)["pinnedAt"]
    assert drain() == []
    assert list(SessionEvent.objects.values_list("event", flat=True)) == [
        "message:new",
        "message:pinned",
    ]


@pytest.mark.django_db(transaction=True)
def test_any_member_unpins_and_the_room_gets_message_unpinned(room, alice, bob, listen):
    message = message_send(author=alice, session_id=room.pk, content="pinned by alice")
    message_pin(user=alice, message_id=message.pk)
    drain = listen(room)

    change = message_unpin(user=bob, message_id=message.pk)

    assert change.changed and render_message(change.message)["pinnedAt"] is None
    assert drain() == [
        {
            "event": "message:unpinned",
            "data": event_types.message_unpinned(
                session_id=room.pk, message_id=message.pk, unpinned_by=user_of(bob)
            ),
            "seq": 3,
        }
    ]
    assert not Pin.objects.exists()


@pytest.mark.django_db
def test_a_non_member_can_neither_pin_nor_unpin(room, alice, carol):
    message = message_send(author=alice, session_id=room.pk, content="members only")
    for service in (message_pin, message_unpin):
        with pytest.raises(DomainError) as caught:
            service(user=carol, message_id=message.pk)
        assert caught.value.code == "FORBIDDEN"
    assert not Pin.objects.exists()


@pytest.mark.django_db
def test_a_deleted_message_cannot_be_pinned(room, alice):
    message = message_send(author=alice, session_id=room.pk, content="gone")
    message_delete(user=alice, message_id=message.pk)

    with pytest.raises(DomainError) as caught:
        message_pin(user=alice, message_id=message.pk)

    assert caught.value.code == "VALIDATION_ERROR"
    assert not Pin.objects.exists()


@pytest.mark.django_db
def test_deleting_a_pinned_message_removes_its_pin_and_redacts_the_pinned_frame(room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="secret plan")
    message_pin(user=bob, message_id=message.pk)

    message_delete(user=alice, message_id=message.pk)

    assert not Pin.objects.exists()
    assert render_message(message_get(message.pk))["pinnedAt"] is None
    assert list(SessionEvent.objects.values_list("event", flat=True)) == [
        "message:new",
        "message:pinned",
        "message:deleted",
    ], "the delete's own event says the pin is gone"
    for frame in SessionEvent.objects.values_list("frame", flat=True):
        assert "secret plan" not in str(frame)
    pinned = SessionEvent.objects.get(event="message:pinned").frame["data"]["message"]
    assert pinned["content"] == "" and pinned["isDeleted"] is True


@pytest.mark.django_db
def test_a_new_message_renders_unpinned_without_a_query(room, alice):
    message = message_send(author=alice, session_id=room.pk, content="fresh")

    with CaptureQueriesContext(connection) as captured:
        rendered = render_message(message)

    assert (rendered["pinnedAt"], rendered["pinnedBy"]) == (None, None)
    assert captured.captured_queries == []


# --- REST ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_rest_pin_is_201_then_200_and_the_list_is_newest_pin_first(client_for, room, alice, bob):
    first = message_send(author=alice, session_id=room.pk, content="first")
    second = message_send(author=bob, session_id=room.pk, content="second")
    client = client_for(bob)

    created = client.post(f"/api/chat/messages/{first.pk}/pin")
    again = client.post(f"/api/chat/messages/{first.pk}/pin/")
    client_for(alice).post(f"/api/chat/messages/{second.pk}/pin")
    listed = client.get(f"/api/chat/sessions/{room.pk}/pins")

    assert (created.status_code, again.status_code) == (201, 200)
    body = created.json()
    assert body["pinnedBy"] == user_of(bob) and body["pinnedAt"].endswith("Z")
    assert body["message"]["id"] == str(first.pk)
    assert body["message"]["pinnedAt"] == body["pinnedAt"]
    assert again.json() == body
    assert listed.status_code == 200
    pins = listed.json()["pins"]
    assert [p["message"]["content"] for p in pins] == ["second", "first"]
    assert [p["pinnedBy"]["username"] for p in pins] == ["alice", "bob"]


@pytest.mark.django_db
def test_rest_unpin_is_204_pinned_or_not(client_for, room, alice):
    message = message_send(author=alice, session_id=room.pk, content="pin me")
    client = client_for(alice)
    client.post(f"/api/chat/messages/{message.pk}/pin")

    removed = client.delete(f"/api/chat/messages/{message.pk}/pin")
    again = client.delete(f"/api/chat/messages/{message.pk}/pin/")

    assert (removed.status_code, again.status_code) == (204, 204)
    assert client.get(f"/api/chat/sessions/{room.pk}/pins").json() == {"pins": []}
    assert client.get(f"/api/chat/messages/{message.pk}").json()["pinnedAt"] is None


@pytest.mark.django_db
def test_rest_refusals(client_for, room, alice, carol):
    message = message_send(author=alice, session_id=room.pk, content="x")
    outsider = client_for(carol)
    assert outsider.get(f"/api/chat/sessions/{room.pk}/pins").status_code == 403
    assert outsider.post(f"/api/chat/messages/{message.pk}/pin").status_code == 403
    assert outsider.delete(f"/api/chat/messages/{message.pk}/pin").status_code == 403
    assert client_for().get(f"/api/chat/sessions/{room.pk}/pins").status_code == 401
    missing = "00000000-0000-0000-0000-000000000000"
    assert client_for(alice).post(f"/api/chat/messages/{missing}/pin").status_code == 404
    message_delete(user=alice, message_id=message.pk)
    refused = client_for(alice).post(f"/api/chat/messages/{message.pk}/pin")
    assert refused.status_code == 400 and refused.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.django_db
def test_messages_render_their_pin_in_history(client_for, room, alice, bob):
    pinned = message_send(author=alice, session_id=room.pk, content="pinned")
    message_send(author=alice, session_id=room.pk, content="plain")
    message_pin(user=bob, message_id=pinned.pk)

    page = client_for(alice).get(f"/api/chat/sessions/{room.pk}/messages").json()

    by_text = {m["content"]: m for m in page["messages"]}
    assert by_text["pinned"]["pinnedBy"] == user_of(bob)
    assert by_text["pinned"]["pinnedAt"].endswith("Z")
    assert (by_text["plain"]["pinnedAt"], by_text["plain"]["pinnedBy"]) == (None, None)


@pytest.mark.django_db
def test_the_pin_list_takes_a_fixed_number_of_queries(client_for, room, alice, make_user):
    client = client_for(alice)

    def pins_queries() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(f"/api/chat/sessions/{room.pk}/pins")
        return len(captured.captured_queries), len(response.json()["pins"])

    def pin_some(n: int) -> None:
        for i in range(n):
            pinner = make_user()
            Membership.objects.create(session=room, user=pinner)
            message = message_send(author=alice, session_id=room.pk, content=f"pin {i}")
            message_pin(user=pinner, message_id=message.pk)

    pin_some(2)
    few, two = pins_queries()
    pin_some(8)
    many, ten = pins_queries()

    assert (two, ten) == (2, 10)
    assert few == many


@pytest.mark.django_db
def test_the_schema_describes_the_pin_endpoints(client):
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]

    assert "get" in paths["/api/chat/sessions/{session_id}/pins/"]
    assert {"post", "delete"} <= set(paths["/api/chat/messages/{message_id}/pin/"])
    message = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]
    assert {"pinnedAt", "pinnedBy"} <= set(message["Message"]["properties"])


# --- gateway -------------------------------------------------------------------------------


@pytest.fixture
def make_room(alice, bob):
    return database_sync_to_async(
        lambda: session_create(creator=alice, title="general", member_ids=[bob.pk])
    )


@pytest.mark.django_db(transaction=True)
async def test_pin_and_unpin_over_the_socket_are_acked_and_broadcast(
    ws_connect, make_room, alice, bob
):
    room = await make_room()
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="over the wire"
    )
    a, b = await ws_connect(alice), await ws_connect(bob)
    for ws in (a, b):
        await request(ws, "session:join", {"sessionId": str(room.pk)})

    pinned = await request(b, "message:pin", {"messageId": str(message.pk)})
    seen = await next_event(a, "message:pinned")
    again = await request(b, "message:pin", {"messageId": str(message.pk)}, ref="r2")
    unpinned = await request(a, "message:unpin", {"messageId": str(message.pk)}, ref="r3")
    gone = await next_event(b, "message:unpinned")
    no_op = await request(a, "message:unpin", {"messageId": str(message.pk)}, ref="r4")

    assert pinned["event"] == "ack"
    assert pinned["data"] == {
        "sessionId": str(room.pk),
        "messageId": str(message.pk),
        "pinned": True,
        "pinnedAt": seen["data"]["pinnedAt"],
        "pinnedBy": user_of(bob),
    }
    assert seen["seq"] == 2 and seen["data"]["message"]["pinnedBy"] == user_of(bob)
    assert again["data"] == pinned["data"], "a repeat pin is a no-op ack"
    assert unpinned["data"] == {
        "sessionId": str(room.pk),
        "messageId": str(message.pk),
        "pinned": False,
        "pinnedAt": None,
        "pinnedBy": None,
    }
    assert gone["seq"] == 3 and gone["data"]["unpinnedBy"] == user_of(alice)
    assert no_op["data"] == unpinned["data"]
    assert await a.receive_nothing(timeout=0.3), "no event for a no-op"


@pytest.mark.django_db(transaction=True)
async def test_pin_refusals_over_the_socket(ws_connect, make_room, alice, carol):
    room = await make_room()
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="x"
    )
    c = await ws_connect(carol)
    a = await ws_connect(alice)

    outsider = await request(c, "message:pin", {"messageId": str(message.pk)})
    malformed = await request(a, "message:pin", {"messageId": 5}, ref="r2")
    await database_sync_to_async(message_delete)(user=alice, message_id=message.pk)
    deleted = await request(a, "message:pin", {"messageId": str(message.pk)}, ref="r3")

    assert outsider["data"]["code"] == "FORBIDDEN"
    assert malformed["data"]["code"] == "VALIDATION_ERROR"
    assert deleted["data"]["code"] == "VALIDATION_ERROR"


@pytest.mark.django_db(transaction=True)
async def test_a_join_with_last_seq_replays_pins_and_unpins(ws_connect, make_room, alice, bob):
    room = await make_room()
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="replayed"
    )
    await database_sync_to_async(message_pin)(user=alice, message_id=message.pk)
    await database_sync_to_async(message_unpin)(user=alice, message_id=message.pk)
    await database_sync_to_async(message_pin)(user=bob, message_id=message.pk)
    b = await ws_connect(bob)

    reply = await request(b, "session:join", {"sessionId": str(room.pk), "lastSeq": 1})

    missed = reply["data"]["missed"]
    assert [(f["seq"], f["event"]) for f in missed] == [
        (2, "message:pinned"),
        (3, "message:unpinned"),
        (4, "message:pinned"),
    ]
    assert missed[2]["data"]["pinnedBy"] == user_of(bob)
    assert missed[2]["data"]["message"]["content"] == "replayed"


@pytest.mark.django_db(transaction=True)
async def test_a_deleted_pinned_message_replays_without_its_text(ws_connect, make_room, alice, bob):
    room = await make_room()
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="never again"
    )
    await database_sync_to_async(message_pin)(user=bob, message_id=message.pk)
    await database_sync_to_async(message_delete)(user=alice, message_id=message.pk)
    b = await ws_connect(bob)

    reply = await request(b, "session:join", {"sessionId": str(room.pk), "lastSeq": 0})

    missed = reply["data"]["missed"]
    assert [f["event"] for f in missed] == ["message:new", "message:pinned", "message:deleted"]
    assert "never again" not in str(missed)
    assert missed[1]["data"]["message"]["isDeleted"] is True


@pytest.mark.django_db(transaction=True)
async def test_pins_reach_a_member_who_was_offline_through_the_queue(
    ws_connect, make_room, alice, bob
):
    room = await make_room()
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="queued"
    )
    await database_sync_to_async(message_pin)(user=alice, message_id=message.pk)

    b = await ws_connect(bob)

    frame = await next_event(b, "message:pinned")
    assert frame["data"]["messageId"] == str(message.pk)
