"""Broadcasts leave the database thread at once and reach each group in the order issued."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from chat import broadcaster
from chat.broadcaster import LoopBinding
from chat.events import group_for_user


async def bound(call):
    """Run ``call`` as an ASGI application instance would: behind ``LoopBinding``."""
    result = {}

    async def app(scope, receive, send):
        result["value"] = await call()

    await LoopBinding(app)({"type": "websocket"}, None, None)
    return result["value"]


async def receive_all(layer, channel: str, count: int) -> list:
    return [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(count)]


async def test_a_publish_from_the_database_thread_returns_before_the_send(monkeypatch):
    gate = asyncio.Event()
    sent = []

    class GatedLayer:
        async def group_send(self, group, message):
            await gate.wait()
            sent.append((group, message))

    monkeypatch.setattr(broadcaster, "get_channel_layer", GatedLayer)

    def commit_and_broadcast():
        broadcaster.publish("session-x", {"type": "chat.frame", "n": 1})
        return threading.current_thread()

    thread = await bound(sync_to_async(commit_and_broadcast))

    assert thread is not threading.current_thread()
    assert sent == []
    gate.set()
    for _ in range(100):
        if sent:
            break
        await asyncio.sleep(0.01)
    assert sent == [("session-x", {"type": "chat.frame", "n": 1})]


async def test_frames_reach_a_group_in_the_order_issued_from_thread_and_loop():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("session-order", channel)

    def commit_many():
        for n in range(30):
            broadcaster.publish("session-order", {"type": "chat.frame", "n": n})

    async def commit_then_announce():
        await sync_to_async(commit_many)()
        await broadcaster.send("session-order", {"type": "chat.frame", "n": 30})

    await bound(commit_then_announce)

    assert await receive_all(layer, channel, 31) == list(range(31))


def test_a_publish_with_no_event_loop_sends_before_it_returns():
    layer = get_channel_layer()
    # One loop for the subscription and the read: the Redis pub/sub layer keeps a layer
    # instance per loop, and a channel exists only in the instance that made it.
    loop = asyncio.new_event_loop()
    try:
        channel = loop.run_until_complete(layer.new_channel())
        loop.run_until_complete(layer.group_add("session-sync", channel))

        broadcaster.publish("session-sync", {"type": "chat.frame", "n": 7})

        assert loop.run_until_complete(receive_all(layer, channel, 1)) == [7]
    finally:
        loop.run_until_complete(layer.flush())
        loop.close()


async def test_a_failed_send_reaches_the_async_caller(monkeypatch):
    class BrokenLayer:
        async def group_send(self, group, message):
            raise ConnectionError("redis is down")

    monkeypatch.setattr(broadcaster, "get_channel_layer", BrokenLayer)

    with pytest.raises(ConnectionError, match="redis is down"):
        await broadcaster.send("session-x", {"type": "chat.frame"})


async def test_a_follow_up_runs_on_the_loop_after_its_send_and_in_the_order_issued():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("session-then", channel)
    steps = []

    def follow_up(n):
        async def then():
            steps.append((n, threading.current_thread()))

        return then

    def commit_many():
        for n in range(5):
            broadcaster.publish("session-then", {"type": "chat.frame", "n": n}, then=follow_up(n))

    await bound(sync_to_async(commit_many))
    received = await receive_all(layer, channel, 5)
    for _ in range(100):
        if len(steps) == 5:
            break
        await asyncio.sleep(0.01)

    assert received == list(range(5))
    assert [n for n, _ in steps] == list(range(5))
    assert {thread for _, thread in steps} == {threading.current_thread()}


async def test_a_failed_follow_up_is_logged_and_the_next_send_still_goes(caplog):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("session-then-fails", channel)

    async def broken():
        raise ConnectionError("redis is down")

    def commit_two():
        broadcaster.publish("session-then-fails", {"type": "chat.frame", "n": 1}, then=broken)
        broadcaster.publish("session-then-fails", {"type": "chat.frame", "n": 2})

    await bound(sync_to_async(commit_two))

    assert await receive_all(layer, channel, 2) == [1, 2]
    assert "follow-up of a broadcast to session-then-fails failed" in caplog.text


def test_a_follow_up_with_no_event_loop_runs_before_publish_returns():
    steps = []

    async def then():
        steps.append("queued")

    broadcaster.publish("session-none", {"type": "chat.frame", "n": 1}, then=then)

    assert steps == ["queued"]


async def test_frames_queued_behind_a_send_go_out_together_in_order(monkeypatch):
    gate = asyncio.Event()
    sent = []

    class GatedLayer:
        async def group_send(self, group, message):
            sent.append(message)
            await gate.wait()

    monkeypatch.setattr(broadcaster, "get_channel_layer", GatedLayer)
    followed = []

    def follow(n):
        async def then():
            followed.append(n)

        return then

    async def issue():
        for n in range(4):
            broadcaster.publish(
                "session-b", {"type": "chat.frame", "text": f"t{n}"}, then=follow(n)
            )
            if n == 0:
                await asyncio.sleep(0)  # t0 is on its way: the next ones queue behind it
        # Not combined: it carries more than a text, and what comes after it goes alone too.
        broadcaster.publish("session-b", {"type": "chat.frame", "text": "t4", "exclude": 7})
        broadcaster.publish("session-b", {"type": "session.removed", "text": "t5"})
        await asyncio.sleep(0)
        gate.set()
        for _ in range(100):
            if len(sent) == 4:
                break
            await asyncio.sleep(0.01)

    await bound(issue)

    assert sent == [
        # The first goes at once; the three queued while it was on its way go as one.
        {"type": "chat.frame", "text": "t0"},
        {"type": "chat.frame", "texts": ["t1", "t2", "t3"]},
        {"type": "chat.frame", "text": "t4", "exclude": 7},
        {"type": "session.removed", "text": "t5"},
    ]
    assert followed == [0, 1, 2, 3]


@pytest.mark.django_db(transaction=True)
async def test_a_consumer_sends_each_frame_of_a_combined_message(ws_connect, alice):
    ws = await ws_connect(alice)

    await get_channel_layer().group_send(
        group_for_user(alice.pk), {"type": "chat.frame", "texts": ['{"n":1}', '{"n":2}']}
    )

    assert [await ws.receive_json_from(timeout=5) for _ in range(2)] == [{"n": 1}, {"n": 2}]
