"""The /ws/chat/ gateway through the whole ASGI stack: envelope, errors, rooms, receipts,
typing, presence, throttles, reconnection, token lifetime and bans."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from rest_framework_simplejwt.tokens import AccessToken

from chat import consumer as consumer_module
from chat import event_types
from chat.services.messages import message_send
from chat.services.sessions import session_create

from .conftest import frames_for, next_event, request

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def make_room(alice, bob):
    return database_sync_to_async(
        lambda: session_create(creator=alice, title="general", member_ids=[bob.pk])
    )


async def test_connection_success_is_the_first_frame(ws_connect, alice):
    ws = await ws_connect(alice)
    data = ws.connection_success["data"]
    assert data["userId"] == alice.pk and data["username"] == "alice"
    assert data["connectionId"] and data["serverTime"].endswith("Z")


async def test_a_bad_token_gets_unauthorized_then_close_4401(ws_connect):
    ws = await ws_connect(token="not-a-jwt", expect_success=False)
    frame = await ws.receive_json_from(timeout=5)
    assert frame["event"] == "error" and frame["data"]["code"] == "UNAUTHORIZED"
    assert (await ws.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4401}


async def test_no_credentials_gets_unauthorized_then_close_4401(ws_connect):
    ws = await ws_connect(expect_success=False)
    frame = await ws.receive_json_from(timeout=5)
    assert frame["data"]["code"] == "UNAUTHORIZED"
    assert (await ws.receive_output(timeout=5))["code"] == 4401


async def test_a_foreign_origin_is_refused_at_the_handshake(ws_app, alice):
    from channels.testing import WebsocketCommunicator

    token = AccessToken.for_user(alice)
    ws = WebsocketCommunicator(
        ws_app, f"/ws/chat/?token={token}", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await ws.connect(timeout=5)
    assert not connected


async def test_an_allowed_origin_connects(ws_connect, alice):
    ws = await ws_connect(alice, headers=[(b"origin", b"http://127.0.0.1:8000")])
    assert ws.connection_success["event"] == "connection:success"


async def test_ping_is_acked_with_its_ref(ws_connect, alice):
    ws = await ws_connect(alice)
    reply = await request(ws, "ping", ref={"any": "json"})
    assert reply["event"] == "ack" and reply["ref"] == {"any": "json"}
    assert reply["data"]["serverTime"].endswith("Z")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "BAD_FRAME"),
        ("[1, 2]", "BAD_FRAME"),
        ('{"data": {}}', "BAD_FRAME"),
        ('{"event": "ping", "data": [1]}', "BAD_FRAME"),
        ('{"event": "nope", "ref": 7}', "UNKNOWN_EVENT"),
        ('{"event": "message:send", "data": {"sessionId": "x"}, "ref": 8}', "VALIDATION_ERROR"),
    ],
)
async def test_bad_frames_get_an_error_and_leave_the_socket_usable(ws_connect, alice, raw, code):
    ws = await ws_connect(alice)
    await ws.send_to(text_data=raw)
    error = await ws.receive_json_from(timeout=5)
    assert error["event"] == "error" and error["data"]["code"] == code
    assert (await request(ws, "ping", ref="after"))["event"] == "ack"


async def test_a_frame_over_64_kib_closes_with_1009(ws_connect, alice):
    ws = await ws_connect(alice)
    await ws.send_to(text_data='{"event": "ping", "data": {"x": "' + "a" * 70000 + '"}}')
    assert (await ws.receive_output(timeout=5)) == {"type": "websocket.close", "code": 1009}


async def test_join_send_and_receive_between_two_members(ws_connect, make_room, alice, bob):
    room = await make_room()
    a, b = await ws_connect(alice), await ws_connect(bob)
    joined = await request(a, "session:join", {"sessionId": str(room.pk)})
    assert joined["event"] == "ack"
    assert joined["data"]["session"]["id"] == str(room.pk)
    assert {m["username"] for m in joined["data"]["members"]} == {"alice", "bob"}
    assert joined["data"]["lastSeq"] == 0 and joined["data"]["missed"] == []
    await request(b, "session:join", {"sessionId": str(room.pk)})
    assert (await next_event(a, "user:joined"))["data"]["user"]["username"] == "bob"

    ack = await request(
        b, "message:send", {"sessionId": str(room.pk), "content": "hi", "clientId": "k1"}
    )
    new = await next_event(a, "message:new")

    assert ack["data"]["content"] == "hi" and ack["data"]["seq"] == 1
    assert new["seq"] == 1 and new["data"]["message"]["id"] == ack["data"]["id"]


async def test_a_non_member_cannot_join(ws_connect, make_room, carol):
    room = await make_room()
    ws = await ws_connect(carol)
    reply = await request(ws, "session:join", {"sessionId": str(room.pk)})
    assert reply["data"]["code"] == "FORBIDDEN"


async def test_joining_an_unknown_session_is_not_found(ws_connect, alice):
    ws = await ws_connect(alice)
    reply = await request(ws, "session:join", {"sessionId": "00000000-0000-0000-0000-000000000000"})
    assert reply["data"]["code"] == "NOT_FOUND"


async def test_a_message_sent_over_rest_reaches_the_socket(ws_connect, make_room, alice, bob):
    room = await make_room()
    a = await ws_connect(alice)
    await request(a, "session:join", {"sessionId": str(room.pk)})
    await database_sync_to_async(message_send)(author=bob, session_id=room.pk, content="from rest")
    frame = await next_event(a, "message:new")
    assert frame["data"]["message"]["content"] == "from rest"


async def test_edit_delete_reaction_and_receipts_reach_the_other_member(
    ws_connect, make_room, alice, bob, settings
):
    settings.RECEIPT_BROADCAST_INTERVAL_MS = 100
    room = await make_room()
    a, b = await ws_connect(alice), await ws_connect(bob)
    for ws in (a, b):
        await request(ws, "session:join", {"sessionId": str(room.pk)})
    sent = (await request(a, "message:send", {"sessionId": str(room.pk), "content": "v1"}))["data"]
    mid = sent["id"]

    await request(a, "message:edit", {"messageId": mid, "content": "v2"}, ref="e")
    assert (await next_event(b, "message:edited"))["data"]["message"]["content"] == "v2"

    reaction = await request(b, "message:reaction", {"messageId": mid, "emoji": "🎉"}, ref="x")
    assert reaction["data"]["action"] == "added"
    update = await next_event(a, "message:reaction:update")
    assert update["data"]["reactions"] == [{"emoji": "🎉", "count": 1, "userIds": [bob.pk]}]

    ack = await request(b, "message:delivered", {"messageId": mid}, ref="d")
    assert ack["data"] == {
        "sessionId": str(room.pk), "messageId": mid, "seq": 1, "deliveredSeq": 1, "seenSeq": 0
    }  # fmt: skip
    delivered = await next_event(a, "receipts:update")
    assert delivered["data"] == event_types.receipts_update(
        session_id=room.pk, readers=[{"userId": bob.pk, "deliveredSeq": 1, "seenSeq": 0}]
    )
    assert "seq" not in delivered, "receipts are not durable events"

    ack = await request(b, "message:seen", {"messageId": mid}, ref="s")
    assert (ack["data"]["deliveredSeq"], ack["data"]["seenSeq"]) == (1, 1)
    seen = await next_event(a, "receipts:update")
    assert seen["data"]["readers"] == [{"userId": bob.pk, "deliveredSeq": 1, "seenSeq": 1}]

    await request(a, "message:delete", {"messageId": mid}, ref="del")
    deleted = await next_event(b, "message:deleted")
    assert deleted["data"] == {"sessionId": str(room.pk), "messageId": mid}
    assert deleted["seq"] == 4, "new, edited, reaction, deleted: receipts take no seq"


async def test_someone_elses_message_cannot_be_edited(ws_connect, make_room, alice, bob):
    room = await make_room()
    a, b = await ws_connect(alice), await ws_connect(bob)
    await request(a, "session:join", {"sessionId": str(room.pk)})
    mid = (await request(a, "message:send", {"sessionId": str(room.pk), "content": "x"}))["data"][
        "id"
    ]
    reply = await request(b, "message:edit", {"messageId": mid, "content": "hacked"})
    assert reply["data"]["code"] == "FORBIDDEN"


async def test_typing_reaches_others_not_the_typist_and_expires(
    ws_connect, make_room, alice, bob, monkeypatch, settings
):
    monkeypatch.setattr(consumer_module, "TYPING_EXPIRY", 0.3)
    settings.TYPING_BROADCAST_INTERVAL_MS = 100
    room = await make_room()
    a, b = await ws_connect(alice), await ws_connect(bob)
    for ws in (a, b):
        await request(ws, "session:join", {"sessionId": str(room.pk)})
    await request(a, "typing:start", {"sessionId": str(room.pk)}, ref="t")

    start = await next_event(b, "typing:update")
    stop = await next_event(b, "typing:update")

    alice_data = {"id": alice.pk, "username": "alice"}
    assert start["data"] == event_types.typing_update(
        session_id=room.pk, started=[alice_data], stopped=[]
    )
    assert stop["data"] == event_types.typing_update(
        session_id=room.pk, started=[], stopped=[alice_data]
    )
    typist_saw = [f["event"] for f in await frames_for(a, 0.5)]
    assert not [e for e in typist_saw if e.startswith("typing:")]


async def test_typing_before_joining_is_forbidden(ws_connect, make_room, alice):
    room = await make_room()
    ws = await ws_connect(alice)
    reply = await request(ws, "typing:start", {"sessionId": str(room.pk)})
    assert reply["data"]["code"] == "FORBIDDEN"


async def test_presence_goes_online_and_offline_for_members_in_the_room(
    ws_connect, make_room, alice, bob
):
    room = await make_room()
    a = await ws_connect(alice)
    await request(a, "session:join", {"sessionId": str(room.pk)})
    b = await ws_connect(bob)
    online = await next_event(a, "presence:changes")
    assert online["data"] == event_types.presence_changes(
        changes=[
            event_types.presence_change(
                user={"id": bob.pk, "username": "bob"}, status="online", last_seen_at=None
            )
        ]
    )

    joined = await request(a, "session:join", {"sessionId": str(room.pk)}, ref="again")
    statuses = {p["user"]["username"]: p["status"] for p in joined["data"]["presence"]}
    assert statuses == {"alice": "online", "bob": "online"}

    await b.disconnect()
    (offline,) = (await next_event(a, "presence:changes"))["data"]["changes"]
    assert offline["user"]["id"] == bob.pk
    assert offline["status"] == "offline" and offline["lastSeenAt"]


async def test_a_user_stays_online_while_any_connection_is_open(ws_connect, make_room, alice, bob):
    room = await make_room()
    a = await ws_connect(alice)
    await request(a, "session:join", {"sessionId": str(room.pk)})
    b1, b2 = await ws_connect(bob), await ws_connect(bob)
    await next_event(a, "presence:changes")
    await b1.disconnect()
    assert "presence:changes" not in [f["event"] for f in await frames_for(a, 1.5)]
    await b2.disconnect()
    (offline,) = (await next_event(a, "presence:changes"))["data"]["changes"]
    assert offline["status"] == "offline"


async def test_events_while_offline_are_queued_and_delivered_after_connection_success(
    ws_connect, make_room, alice, bob
):
    room = await make_room()
    await database_sync_to_async(message_send)(author=alice, session_id=room.pk, content="m1")
    await database_sync_to_async(message_send)(author=alice, session_id=room.pk, content="m2")

    b = await ws_connect(bob)
    first, second = await b.receive_json_from(timeout=5), await b.receive_json_from(timeout=5)
    assert [first["seq"], second["seq"]] == [1, 2]

    again = await ws_connect(bob)
    assert await again.receive_nothing(timeout=0.5), "the queue is cleared once delivered"


async def test_join_with_last_seq_replays_missed_events_in_order(ws_connect, make_room, alice, bob):
    room = await make_room()
    for text in ("m1", "m2", "m3"):
        await database_sync_to_async(message_send)(author=alice, session_id=room.pk, content=text)
    b = await ws_connect(bob)
    reply = await request(b, "session:join", {"sessionId": str(room.pk), "lastSeq": 1})
    assert [f["seq"] for f in reply["data"]["missed"]] == [2, 3]
    assert reply["data"]["missed"][0]["event"] == "message:new"
    assert reply["data"]["hasMore"] is False and reply["data"]["lastSeq"] == 3


async def test_replay_is_capped_at_500_with_has_more(
    ws_connect, make_room, alice, bob, monkeypatch
):
    from chat import join

    monkeypatch.setattr(join, "REPLAY_LIMIT", 2)
    room = await make_room()
    for text in ("m1", "m2", "m3"):
        await database_sync_to_async(message_send)(author=alice, session_id=room.pk, content=text)
    b = await ws_connect(bob)
    reply = await request(b, "session:join", {"sessionId": str(room.pk), "lastSeq": 0})
    assert [f["seq"] for f in reply["data"]["missed"]] == [1, 2]
    assert reply["data"]["hasMore"] is True


async def test_the_sixth_join_of_one_session_in_a_minute_is_rate_limited(
    ws_connect, make_room, alice
):
    room = await make_room()
    ws = await ws_connect(alice)
    for i in range(5):
        assert (await request(ws, "session:join", {"sessionId": str(room.pk)}, ref=i))[
            "event"
        ] == "ack"
    limited = await request(ws, "session:join", {"sessionId": str(room.pk)}, ref="six")
    assert limited["data"]["code"] == "RATE_LIMITED" and limited["data"]["retryAfter"] >= 1
    assert (await request(ws, "ping", ref="still"))["event"] == "ack"


async def test_continuing_a_has_more_replay_is_not_counted_as_a_join(
    ws_connect, make_room, alice, bob, monkeypatch
):
    """A long catch-up takes as many joins as it has pages: the pages the server asked for
    (``lastSeq`` where the last ``hasMore`` reply ended) never meet the join limit, while a
    join from anywhere else still counts."""
    from chat import join

    monkeypatch.setattr(join, "REPLAY_LIMIT", 1)
    room = await make_room()
    for i in range(8):
        await database_sync_to_async(message_send)(
            author=alice, session_id=room.pk, content=f"m{i}"
        )
    b = await ws_connect(bob)
    seqs, last_seq, has_more = [], 0, True
    while has_more:
        reply = await request(b, "session:join", {"sessionId": str(room.pk), "lastSeq": last_seq})
        assert reply["event"] == "ack", reply
        seqs += [frame["seq"] for frame in reply["data"]["missed"]]
        last_seq, has_more = seqs[-1], reply["data"]["hasMore"]
    assert seqs == list(range(1, 9))

    for i in range(4):
        again = await request(b, "session:join", {"sessionId": str(room.pk), "lastSeq": 0}, ref=i)
        assert again["event"] == "ack", again
    limited = await request(b, "session:join", {"sessionId": str(room.pk), "lastSeq": 0})
    assert limited["data"]["code"] == "RATE_LIMITED"


async def test_a_new_connection_joins_at_once_after_the_old_one_spent_its_joins(
    ws_connect, make_room, alice, bob
):
    """A reload is a new connection: the join limit of the one it replaces does not follow it,
    and it receives the room's messages live."""
    room = await make_room()
    old = await ws_connect(alice)
    for i in range(6):
        await request(old, "session:join", {"sessionId": str(room.pk)}, ref=i)
    await old.disconnect()

    new = await ws_connect(alice)
    joined = await request(new, "session:join", {"sessionId": str(room.pk)})
    assert joined["event"] == "ack"
    await database_sync_to_async(message_send)(author=bob, session_id=room.pk, content="live")
    assert (await next_event(new, "message:new"))["data"]["message"]["content"] == "live"


async def test_the_31st_connection_of_a_user_in_a_minute_is_refused_with_4429(
    ws_connect, alice, bob
):
    for _ in range(30):
        ws = await ws_connect(alice)
        await ws.disconnect()

    refused = await ws_connect(alice, expect_success=False)
    error = await refused.receive_json_from(timeout=5)
    assert error["event"] == "error" and error["data"]["code"] == "RATE_LIMITED"
    assert 1 <= error["data"]["retryAfter"] <= 60
    assert (await refused.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4429}
    # Another user's budget is their own.
    assert (await ws_connect(bob)).connection_success["data"]["userId"] == bob.pk


async def test_events_without_a_rule_use_the_default_limit(ws_connect, alice, settings):
    settings.WS_THROTTLE_LIMIT = 2
    ws = await ws_connect(alice)
    replies = [(await request(ws, "ping", ref=i))["event"] for i in range(3)]
    assert replies == ["ack", "ack", "error"]


async def test_the_connection_closes_when_the_access_token_expires(ws_connect, alice):
    token = AccessToken.for_user(alice)
    token.set_exp(lifetime=timedelta(seconds=1))
    ws = await ws_connect(token=str(token))
    frame = await ws.receive_json_from(timeout=5)
    assert frame["event"] == "error" and frame["data"]["code"] == "UNAUTHORIZED"
    assert (await ws.receive_output(timeout=5))["code"] == 4401


async def test_auth_refresh_extends_the_connection(ws_connect, alice):
    token = AccessToken.for_user(alice)
    token.set_exp(lifetime=timedelta(seconds=1))
    ws = await ws_connect(token=str(token))
    reply = await request(ws, "auth:refresh", {"token": str(AccessToken.for_user(alice))})
    assert reply["event"] == "ack" and reply["data"]["expiresAt"].endswith("Z")
    assert await ws.receive_nothing(timeout=1.5)


async def test_auth_refresh_with_another_users_token_is_forbidden(ws_connect, alice, bob):
    ws = await ws_connect(alice)
    reply = await request(ws, "auth:refresh", {"token": str(AccessToken.for_user(bob))})
    assert reply["data"]["code"] == "FORBIDDEN"


async def test_a_deactivation_message_closes_all_the_users_connections(ws_connect, alice):
    from channels.layers import get_channel_layer

    from chat.events import group_for_user

    one, two = await ws_connect(alice), await ws_connect(alice)
    await get_channel_layer().group_send(group_for_user(alice.pk), {"type": "user.deactivated"})
    for ws in (one, two):
        assert (await ws.receive_json_from(timeout=5))["data"]["code"] == "FORBIDDEN"
        assert (await ws.receive_output(timeout=5))["code"] == 4403


async def test_an_internal_error_is_answered_not_fatal(ws_connect, alice, monkeypatch):
    async def broken(self, data):
        raise RuntimeError("boom")

    monkeypatch.setattr(consumer_module.ChatConsumer, "on_ping", broken)
    ws = await ws_connect(alice)
    reply = await request(ws, "ping")
    assert reply["data"]["code"] == "INTERNAL"
    await ws.send_json_to({"event": "typing:stop", "data": {"sessionId": "x"}, "ref": 2})
    assert (await ws.receive_json_from(timeout=5))["data"]["code"] == "VALIDATION_ERROR"


async def test_the_gateway_counts_connections_events_throttles_and_errors(
    ws_connect, alice, settings
):
    from prometheus_client import REGISTRY

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    settings.WS_THROTTLE_LIMIT = 1
    before = (
        sample("chat_ws_connections"),
        sample("chat_ws_events_total", event="ping"),
        sample("chat_ws_throttled_total", event="ping"),
        sample("chat_ws_errors_total", code="RATE_LIMITED"),
    )
    ws = await ws_connect(alice)
    await request(ws, "ping", ref=1)
    await request(ws, "ping", ref=2)
    after = (
        sample("chat_ws_connections"),
        sample("chat_ws_events_total", event="ping"),
        sample("chat_ws_throttled_total", event="ping"),
        sample("chat_ws_errors_total", code="RATE_LIMITED"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 2, 1, 1]
    await ws.disconnect()
    assert sample("chat_ws_connections") == before[0]


async def test_receipts_are_never_queued_for_an_offline_member(ws_connect, make_room, alice, bob):
    room = await make_room()
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="read me"
    )
    b = await ws_connect(bob)
    await frames_for(b, 0.3)  # bob's own offline queue: the message:new
    await request(b, "session:join", {"sessionId": str(room.pk)})
    await request(b, "message:delivered", {"messageId": str(message.pk)}, ref="d")
    await request(b, "message:seen", {"messageId": str(message.pk)}, ref="s")

    a = await ws_connect(alice)
    events = [f["event"] for f in await frames_for(a, 0.5)]
    assert events == ["message:new"], "alice's queue holds her message, no receipt"
    joined = await request(a, "session:join", {"sessionId": str(room.pk)})
    bob_member = next(m for m in joined["data"]["members"] if m["id"] == bob.pk)
    assert (bob_member["lastDeliveredSeq"], bob_member["lastSeenSeq"]) == (1, 1)


async def test_many_marks_in_an_interval_make_one_receipts_update(
    ws_connect, alice, bob, make_user, settings
):
    settings.RECEIPT_BROADCAST_INTERVAL_MS = 2000
    readers = [await database_sync_to_async(make_user)() for _ in range(4)]
    room = await database_sync_to_async(session_create)(
        creator=alice, title="busy", member_ids=[bob.pk, *(u.pk for u in readers)]
    )
    send = database_sync_to_async(message_send)
    messages = [await send(author=alice, session_id=room.pk, content=f"m{n}") for n in range(3)]
    a = await ws_connect(alice)
    await frames_for(a, 0.2)
    await request(a, "session:join", {"sessionId": str(room.pk)})
    sockets = [await ws_connect(user) for user in readers]
    # The first mark goes out at once; every mark inside the interval after it waits for
    # its end and goes out as one frame, listing each reader once, as of the latest mark.
    await request(sockets[0], "message:delivered", {"messageId": str(messages[0].pk)})
    first = await next_event(a, "receipts:update")
    assert [r["userId"] for r in first["data"]["readers"]] == [readers[0].pk]
    for n, ws in enumerate(sockets):
        for message in messages:
            await request(ws, "message:delivered", {"messageId": str(message.pk)}, ref=f"{n}d")
            await request(ws, "message:seen", {"messageId": str(message.pk)}, ref=f"{n}s")

    second = await next_event(a, "receipts:update")
    after = [f for f in await frames_for(a, 0.5) if f["event"] == "receipts:update"]

    assert sorted(r["userId"] for r in second["data"]["readers"]) == sorted(u.pk for u in readers)
    assert {(r["deliveredSeq"], r["seenSeq"]) for r in second["data"]["readers"]} == {(3, 3)}
    assert after == []


async def test_join_shows_each_members_read_position(ws_connect, make_room, alice, bob):
    room = await make_room()
    send = database_sync_to_async(message_send)
    first = await send(author=alice, session_id=room.pk, content="1")
    second = await send(author=alice, session_id=room.pk, content="2")
    from chat.services.receipts import DELIVERED, SEEN, Mark, receipts_mark_batch

    await database_sync_to_async(receipts_mark_batch)(
        [Mark(bob.pk, first.pk, SEEN), Mark(bob.pk, second.pk, DELIVERED)]
    )
    a = await ws_connect(alice)
    joined = await request(a, "session:join", {"sessionId": str(room.pk)})
    positions = {
        m["username"]: (m["lastDeliveredSeq"], m["lastSeenSeq"]) for m in joined["data"]["members"]
    }
    assert positions == {"alice": (0, 0), "bob": (2, 1)}


async def _announce(room, user, *, online: bool) -> None:
    """A presence change of ``user`` as a worker broadcasts it to ``room``, arriving now."""
    from accounts.serializers import render_user
    from chat import broadcaster
    from chat.events import group_for_session
    from chat.presence_updates import presence_message

    change = event_types.presence_change(
        user=render_user(user), status="online" if online else "offline", last_seen_at=None
    )
    await broadcaster.send(group_for_session(room.pk), presence_message([change]))


async def test_a_stale_offline_is_not_forwarded_while_the_user_has_a_connection(
    ws_connect, make_room, alice, bob
):
    """A reload's close can be announced after its new connection's open (another worker,
    a slower path): the members keep seeing the user online, since a connection is open."""
    room = await make_room()
    a = await ws_connect(alice)
    await request(a, "session:join", {"sessionId": str(room.pk)})
    b = await ws_connect(bob)
    (online,) = (await next_event(a, "presence:changes"))["data"]["changes"]
    assert online["status"] == "online"

    await _announce(room, bob, online=False)

    assert "presence:changes" not in [f["event"] for f in await frames_for(a, 0.5)]
    await b.disconnect()
    (offline,) = (await next_event(a, "presence:changes"))["data"]["changes"]
    assert offline["user"]["id"] == bob.pk and offline["status"] == "offline"
    await _announce(room, bob, online=True)  # a stale open, arriving after the last close
    assert "presence:changes" not in [f["event"] for f in await frames_for(a, 0.5)]


async def test_nobody_is_told_they_are_offline_on_their_own_connection(
    ws_connect, make_room, alice
):
    room = await make_room()
    a = await ws_connect(alice)
    await request(a, "session:join", {"sessionId": str(room.pk)})

    await _announce(room, alice, online=False)

    assert "presence:changes" not in [f["event"] for f in await frames_for(a, 0.5)]
