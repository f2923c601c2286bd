"""The pub/sub channel layer's per-channel mailbox (``chatproject.pubsub_layer``): a FIFO with
one reader, and, against a real Redis, the layer delivering through it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from django.conf import settings

from chatproject.pubsub_layer import Mailbox, MailboxPubSubChannelLayer


async def test_items_come_out_in_the_order_they_went_in():
    box = Mailbox()
    for item in (b"1", b"2", b"3"):
        box.put_nowait(item)
    assert [await box.get() for _ in range(3)] == [b"1", b"2", b"3"]
    assert box.qsize() == 0


async def test_a_waiting_reader_is_woken_by_the_next_item():
    box = Mailbox()
    reader = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    assert not reader.done()
    box.put_nowait(b"hello")
    assert await asyncio.wait_for(reader, 1) == b"hello"


async def test_a_reader_cancelled_as_it_wakes_loses_nothing():
    box = Mailbox()
    reader = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    box.put_nowait(b"kept")
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert await asyncio.wait_for(box.get(), 1) == b"kept"


async def test_a_second_concurrent_reader_is_refused():
    box = Mailbox()
    first = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await box.get()
    first.cancel()


async def test_a_listener_is_called_per_item_and_pops_them_in_order():
    box = Mailbox()
    calls = []
    box.listen(lambda: calls.append(box.qsize()))
    box.put_nowait(b"1")
    box.put_nowait(b"2")
    assert calls == [1, 2]
    assert [box.pop(), box.pop(), box.pop()] == [b"1", b"2", None]


def pubsub_layer(prefix: str | None = None) -> MailboxPubSubChannelLayer:
    return MailboxPubSubChannelLayer(
        hosts=[{"address": settings.REDIS_URL}],
        prefix=prefix or f"test-mailbox-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture
async def layer():
    """A pub/sub layer on the test Redis, under a prefix of its own, flushed afterwards."""
    layer = pubsub_layer()
    yield layer
    await layer.flush()


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis")
async def test_the_layer_delivers_channel_and_group_messages_through_mailboxes(layer):
    channel = await layer.new_channel()
    assert isinstance(layer._get_layer().channels[channel], Mailbox)
    await layer.group_add("room", channel)
    await layer.send(channel, {"type": "direct", "n": 1})
    await layer.group_send("room", {"type": "grouped", "n": 2})
    received = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(2)]
    # The group message is delivered here at once, the direct one through Redis.
    assert sorted(m["type"] for m in received) == ["direct", "grouped"]
    # A reader that goes away takes its channel with it, as with channels-redis' queue.
    reader = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0.05)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert channel not in layer._get_layer().channels


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis")
async def test_a_listening_reader_is_called_back_and_discards_its_channel(layer):
    channel = await layer.new_channel()
    arrived = asyncio.Event()
    layer.listen(channel, arrived.set)
    await layer.group_add("room", channel)
    await layer.group_send("room", {"type": "one"})
    await layer.send(channel, {"type": "two"})
    await asyncio.wait_for(arrived.wait(), 5)
    received = []
    while len(received) < 2:
        message = layer.receive_nowait(channel)
        if message is None:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 5)
            continue
        received.append(message["type"])
    assert received == ["one", "two"] and layer.receive_nowait(channel) is None
    await layer.discard_channel(channel)
    assert channel not in layer._get_layer().channels
    assert layer.receive_nowait(channel) is None


async def _drain(layer, channel, wait_s: float = 0.3) -> list:
    """Everything that reaches ``channel`` within ``wait_s``."""
    received = []
    while True:
        try:
            received.append(await asyncio.wait_for(layer.receive(channel), wait_s))
        except TimeoutError:
            return received


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis")
async def test_a_group_message_reaches_each_member_once_here_and_in_other_processes():
    # Two layers on one prefix are two workers of one platform.
    prefix = f"test-mailbox-{uuid.uuid4().hex[:8]}"
    here, there = pubsub_layer(prefix), pubsub_layer(prefix)
    try:
        mine, theirs = await here.new_channel(), await there.new_channel()
        await here.group_add("room", mine)
        await there.group_add("room", theirs)

        sending = asyncio.create_task(here.group_send("room", {"type": "a"}))
        await asyncio.sleep(0)
        # This worker's member has it before Redis has even answered the publish.
        assert here.receive_nowait(mine) == {"type": "a"}
        await sending
        await there.group_send("room", {"type": "b"})

        # Each member gets each message once (the copy Redis sends back to its sender is
        # dropped); across workers there is no order, as there was none before.
        assert [m["type"] for m in await _drain(here, mine)] == ["b"]
        assert sorted(m["type"] for m in await _drain(there, theirs)) == ["a", "b"]
    finally:
        await here.flush()
        await there.flush()


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis")
async def test_a_group_message_is_offered_decoded_to_a_direct_reader_before_its_mailbox():
    # Two workers: the group message reaches ``there`` through Redis, ``here`` at once.
    prefix = f"test-mailbox-{uuid.uuid4().hex[:8]}"
    here, there = pubsub_layer(prefix), pubsub_layer(prefix)
    try:
        taken = {"here": [], "there": []}
        channels = {}
        for name, layer in (("here", here), ("there", there)):
            channel = channels[name] = await layer.new_channel()
            layer.listen(channel, lambda: None, lambda m, name=name: taken[name].append(m) or True)
            await layer.group_add("room", channel)

        await here.group_send("room", {"type": "chat.frame", "text": "hello"})
        for _ in range(50):
            if taken["there"]:
                break
            await asyncio.sleep(0.05)

        frame = {"type": "chat.frame", "text": "hello"}
        assert taken == {"here": [frame], "there": [frame]}
        assert here.receive_nowait(channels["here"]) is None, "taken, so not queued too"
        assert there.receive_nowait(channels["there"]) is None
    finally:
        await here.flush()
        await there.flush()


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis")
async def test_a_declined_message_and_any_behind_a_waiting_one_are_queued_in_order(layer):
    channel = await layer.new_channel()
    offered = []
    # The reader declines what is not a frame, and takes frames.
    layer.listen(channel, lambda: None, lambda m: offered.append(m["n"]) or m["n"] != 1)
    await layer.group_add("room", channel)

    for n in (1, 2, 3):
        await layer.group_send("room", {"type": "chat.frame", "n": n})

    # 1 was declined and waits in the mailbox: 2 and 3 may not overtake it, so they are
    # queued behind it without being offered.
    assert offered == [1]
    assert [layer.receive_nowait(channel)["n"] for _ in range(3)] == [1, 2, 3]
    await layer.group_send("room", {"type": "chat.frame", "n": 4})
    assert offered == [1, 4] and layer.receive_nowait(channel) is None


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis")
async def test_a_failing_direct_reader_gets_the_message_in_its_mailbox_and_others_still_do(layer):
    broken, fine = await layer.new_channel(), await layer.new_channel()
    taken = []

    def fail(message):
        raise RuntimeError("boom")

    layer.listen(broken, lambda: None, fail)
    layer.listen(fine, lambda: None, lambda m: taken.append(m) or True)
    for channel in (broken, fine):
        await layer.group_add("room", channel)

    await layer.group_send("room", {"type": "chat.frame", "text": "x"})

    assert layer.receive_nowait(broken) == {"type": "chat.frame", "text": "x"}
    assert taken == [{"type": "chat.frame", "text": "x"}]
