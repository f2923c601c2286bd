"""channels-redis' pub/sub channel layer, with a lighter mailbox per channel.

Why: the layer keeps, for each channel of the process (one per open WebSocket), an
``asyncio.Queue`` it fills from its Redis subscription and a consumer reads with ``receive``.
An empty ``asyncio.Queue`` is four deques and an ``asyncio.Event``, 3.2 KiB, the largest
single allocation of an idle connection (docs/benchmarks.md, "Idle connections"). A channel
here has one reader, the consumer, and is empty nearly all its life; ``Mailbox`` holds
nothing but two empty slots then, and a deque only while messages wait.

How: channels-redis has no setting for the queue, so the two classes below override the two
methods that make it (``_get_layer`` builds the per-loop layer, ``_subscribe_to_channel``
makes the queue), each a copy of the original but for the class it names; what the layer
does with a mailbox (``put_nowait`` from its Redis reader, ``await get()`` in ``receive``)
is unchanged. ``receive`` skips the proxy coroutine the original waits in.

Local delivery first (``group_send``): the original publishes a group message to Redis and
delivers it to this process's members of the group only when Redis sends it back, a round
trip and a parse later, on every hop of every broadcast (a room stream's first chunk makes
two). Here the members on this event loop get it at once, and the copy Redis sends back is
recognised by a tag of this loop's layer and dropped (``OriginShard``); other processes (and
other loops of this one) strip the tag and deliver as before. A message to one channel
(``send``) still goes through Redis: the health check proves the round trip with it.

Push delivery (``listen``, ``receive_nowait``, ``discard_channel``): a reader waiting in
``receive`` is a suspended task, with its coroutines and a future, for every idle socket.
The gateway's consumer (``chat.gateway_base``) asks to be called back instead and runs a
task only while it has messages to dispatch. ``tests/chatproject/test_pubsub_layer.py``
pins all this against the installed channels-redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close

logger = logging.getLogger(__name__)


class Mailbox:
    """A FIFO with one reader: what ``asyncio.Queue`` is to the layer, without a capacity,
    ``join`` or concurrent readers, none of which the layer uses. The reader either waits
    in ``get`` or, once it has called ``listen``, is called back as items arrive."""

    __slots__ = ("_items", "_listener", "_waiter", "direct")

    def __init__(self) -> None:
        self._items: deque | None = None
        self._waiter: asyncio.Future | None = None
        self._listener = None
        self.direct = None

    def put_nowait(self, item) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        if self._listener is not None:
            self._listener()
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def listen(self, callback, direct=None) -> None:
        """Call ``callback()`` (on the loop, with no arguments) as each item arrives. A
        ``direct(message)`` is offered a group message first, decoded, while nothing waits
        here: True if it took it, False to have it queued as any other."""
        self._listener = callback
        self.direct = direct

    def pop(self):
        """The oldest item, or None if there is none."""
        if not self._items:
            return None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item

    async def get(self):
        """The oldest item, once there is one. An item stays here until it is returned, so
        a reader cancelled while waking up loses nothing."""
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("A mailbox has one reader at a time.")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.pop()

    def qsize(self) -> int:
        return len(self._items) if self._items else 0


# A group message on Redis starts with the tag of the loop layer that published it.
ORIGIN_BYTES = 8


class OriginShard(RedisSingleShardConnection):
    """A shard connection that drops the group messages its own layer published (delivered
    to its members already) and strips the tag from the others'."""

    def _receive_message(self, message):
        if message is None:
            return
        name = message["channel"]
        data = message["data"]
        if isinstance(name, bytes):
            name = name.decode()
        layer = self.channel_layer
        if name in layer.channels:
            layer.channels[name].put_nowait(data)
        elif name in layer.groups:
            if data[:ORIGIN_BYTES] == layer.origin:
                return
            layer.deliver_to_group(name, data[ORIGIN_BYTES:])


class MailboxLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.origin = os.urandom(ORIGIN_BYTES)
        self._shards = [OriginShard(shard.host, self) for shard in self._shards]

    async def group_send(self, group, message):
        group_channel = self._get_group_channel_name(group)
        data = self.channel_layer.serialize(message)
        self.deliver_to_group(group_channel, data)
        await self._get_shard(group_channel).publish(group_channel, self.origin + data)

    def deliver_to_group(self, group_channel: str, data: bytes) -> None:
        """Hand ``data`` to each of this loop's members of the group: to its reader's
        ``direct`` if it has one and takes it (decoded once for all of them), else to its
        mailbox."""
        message = None
        for channel in self.groups.get(group_channel, ()):
            if (mailbox := self.channels.get(channel)) is None:
                continue
            if mailbox.direct is not None and not mailbox.qsize():
                if message is None:
                    message = self.channel_layer.deserialize(data)
                try:
                    if mailbox.direct(message):
                        continue
                except Exception:
                    # Called from the broadcaster's or the Redis reader's task: one reader's
                    # failure must not stop the others' delivery. Its mailbox gets it.
                    logger.exception("a direct reader of %s failed", channel)
            mailbox.put_nowait(data)

    async def _subscribe_to_channel(self, channel):
        self.channels[channel] = Mailbox()
        shard = self._get_shard(channel)
        await shard.subscribe(channel)

    def listen(self, channel, callback, direct=None) -> None:
        self.channels[channel].listen(callback, direct)

    def receive_nowait(self, channel):
        mailbox = self.channels.get(channel)
        message = mailbox.pop() if mailbox is not None else None
        return None if message is None else self.channel_layer.deserialize(message)

    async def discard_channel(self, channel) -> None:
        if self.channels.pop(channel, None) is None:
            return
        try:
            await self._get_shard(channel).unsubscribe(channel)
        except Exception:
            # As channels-redis does when a reader of its own leaves: the channel is gone
            # here either way, and the cause is logged, not raised at a closing socket.
            logger.exception("could not unsubscribe channel %s", channel)


class MailboxPubSubChannelLayer(RedisPubSubChannelLayer):
    """The ``CHANNEL_LAYER=pubsub`` backend (``chatproject.settings``)."""

    def receive(self, channel):
        """The per-loop layer's ``receive``, handed out as it is: the original reaches it
        through ``__getattr__`` and a proxy coroutine, one more suspended frame for every
        socket waiting on its channel."""
        return self._get_layer().receive(channel)

    # --- push delivery, for readers that would rather not wait in a task of their own ------

    def listen(self, channel, callback, direct=None) -> None:
        """Call ``callback()`` on the event loop whenever a message arrives on ``channel``
        (made by ``new_channel``); the reader then takes them with ``receive_nowait``.
        ``direct(message)``, if given, is offered each group message first while nothing
        waits for the reader, and returns True if it dealt with it there and then: a
        broadcast to a big room is then handled without a task per member."""
        self._get_layer().listen(channel, callback, direct)

    def receive_nowait(self, channel):
        """The oldest message of a listened-to ``channel``, or None if none is waiting."""
        return self._get_layer().receive_nowait(channel)

    async def discard_channel(self, channel) -> None:
        """The reader of ``channel`` is done with it: drop it and its Redis subscription
        (what ``receive`` does when its reader is cancelled)."""
        await self._get_layer().discard_channel(channel)

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        try:
            layer = self._layers[loop]
        except KeyError:
            layer = MailboxLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer
