"""Channel-layer sends that never hold the database thread, and reach a group in order.

A write commits in the thread that runs Channels' ``database_sync_to_async`` calls (or
Django's ``sync_to_async`` for a view under ASGI): one thread per process, shared by every
connection. Broadcasting from there with ``async_to_sync(group_send)`` parks that thread until
the event loop has published the frame, so every write of the process waited behind every
broadcast (at fan-out saturation about a fifth of the thread's time).

Instead, the ASGI application records its event loop in a context variable (``bind_loop``),
which those threads inherit. ``publish`` hands the send to that loop and returns at once. On
the loop, each group has a FIFO drained by one task that lives only while the group has
something to send: frames reach a group in the order they were issued (a commit's
``message:new`` before the ``stream:start`` an async caller sends after it), while different
groups do not wait for each other. With no running loop (management commands, WSGI, plain
sync code) ``publish`` sends before it returns, as ``async_to_sync`` does.

A publish may carry a follow-up coroutine (``then``), run on the loop right after its send,
in the same FIFO: the offline queue of a session's frames is filled there, with async
Redis, so that step no longer holds the database thread either, and frames enter the
queues in the order they were issued.

Sends queue up for a group while the one before them is on its way (a Redis round trip).
A run of queued messages of one type that carry nothing but a ``text`` then goes out as one
message with their ``texts``, in order (``chat.events.frame_texts`` reads either): under
load one channel-layer send, one delivery to each consumer and one socket write each carry
several frames, and with none queued a frame goes out alone, at once.

The channel layer is at-most-once anyway: a frame lost here is one a client replays by seq.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

FollowUp = Callable[[], Awaitable[None]]

# At most this many queued messages go out as one channel-layer message. Each consumer
# writes a batch's frames in one turn of the event loop, so a bigger batch lengthens the turn
# and delays everything else waiting for it. In a room of 100 (bench/fanout.py, 22 Nov), 3
# carried 1.7x the messages/s of no batching, with a p99 latency of 23-32 ms at half that
# rate (15-20 ms without); 8 carried 2.4x, with a p99 over 100 ms.
BATCH_MAX = 3

_bound_loop: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar(
    "broadcast_loop", default=None
)


def bind_loop() -> None:
    """Called by an application instance (an HTTP request, a WebSocket) as it starts: the
    code it runs, including the sync code it calls through ``sync_to_async``, then knows
    which event loop sends its broadcasts."""
    _bound_loop.set(asyncio.get_running_loop())


class LoopBinding:
    """ASGI middleware that calls ``bind_loop`` for the application it wraps."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        bind_loop()
        return await self.app(scope, receive, send)


class _GroupQueues:
    """One event loop's pending sends: a FIFO per group, each drained by its own task."""

    def __init__(self) -> None:
        self.pending: dict[str, deque] = {}
        # The loop keeps only weak references to tasks.
        self.tasks: set[asyncio.Task] = set()

    def put(
        self, group: str, message: dict, done: asyncio.Future | None, then: FollowUp | None = None
    ) -> None:
        queue = self.pending.get(group)
        if queue is None:
            queue = self.pending[group] = deque()
            task = asyncio.get_running_loop().create_task(self._drain(group, queue))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        queue.append((message, done, then))

    async def _drain(self, group: str, queue: deque) -> None:
        layer = get_channel_layer()
        try:
            while queue:
                batch = _batch(queue)
                try:
                    await layer.group_send(group, _combined([item[0] for item in batch]))
                except Exception as exc:
                    if any(done is None for _message, done, _then in batch):
                        logger.warning("broadcast to %s failed; clients replay by seq", group,
                                       exc_info=True)  # fmt: skip
                    for _message, done, _then in batch:
                        _settle(done, exc)
                else:
                    for _message, done, _then in batch:
                        _settle(done, None)
                for _message, _done, then in batch:
                    if then is not None:
                        await _follow_up(group, then)
                for _ in batch:
                    queue.popleft()
        finally:
            if self.pending.get(group) is queue:
                del self.pending[group]
            # Cancelled with the loop: nobody may wait forever on a send that won't happen.
            for _message, done, _then in queue:
                _settle(done, None)


def _batch(queue: deque) -> list[tuple]:
    """The sends at the head of ``queue`` that go out as one: the first, and the messages
    after it that carry only a ``text`` of the same type, up to ``BATCH_MAX``."""
    first = queue[0]
    batch = [first]
    if not _combinable(first[0]):
        return batch
    for item in itertools.islice(queue, 1, BATCH_MAX):
        if not (_combinable(item[0]) and item[0]["type"] == first[0]["type"]):
            break
        batch.append(item)
    return batch


def _combinable(message: dict) -> bool:
    return message.keys() == {"type", "text"}


def _combined(messages: list[dict]) -> dict:
    if len(messages) == 1:
        return messages[0]
    return {"type": messages[0]["type"], "texts": [message["text"] for message in messages]}


async def _follow_up(group: str, then: FollowUp) -> None:
    try:
        await then()
    except Exception:
        logger.warning("follow-up of a broadcast to %s failed", group, exc_info=True)


def _settle(done: asyncio.Future | None, exc: Exception | None) -> None:
    if done is None or done.done():
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)


_queues_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_queues_lock = threading.Lock()


def _queues(loop: asyncio.AbstractEventLoop) -> _GroupQueues:
    with _queues_lock:
        queues = _queues_by_loop.get(loop)
        if queues is None:
            queues = _queues_by_loop[loop] = _GroupQueues()
        return queues


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def publish(group: str, message: dict[str, Any], *, then: FollowUp | None = None) -> None:
    """Send a channel-layer message to a group from sync code, without waiting for it, and
    then await ``then()`` (if given) on the loop.

    Failures are logged, never raised: what a broadcast reports is already committed.
    """
    running = _running_loop()
    loop = _bound_loop.get() or running
    if loop is not None and not loop.is_closed():
        if loop is running:
            _queues(loop).put(group, message, None, then)
            return
        try:
            loop.call_soon_threadsafe(_queues(loop).put, group, message, None, then)
            return
        except RuntimeError:
            pass  # The loop closed meanwhile: send from here instead.
    async_to_sync(_send_here)(group, message, then)


async def _send_here(group: str, message: dict[str, Any], then: FollowUp | None) -> None:
    layer = get_channel_layer()
    if layer is not None:
        try:
            await layer.group_send(group, message)
        except Exception:
            logger.warning("broadcast to %s failed; clients replay by seq", group, exc_info=True)
    if then is not None:
        await _follow_up(group, then)


async def send(group: str, message: dict[str, Any]) -> None:
    """Send a channel-layer message to a group from async code, after every send already
    queued for that group; raises what the channel layer raises."""
    done = asyncio.get_running_loop().create_future()
    _queues(asyncio.get_running_loop()).put(group, message, done)
    await done


_soon: set[asyncio.Task] = set()


def run_soon(function: Callable[..., Awaitable[Any]], *args: Any) -> bool:
    """Run ``function(*args)`` as a task on the bound event loop (``bind_loop``), from sync
    code or from the loop, without waiting for it; its failures are logged. False, and
    nothing run, where no loop is bound (a management command, plain sync code): a task
    there would die with the temporary loop ``async_to_sync`` makes."""
    running = _running_loop()
    loop = _bound_loop.get() or running
    if loop is None or loop.is_closed():
        return False

    def start() -> None:
        # A context of its own: the caller's (a database thread's, inherited by a callback
        # it schedules) would make the task's own ``database_sync_to_async`` calls refuse to
        # run, as if that thread were waiting for them ("would deadlock").
        task = loop.create_task(_logged(function, *args), context=contextvars.Context())
        _soon.add(task)
        task.add_done_callback(_soon.discard)

    if loop is running:
        start()
        return True
    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:
        return False  # The loop closed meanwhile.
    return True


async def _logged(function: Callable[..., Awaitable[Any]], *args: Any) -> None:
    try:
        await function(*args)
    except Exception:
        logger.exception("%s failed", getattr(function, "__qualname__", function))
