"""The gateway's own consumer loop (``GatewayConsumer.__call__``): one message at a time
from the socket and the channel layer, as in Channels, and a handler's failure ends the
consumer as it does in Channels, leaving nothing behind in the worker's timers."""

import asyncio

import orjson
import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

from chat import consumer as consumer_module
from chat.events import FRAME_MESSAGE_TYPE, group_for_user
from chat.timers import connection_timers

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


@pytest.mark.skipif(not settings.REDIS_URL, reason="the pub/sub layer calls back (needs Redis)")
async def test_an_idle_socket_keeps_no_task_for_the_layer_and_leaves_no_channel(ws_connect, alice):
    layer = get_channel_layer()
    await ws_connect(alice)  # the worker's own tasks (timers, the layer's reader) start
    channels_before = set(layer._get_layer().channels)
    tasks_before = len(asyncio.all_tasks())
    ws = await ws_connect(alice)
    # The application task only: nothing waits on the layer while no message comes.
    assert len(asyncio.all_tasks()) == tasks_before + 1
    frame = orjson.dumps({"event": "broadcast", "data": {}}).decode()
    await layer.group_send(group_for_user(alice.pk), {"type": FRAME_MESSAGE_TYPE, "text": frame})
    assert (await ws.receive_json_from(timeout=5))["event"] == "broadcast"
    await ws.disconnect()
    assert set(layer._get_layer().channels) == channels_before


async def test_socket_events_skip_channels_per_message_hop_through_the_database_thread(
    ws_connect, alice, room, monkeypatch
):
    # Channels' dispatch awaits close_old_connections (a call in the one shared database
    # thread) before each handler; frames, opening and closing reach the database only
    # through database_sync_to_async, which does that itself.
    import channels.consumer

    hops = []
    original = channels.consumer.aclose_old_connections

    async def counted():
        hops.append(1)
        await original()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    ws = await ws_connect(alice)
    await ws.send_json_to({"event": "ping", "data": {}, "ref": "p"})
    await ws.send_json_to(
        {"event": "message:send", "data": {"sessionId": str(room.pk), "content": "hi"}, "ref": "s"}
    )
    replies = [await ws.receive_json_from(timeout=5) for _ in range(2)]
    await ws.disconnect()

    assert [(r["event"], r["ref"]) for r in replies] == [("ack", "p"), ("ack", "s")]
    assert hops == []
