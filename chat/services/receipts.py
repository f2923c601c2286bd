"""Delivery and read receipts as watermarks, written for many marks at once.

``message:delivered`` and ``message:seen`` mark a message and every earlier one in its
session: the member's ``Membership.last_delivered_seq`` / ``last_seen_seq`` move up to the
message's seq, never down (seen implies delivered, so a seen mark moves both). Unread counts
read ``last_seen_seq``; "Seen by" and "Delivered to" are computed from the watermarks.

``receipts_mark_batch`` writes the marks a worker gathered (``chat.receipt_writer``) in one
transaction of at most three statements, whatever their number: one SELECT resolves every
message id, one locks and reads the memberships concerned, one UPDATE moves every watermark
that moves. Receipts are not durable events: they take no seq, are not replayed, and are
never queued for members who are away (``chat.receipt_updates`` broadcasts them).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import NamedTuple

from django.db import models, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Greatest

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
        before = _watermarks(pairs)
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
            _write(moved_pairs)
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


def _watermarks(pairs: set[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], Reader]:
    """The watermarks of the memberships ``pairs`` name (those that exist), locked until
    commit, in one order for every batch: two batches locking rows in opposite orders would
    deadlock."""
    if not pairs:
        return {}
    which = Q()
    for session_id, user_id in pairs:
        which |= Q(session_id=session_id, user_id=user_id)
    rows = (
        Membership.objects.select_for_update()
        .filter(which)
        .order_by("pk")
        .values_list("session_id", "user_id", "last_delivered_seq", "last_seen_seq")
    )
    return {(session_id, user_id): Reader(d, s) for session_id, user_id, d, s in rows}


def _write(moved: dict[tuple[uuid.UUID, int], Reader]) -> None:
    """One UPDATE for every membership of ``moved``: each watermark to its new value, or
    kept if a concurrent write already took it higher."""
    which = Q()
    delivered, seen = [], []
    for (session_id, user_id), reader in moved.items():
        member = Q(session_id=session_id, user_id=user_id)
        which |= member
        delivered.append(When(member, then=Value(reader.delivered_seq)))
        seen.append(When(member, then=Value(reader.seen_seq)))
    Membership.objects.filter(which).update(
        last_delivered_seq=Greatest(F("last_delivered_seq"), _case(delivered)),
        last_seen_seq=Greatest(F("last_seen_seq"), _case(seen)),
    )


def _case(whens: list[When]) -> Case:
    return Case(*whens, default=Value(0), output_field=models.BigIntegerField())
