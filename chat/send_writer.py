"""``message:send`` requests of one event loop, stored in batches: what a WebSocket send
awaits instead of a database call of its own.

A worker runs every ORM call through Channels' ``database_sync_to_async``: one thread, one
call at a time. A send stored alone is a transaction of several round trips, so the
worker's sends queued behind each other in that thread and a worker stored a few hundred a
second. Here each loop has a writer: a request joins its queue, and one task takes
everything waiting at that moment and stores it with ``messages_send_batch`` (one
transaction, one ``database_sync_to_async`` call), settles each request's future with its
own message or error, then takes what arrived meanwhile. A lone send goes at once; under
load a batch costs about what one send did, and the batches grow with the load.

Chosen over several connections in flight (``sync_to_async(thread_sensitive=False)`` on a
small pool): those still pay a transaction per message, their commits would reach a
session's group out of seq order unless reordered, and a thread pool next to the ORM's
thread hung connects waiting for a pooled connection when it was tried (docs/scaling.md).
Batches keep one thread, so a session's broadcasts follow its seqs as before: they are sent
on commit, in seq order, and the batches of a loop run one after the other in submission
order.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque

from channels.db import database_sync_to_async

from .broadcaster import bind_loop
from .models import Message
from .services.message_batch import SendRequest, messages_send_batch

# At most this many sends in one transaction: a batch holds its sessions' row locks, and
# the requests that come after it wait for all of it.
BATCH_MAX = 100


class _Writer:
    """One event loop's waiting sends, stored by one task while there are any."""

    def __init__(self) -> None:
        self.waiting: deque[tuple[SendRequest, asyncio.Future]] = deque()
        self.task: asyncio.Task | None = None

    def submit(self, request: SendRequest) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self.waiting.append((request, done))
        if self.task is None:
            self.task = loop.create_task(self._drain())
        return done

    async def _drain(self) -> None:
        # The broadcasts that follow a commit go out from this loop (``chat.broadcaster``).
        bind_loop()
        batch: list[tuple[SendRequest, asyncio.Future]] = []
        try:
            while self.waiting:
                batch = [self.waiting.popleft() for _ in range(min(BATCH_MAX, len(self.waiting)))]
                try:
                    outcomes = await database_sync_to_async(messages_send_batch)(
                        [request for request, _ in batch]
                    )
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                for (_, done), outcome in zip(batch, outcomes, strict=True):
                    _settle(done, outcome)
                batch = []
        finally:
            self.task = None
            # Cancelled with the loop: nobody may wait forever on a send that won't happen.
            for _, done in [*batch, *self.waiting]:
                done.cancel()
            self.waiting.clear()


def _settle(done: asyncio.Future, outcome) -> None:
    if done.done():  # the caller went away; what it sent is stored all the same
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)


_writers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_writers_lock = threading.Lock()


def _writer() -> _Writer:
    loop = asyncio.get_running_loop()
    with _writers_lock:
        writer = _writers.get(loop)
        if writer is None:
            writer = _writers[loop] = _Writer()
        return writer


async def message_send_async(
    *, author, session_id, content: str, parent_id=None, client_id: str | None = None
) -> Message:
    """``message_send`` from the event loop, stored with the other sends waiting then: the
    message, the first one sent with ``client_id``, or ``message_send``'s error."""
    request = SendRequest(author, session_id, content, parent_id, client_id)
    return await _writer().submit(request)
