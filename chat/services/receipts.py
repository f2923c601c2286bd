"""Delivery and read receipts as watermarks, written for many marks at once.

``message:delivered`` and ``message:seen`` mark a message and every earlier one in its
session: the member's ``Membership.last_delivered_seq`` / ``last_seen_seq`` move up to the
message's seq, never down (seen implies delivered, so a seen mark moves both). Unread counts
read ``last_seen_seq``; "Seen by" and "Delivered to" are computed from the watermarks.

``receipts_mark_batch`` writes the marks a worker gathered (``chat.receipt_writer``) in one
transaction of at most three statements, whatever their number: one SELECT resolves every
message id, one locks and reads the memberships concerned, one UPDATE sets every watermark
that moves. Receipts are not durable events: they take no seq, are not replayed, and are
never queued for members who are away (``chat.receipt_updates`` broadcasts them).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import NamedTuple

from django.db import transaction

from chatproject.errors import not_found

from ..models import Membership, Message

DELIVERED = "delivered"
SEEN = "seen"


class Mark(NamedTuple):
    """One ``message:delivered`` (``kind`` DELIVERED) or ``message:seen`` (SEEN) of the
    message ``message_id`` (a UUID) by the user ``user_id``."""

    user_id: int
    message_id: uuid.UUID
    kind: str


class Reader(NamedTuple):
    """A member's watermarks after a write."""

    delivered_seq: int
    seen_seq: int


class Watermark(NamedTuple):
    """A membership's id and its watermarks, as locked for a write."""

    pk: int
    reader: Reader


class MarkedBatch(NamedTuple):
    """Per mark, in order, its ack or its error; and per session, the readers whose
    watermarks moved, with their watermarks now."""

    outcomes: list[dict | Exception]
    moved: dict[uuid.UUID, dict[int, Reader]]


class Located(NamedTuple):
    """Where a marked message sits: its session and seq."""

    session_id: uuid.UUID
    seq: int


def receipts_mark_batch(marks: Sequence[Mark]) -> MarkedBatch:
    """Move the watermarks the marks ask for. A mark of a message that is unknown, deleted,
    or in a session its user is not a member of gets NOT_FOUND, alone. Each ack carries its
    member's watermarks after the whole batch."""
    with transaction.atomic():
        located = _locate(marks)
        pairs = {
            (found.session_id, mark.user_id)
            for mark in marks
            if (found := located.get(mark.message_id))
        }
        locked = _watermarks(pairs)
        before = {pair: watermark.reader for pair, watermark in locked.items()}
        after = dict(before)
        for mark in marks:
            found = located.get(mark.message_id)
            pair = (found.session_id, mark.user_id) if found else None
            if pair not in after:
                continue
            delivered, seen = after[pair]
            if mark.kind == SEEN:
                seen = max(seen, found.seq)
            after[pair] = Reader(max(delivered, found.seq), seen)
        moved_pairs = {pair: reader for pair, reader in after.items() if reader != before[pair]}
        if moved_pairs:
            _write({locked[pair].pk: reader for pair, reader in moved_pairs.items()})
    outcomes: list[dict | Exception] = []
    for mark in marks:
        found = located.get(mark.message_id)
        reader = after.get((found.session_id, mark.user_id)) if found else None
        if reader is None:
            outcomes.append(not_found("Message"))
            continue
        outcomes.append(
            {
                "sessionId": str(found.session_id),
                "messageId": str(mark.message_id),
                "seq": found.seq,
                "deliveredSeq": reader.delivered_seq,
                "seenSeq": reader.seen_seq,
            }
        )
    moved: dict[uuid.UUID, dict[int, Reader]] = {}
    for (session_id, user_id), reader in moved_pairs.items():
        moved.setdefault(session_id, {})[user_id] = reader
    return MarkedBatch(outcomes, moved)


def _locate(marks: Sequence[Mark]) -> dict[uuid.UUID, Located]:
    """Per message id of the marks, in one SELECT: where it sits, for messages not deleted."""
    ids = {mark.message_id for mark in marks}
    rows = Message.objects.filter(pk__in=ids, is_deleted=False).values_list(
        "pk", "session_id", "seq"
    )
    return {pk: Located(session_id, seq) for pk, session_id, seq in rows}


def _watermarks(pairs: set[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], Watermark]:
    """The watermarks of the memberships ``pairs`` name (those that exist), locked until
    commit, in one order for every batch: two batches locking rows in opposite orders would
    deadlock. Read by the pairs' sessions and users (two IN lists an index serves) and kept to
    the pairs here: an OR of one condition per pair costs Django's compiler and the database
    more than the rows it would spare, and a few rows more are locked for a moment."""
    if not pairs:
        return {}
    rows = (
        Membership.objects.select_for_update()
        .filter(session_id__in={s for s, _ in pairs}, user_id__in={u for _, u in pairs})
        .order_by("pk")
        .values_list("pk", "session_id", "user_id", "last_delivered_seq", "last_seen_seq")
    )
    return {
        (session_id, user_id): Watermark(pk, Reader(delivered, seen))
        for pk, session_id, user_id, delivered, seen in rows
        if (session_id, user_id) in pairs
    }


# Every moved membership's two watermarks in one statement whatever their number, joined to a
# VALUES list of (membership id, delivered, seen): the ORM's ``bulk_update`` would write a
# CASE with a branch per row, which the database evaluates for every row it updates. The
# rows are locked (``_watermarks``), so their new values are set as they are.
_WRITE_SQL = (
    "UPDATE chat_membership SET last_delivered_seq = v.column2, last_seen_seq = v.column3 "
    "FROM (VALUES {rows}) AS v WHERE chat_membership.id = v.column1"
)


def _write(moved: dict[int, Reader]) -> None:
    """Set the watermarks of the memberships ``moved`` names by id."""
    params = [value for pk, reader in moved.items() for value in (pk, *reader)]
    sql = _WRITE_SQL.format(rows=", ".join(["(%s, %s, %s)"] * len(moved)))
    with transaction.get_connection().cursor() as cursor:
        cursor.execute(sql, params)
