"""``message:send`` requests of one event loop, stored in batches: what a WebSocket send
awaits instead of a database call of its own.

A worker runs every ORM call through Channels' ``database_sync_to_async``: one thread, one
call at a time. A send stored alone is a transaction of several round trips, so the
worker's sends queued behind each other in that thread and a worker stored a few hundred a
second. Here each loop has a writer: a request joins its queue, and one task takes
everything waiting at that moment and stores it with ``messages_send_batch`` (one
transaction, one call into the writer's thread), settles each request's future with its
own message or error, then takes what arrived meanwhile. A lone send goes at once; under
load a batch costs about what one send did, and the batches grow with the load.

The batches run in a thread of the writer's own (``sync_to_async`` with a one-thread
executor, as asgiref documents), not in the thread Channels' ``database_sync_to_async``
shares with every other ORM call of the worker: a batch no longer queues behind the other
calls, and the thread keeps its database connection from one batch to the next while sends
keep coming, instead of taking it from the pool, with the pool's health check (a round
trip), and giving it back around every batch. When the queue runs dry the connection goes
back to the pool (``close_old_connections``), so an idle connection is checked before its
next use as every other is; one an outage broke under load is dropped by Django when its
transaction fails to roll back, and the batch's one-by-one retry takes a fresh one.

Chosen over several connections in flight (``sync_to_async(thread_sensitive=False)`` on a
pool of threads): those still pay a transaction per message, their commits would reach a
session's group out of seq order unless reordered, and such a pool hung connects waiting
for a pooled connection when it was tried (each of its threads kept a connection; here one
thread per loop holds at most one, and only while there is work). The batches of a loop
run one after the other in submission order, so a session's sends are broadcast on commit
in seq order. Another write in the session (an edit, from the ORM's thread) is ordered
against them by the session row's lock, and its broadcast follows its own commit; a client
that sees a seq out of order fills the gap by seq, as with several workers.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.db import close_old_connections

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
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="send-writer")
        self.store = sync_to_async(messages_send_batch, thread_sensitive=False, executor=thread)
        self.release = sync_to_async(close_old_connections, thread_sensitive=False, executor=thread)

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
                while self.waiting:
                    count = min(BATCH_MAX, len(self.waiting))
                    batch = [self.waiting.popleft() for _ in range(count)]
                    try:
                        outcomes = await self.store([request for request, _ in batch])
                    except Exception as exc:
                        outcomes = [exc] * len(batch)
                    for (_, done), outcome in zip(batch, outcomes, strict=True):
                        _settle(done, outcome)
                    batch = []
                # Dry: the connection goes back to the pool (sends that arrive meanwhile
                # are taken next, by this task).
                await self.release()
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
