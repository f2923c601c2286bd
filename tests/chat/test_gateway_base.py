"""The gateway's consumer as Channels runs it (``chat.gateway_base``): one message at a time
from the socket and the channel layer, so what a request causes reaches its sender after
the request's reply, except a ``concurrent`` route's (``message:send``), during which frames
keep flowing but the sender's own ``message:new`` still comes after the ack; a handler's
failure ends the consumer as in Channels, leaving nothing behind in the worker's timers."""

import asyncio
import threading

import orjson
import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connection, transaction
from rest_framework_simplejwt.tokens import AccessToken

from chat import consumer as consumer_module
from chat import event_types
from chat.events import FRAME_MESSAGE_TYPE, encode, group_for_session, group_for_user
from chat.models import ChatSession
from chat.services.sessions import session_create
from chat.timers import connection_timers
from tests.conftest import on_postgres

from .conftest import request

pytestmark = [pytest.mark.django_db(transaction=True)]


async def test_socket_and_layer_messages_are_dispatched_one_at_a_time(
    ws_connect, alice, monkeypatch
):
    async def slow_ping(self, data):
        await asyncio.sleep(0.3)
        return {"serverTime": "later"}

    monkeypatch.setattr(consumer_module.ChatConsumer, "on_ping", slow_ping)
    ws = await ws_connect(alice)
    frame = orjson.dumps({"event": "broadcast", "data": {}}).decode()

    await ws.send_json_to({"event": "ping", "data": {}, "ref": "slow"})
    await asyncio.sleep(0.1)  # the ping's handler is running
    await get_channel_layer().group_send(
        group_for_user(alice.pk), {"type": FRAME_MESSAGE_TYPE, "text": frame}
    )

    first = await ws.receive_json_from(timeout=5)
    second = await ws.receive_json_from(timeout=5)
    assert (first["event"], first["ref"]) == ("ack", "slow")
    assert second["event"] == "broadcast"


async def test_a_senders_own_message_new_comes_after_the_ack(ws_connect, alice, bob):
    room = await database_sync_to_async(session_create)(
        creator=alice, title="general", member_ids=[bob.pk]
    )
    a, b = await ws_connect(alice), await ws_connect(bob)
    for ws in (a, b):
        await request(ws, "session:join", {"sessionId": str(room.pk)})
    await asyncio.sleep(0.2)
    while not await a.receive_nothing(timeout=0.2):  # bob's user:joined, presence
        await a.receive_json_from(timeout=1)

    for i in range(5):
        await a.send_json_to(
            {"event": "message:send", "data": {"sessionId": str(room.pk), "content": f"m{i}"},
             "ref": i}
        )  # fmt: skip
    frames = [await a.receive_json_from(timeout=5) for _ in range(10)]

    for i in range(5):
        ack = next(n for n, f in enumerate(frames) if f["event"] == "ack" and f["ref"] == i)
        message_id = frames[ack]["data"]["id"]
        new = next(
            n for n, f in enumerate(frames)
            if f["event"] == "message:new" and f["data"]["message"]["id"] == message_id
        )  # fmt: skip
        assert ack < new, [f["event"] for f in frames]


@pytest.mark.skipif(not on_postgres(), reason="needs PostgreSQL: a second writer holds the row")
async def test_frames_reach_a_sender_while_its_send_is_stored_and_its_message_new_after_the_ack(
    ws_connect, alice, bob
):
    room = await database_sync_to_async(session_create)(
        creator=alice, title="general", member_ids=[bob.pk]
    )
    ws = await ws_connect(alice)
    await request(ws, "session:join", {"sessionId": str(room.pk)})
    locked, release = threading.Event(), threading.Event()

    def hold_the_session_row() -> None:
        # Another worker's write in the session: the send waits for the row until it ends.
        try:
            with transaction.atomic():
                ChatSession.objects.select_for_update().get(pk=room.pk)
                locked.set()
                release.wait(10)
        finally:
            locked.set()
            connection.close()

    holder = threading.Thread(target=hold_the_session_row)
    holder.start()
    locked.wait(10)
    try:
        await ws.send_json_to(
            {"event": "message:send", "data": {"sessionId": str(room.pk), "content": "hi"},
             "ref": "send"}
        )  # fmt: skip
        await asyncio.sleep(0.3)  # the send is waiting for the row
        # Another member's frame goes through; a message:new of alice's (as if her send's
        # came early) waits for the ack, and so does what follows it.
        others = encode({"event": "broadcast", "data": {}})
        hers = encode(
            {"event": event_types.MESSAGE_NEW, "data": {"message": {"author": {"id": alice.pk}}}}
        )
        for text in (others, hers, others):
            await get_channel_layer().group_send(
                group_for_session(room.pk), {"type": FRAME_MESSAGE_TYPE, "text": text}
            )

        assert (await ws.receive_json_from(timeout=5))["event"] == "broadcast"
        assert await ws.receive_nothing(timeout=0.3)
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)
    frames = [await ws.receive_json_from(timeout=5) for _ in range(4)]
    assert [f["event"] for f in frames] == ["ack", "message:new", "broadcast", "message:new"]
    ack, new = frames[0], frames[3]
    assert ack["ref"] == "send" and new["data"]["message"]["id"] == ack["data"]["id"]


async def test_a_failing_layer_handler_ends_the_consumer_as_in_channels(ws_app, alice):
    ws = WebsocketCommunicator(ws_app, f"/ws/chat/?token={AccessToken.for_user(alice)}")
    assert (await ws.connect(timeout=5))[0]
    hello = await ws.receive_json_from(timeout=5)
    connection_id = hello["data"]["connectionId"]
    assert connection_id in connection_timers()

    await get_channel_layer().group_send(group_for_user(alice.pk), {"type": "no.such.handler"})

    with pytest.raises(ValueError, match=r"No handler for message type no\.such\.handler"):
        await ws.receive_output(timeout=5)
    assert connection_id not in connection_timers()


async def test_socket_events_and_frames_skip_channels_per_message_hop_through_the_database_thread(
    ws_connect, alice, bob, monkeypatch
):
    # Channels' dispatch awaits close_old_connections (a call in the one shared database
    # thread) before each handler; frames, opening and closing reach the database only
    # through database_sync_to_async, which does that itself, and forwarding a broadcast
    # frame reaches no database at all.
    import channels.consumer

    room = await database_sync_to_async(session_create)(
        creator=alice, title="general", member_ids=[bob.pk]
    )
    hops = []
    original = channels.consumer.aclose_old_connections

    async def counted():
        hops.append(1)
        await original()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    ws = await ws_connect(alice)
    await request(ws, "session:join", {"sessionId": str(room.pk)}, ref="j")
    await ws.send_json_to({"event": "ping", "data": {}, "ref": "p"})
    await ws.send_json_to(
        {"event": "message:send", "data": {"sessionId": str(room.pk), "content": "hi"}, "ref": "s"}
    )
    replies = [await ws.receive_json_from(timeout=5) for _ in range(3)]
    await ws.disconnect()

    assert [r["event"] for r in replies] == ["ack", "ack", "message:new"]
    assert hops == []
