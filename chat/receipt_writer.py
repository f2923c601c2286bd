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
from collections.abc import Callable

from channels.db import database_sync_to_async

from .grouped_calls import GroupedCalls
from .per_loop import PerLoop
from .receipt_updates import receipt_updates
from .services.receipts import Mark, MarkedBatch, receipts_mark_batch

# At most this many receipts in one transaction: it holds their memberships' row locks.
BATCH_MAX = 200


class ReceiptWriter:
    """One event loop's waiting receipts, written in groups with ``write``
    (``receipts_mark_batch``, or what a test counts batches with)."""

    def __init__(self, write: Callable[[list[Mark]], MarkedBatch] = receipts_mark_batch) -> None:
        self.write = database_sync_to_async(write)
        self.calls = GroupedCalls(self._write_group, group_max=BATCH_MAX)

    def submit(self, mark: Mark) -> asyncio.Future:
        return self.calls.submit(mark)

    async def _write_group(self, marks: list[Mark]) -> list:
        written = await self.write(marks)
        receipt_updates().add(written.moved)
        return written.outcomes


_writer = PerLoop(ReceiptWriter)


async def receipt_mark_async(*, user, message_id: uuid.UUID, kind: str) -> dict:
    """Mark ``message_id`` and every earlier message of its session delivered or seen
    (``kind``) for ``user``, written with the receipts waiting then: the ack
    ``{sessionId, messageId, seq, deliveredSeq, seenSeq}`` once committed, or NOT_FOUND."""
    return await _writer().submit(Mark(user.pk, message_id, kind))
