"""``message:delivered`` and ``message:seen`` of one event loop, written together: what a
receipt handler awaits instead of a database call of its own (group commit).

A receipt joins the loop's queue; one task takes everything waiting at that moment, writes
it with ``receipts_mark_batch`` (one ``database_sync_to_async`` call, one transaction, a
fixed number of statements whatever the batch), settles each receipt's future with its ack
or error, hands the moved watermarks to ``chat.receipt_updates``, then takes what arrived
meanwhile. No fixed delay: a receipt alone is written at once, and under load the batches
grow with the load while each costs about what one receipt did.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections import deque
from collections.abc import Callable

from channels.db import database_sync_to_async

from .receipt_updates import receipt_updates
from .services.receipts import Mark, MarkedBatch, receipts_mark_batch

# At most this many receipts in one transaction: it holds their memberships' row locks.
BATCH_MAX = 200


class ReceiptWriter:
    """One event loop's waiting receipts, written by one task while there are any, with
    ``write`` (``receipts_mark_batch``, or what a test counts batches with)."""

    def __init__(self, write: Callable[[list[Mark]], MarkedBatch] = receipts_mark_batch) -> None:
        self.waiting: deque[tuple[Mark, asyncio.Future]] = deque()
        self.task: asyncio.Task | None = None
        self.write = database_sync_to_async(write)

    def submit(self, mark: Mark) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self.waiting.append((mark, done))
        if self.task is None:
            self.task = loop.create_task(self._drain())
        return done

    async def _drain(self) -> None:
        batch: list[tuple[Mark, asyncio.Future]] = []
        try:
            while self.waiting:
                count = min(BATCH_MAX, len(self.waiting))
                batch = [self.waiting.popleft() for _ in range(count)]
                try:
                    written = await self.write([mark for mark, _ in batch])
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                else:
                    outcomes = written.outcomes
                    receipt_updates().add(written.moved)
                for (_, done), outcome in zip(batch, outcomes, strict=True):
                    _settle(done, outcome)
                batch = []
        finally:
            self.task = None
            # Cancelled with the loop: nobody may wait forever on a write that won't happen.
            for _, done in [*batch, *self.waiting]:
                done.cancel()
            self.waiting.clear()


def _settle(done: asyncio.Future, outcome) -> None:
    if done.done():  # the caller went away; the receipt is written all the same
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)


_writers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _writer() -> ReceiptWriter:
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = ReceiptWriter()
    return writer


async def receipt_mark_async(*, user, message_id: uuid.UUID, kind: str) -> dict:
    """Mark ``message_id`` and every earlier message of its session delivered or seen
    (``kind``) for ``user``, written with the receipts waiting then: the ack
    ``{sessionId, messageId, seq, deliveredSeq, seenSeq}`` once committed, or NOT_FOUND."""
    return await _writer().submit(Mark(user.pk, message_id, kind))
